"""Tables of the shared record: care relationships (who opened whose record, how) and launch nonces."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, Text

from hutong.store.schema import BigIntPK, metadata

#: One row each time a doctor opens a patient's shared record: the security capability reads it to decide
#: whether a clinician has a care relationship with a patient (and audits from it). ``via`` is
#: ``his-launch`` (signed launch URL from the hospital system), ``card-scan`` or ``search``.
share_care = Table(
    "share_care",
    metadata,
    Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("practitioner", String(128), nullable=False),  # the doctor (client id / HIS user id)
    Column("institution", String(64)),  # Organization id the doctor acts for
    Column("patient", String(64), nullable=False),  # Patient id opened
    Column("person", String(64)),  # Person id of the patient index at that time
    Column("via", String(16), nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Index("ix_share_care_patient", "patient", "ts_us"),
    Index("ix_share_care_practitioner", "practitioner", "ts_us"),
)

#: Launch nonces already used (a signed launch URL works once), purged after they expire.
share_launch_nonce = Table(
    "share_launch_nonce",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_us", BigInteger, nullable=False),
)

#: Binary content kept as a file (documents uploaded as raw bytes): the Binary resource holds only its
#: contentType; the bytes live under ``data_dir/blobs`` and ITI-68 streams them back.
share_blob = Table(
    "share_blob",
    metadata,
    Column("binary_id", String(64), primary_key=True),
    Column("path", String(512), nullable=False),  # relative to the data folder
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

#: The document index: one row per DocumentReference, with what its CDA header said (type code, patient
#: identifiers, author institution, times) and what validation found. Kept by a change-log consumer.
share_document = Table(
    "share_document",
    metadata,
    Column("doc_id", String(64), primary_key=True),
    Column("patient", String(64)),
    Column("status", String(16)),
    Column("creation_us", BigInteger),
    Column("format", String(32)),  # cda | pdf | image | fhir | other
    Column("type_code", String(64)),
    Column("type_system", String(128)),
    Column("title", String(256)),
    Column("author_org", String(128)),
    Column("author_org_name", String(256)),
    Column("effective_us", BigInteger),
    Column("patient_ids", Text),  # JSON list of "root|extension" from recordTarget
    Column("problems", Text),  # JSON list of validation messages
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_share_document_patient", "patient", "creation_us"),
)

TABLES = (share_care, share_launch_nonce, share_blob, share_document)
