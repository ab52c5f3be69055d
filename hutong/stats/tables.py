"""The stats capability's own tables (beside the FHIR store, same database)."""

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from hutong.stats import counters
from hutong.store.schema import metadata

stats_dataset = Table(
    "stats_dataset", metadata,
    Column("code", String(64), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

# which institution reports which data set, with its place in the hierarchy (division codes)
stats_assignment = Table(
    "stats_assignment", metadata,
    Column("dataset", String(64), primary_key=True),
    Column("org", String(64), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("province", String(12), nullable=False, default=""),
    Column("city", String(12), nullable=False, default=""),
    Column("county", String(12), nullable=False, default=""),
    Column("assigned_us", BigInteger, nullable=False),
    Index("ix_stats_assignment_county", "dataset", "county"),
    Index("ix_stats_assignment_city", "dataset", "city"),
)

stats_value = Table(
    "stats_value", metadata,
    Column("dataset", String(64), primary_key=True),
    Column("org", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("element", String(64), primary_key=True),
    Column("coc", String(96), primary_key=True, default=""),
    Column("value", Float, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", String(128), nullable=False, default=""),
    Index("ix_stats_value_period", "dataset", "period", "element"),
)

# one row per (data set, institution, period) once anything is entered
stats_report = Table(
    "stats_report", metadata,
    Column("dataset", String(64), primary_key=True),
    Column("org", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("status", String(16), nullable=False),          # draft | submitted | returned
    Column("approved_level", Integer, nullable=False, default=0),  # 0 none, 1 county, 2 city, 3 province
    Column("submitted_us", BigInteger),
    Column("on_time", Boolean),
    Column("updated_us", BigInteger, nullable=False),
    Column("updated_by", String(128), nullable=False, default=""),
    Index("ix_stats_report_period", "dataset", "period"),
)

stats_approval_log = Table(
    "stats_approval_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("org", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("action", String(16), nullable=False),   # submit | approve | unapprove | unlock
    Column("level", Integer, nullable=False),
    Column("by", String(128), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Index("ix_stats_approval_log_report", "dataset", "org", "period"),
)

stats_violation = Table(
    "stats_violation", metadata,
    Column("dataset", String(64), primary_key=True),
    Column("org", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("rule", String(64), primary_key=True),
    Column("importance", String(8), nullable=False),
    Column("left_value", Float),
    Column("right_value", Float),
    Column("found_us", BigInteger, nullable=False),
    Index("ix_stats_violation_period", "dataset", "period"),
)

stats_reminder = Table(
    "stats_reminder", metadata,
    Column("dataset", String(64), primary_key=True),
    Column("org", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("sent_us", BigInteger, nullable=False),
    Column("communication", String(64), nullable=False),
)

TABLES = (*counters.TABLES, stats_dataset, stats_assignment, stats_value, stats_report, stats_approval_log,
          stats_violation, stats_reminder)
