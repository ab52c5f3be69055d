"""Tables of the store. Capabilities add their own tables to ``metadata`` in their ``tables`` module.

Times are stored as integer microseconds since the Unix epoch (UTC) so that both backends
compare and sort them identically and cheaply.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Autoincrementing 64-bit key that is a rowid alias on SQLite.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

#: The current version of every resource (deleted ones too, marked ``deleted``).
resource = Table(
    "resource",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("tenant", String(32), nullable=False),
    Column("source", String(256)),
    Column("content", Text),
    Index("ix_resource_type_ts", "res_type", "ts_us"),
)

#: Every version of every resource, including the current one and deletions (content NULL).
resource_version = Table(
    "resource_version",
    metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("method", String(8), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("tenant", String(32), nullable=False),
    Column("content", Text),
    Index("ix_version_ts", "ts_us"),
    Index("ix_version_type_ts", "res_type", "ts_us"),
)

#: The transactional outbox: one row per change, written in the same transaction as the change.
change_event = Table(
    "change_event",
    metadata,
    Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    Column("tenant", String(32), nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("op", String(8), nullable=False),  # create | update | delete
    Column("ts_us", BigInteger, nullable=False),
)

#: How far each named consumer has processed the change log.
consumer_position = Table(
    "consumer_position",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

#: Schema version per component, for migrations.
schema_version = Table(
    "schema_version",
    metadata,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)

#: The store's own tables (capabilities pass theirs to ``create_schema``).
CORE_TABLES = (resource, resource_version, change_event, consumer_position, schema_version)
