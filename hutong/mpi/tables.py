"""The master patient index's own tables (blocking keys, links, identifiers, review queue, model).

Blocking keys are stored as SHA-1 hashes, so the index holds no personal data in clear.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text

from hutong.store.schema import metadata

mpi_record = Table(
    "mpi_record", metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False, default=""),
    Column("person_id", String(64), nullable=False),
    Column("features", Text, nullable=False),  # normalised features (JSON) for comparison
    Column("grade", String(16), nullable=False),  # match grade of the link to the person
    Column("score", Float, nullable=False, default=1.0),
    Column("method", String(16), nullable=False),  # auto | manual
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_mpi_record_person", "person_id"),
)

mpi_block = Table(
    "mpi_block", metadata,
    Column("key", String(40), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Index("ix_mpi_block_patient", "patient_id"),
)

mpi_ident = Table(
    "mpi_ident", metadata,
    Column("system", String(255), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Index("ix_mpi_ident_patient", "patient_id"),
)

mpi_review = Table(
    "mpi_review", metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("candidate_id", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("grade", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # open | linked | rejected | obsolete
    Column("evidence", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("decided_us", BigInteger),
    Column("decided_by", String(128)),
    Index("ix_mpi_review_status", "status", "created_us"),
    Index("ix_mpi_review_pair", "patient_id", "candidate_id"),
)

mpi_model = Table(
    "mpi_model", metadata,
    Column("name", String(64), primary_key=True),
    Column("params", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

#: Term-frequency counts over the whole index (kept by the linker in the same transaction as ``mpi_record``):
#: ``key`` = feature + ":" + SHA-1 of the value, or feature + ":*" for the number of records with that feature
#: filled, and ``*:*`` for the number of indexed records. Hashed, so no personal data in clear.
mpi_freq = Table(
    "mpi_freq", metadata,
    Column("key", String(64), primary_key=True),
    Column("n", BigInteger, nullable=False),
)

#: The tables of this capability, created with the store's schema.
TABLES = (mpi_record, mpi_block, mpi_ident, mpi_review, mpi_model, mpi_freq)
