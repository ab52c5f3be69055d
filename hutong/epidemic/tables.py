"""The epidemic capability's table: one row per report card (for duplicate detection, deadlines, review).

The card itself is a FHIR ``Condition`` (``cards.py``); this row keeps what the workflow needs to find
quickly: a hash of the person (never the ID in clear), the episode, the deadline and the review state."""

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table

from hutong.store.schema import metadata

epidemic_card = Table(
    "epidemic_card", metadata,
    Column("card_id", String(64), primary_key=True),  # the Condition's id
    Column("tenant", String(64), nullable=False),
    Column("disease", String(32), nullable=False),
    Column("person_key", String(64), nullable=False),  # SHA-256 of the normalised resident ID (or name+birth+sex)
    Column("onset_us", BigInteger, nullable=False),
    Column("diagnosed_us", BigInteger, nullable=False),
    Column("reported_us", BigInteger, nullable=False),
    Column("deadline_us", BigInteger, nullable=False),
    Column("late", Boolean, nullable=False),
    Column("county", String(12), nullable=False),
    Column("institution", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | reviewed | rejected | duplicate
    Column("duplicate_of", String(64)),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_epidemic_card_person", "person_key", "disease"),
    Index("ix_epidemic_card_county", "county", "status"),
)

TABLES = (epidemic_card,)
