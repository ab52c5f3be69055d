"""The assessment's own tables (beside the FHIR store, same database, kept by the change-log consumer).

- ``quality_arrival``: what arrived, per institution, Asia/Shanghai day, resource type and
  interface: changes by kind, delay from the clinical event to arrival (sum and buckets), the last
  arrival's time. Events are history, so these only grow (a later delete is one more arrival).
- ``quality_issue``: every current resource failing a rule (the examples a report shows and the
  list an institution works through); a corrected or deleted resource leaves it. Rule
  ``ref-unresolved`` holds resources with a reference to a resource that does not exist (or was
  deleted); its detail is the first such target.

- ``quality_patient``: the sending institution of every current Patient (for duplicates per
  institution, with the patient index's person links).

Counts of rule outcomes (applicable, failed) are live counters (``hutong.stats.counters``).
"""

from sqlalchemy import BigInteger, Column, Index, String, Table

from hutong.store.schema import metadata

quality_arrival = Table(
    "quality_arrival", metadata,
    Column("org", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("res_type", String(64), primary_key=True),
    Column("interface", String(16), primary_key=True),
    Column("creates", BigInteger, nullable=False, default=0),
    Column("updates", BigInteger, nullable=False, default=0),
    Column("deletes", BigInteger, nullable=False, default=0),
    Column("lat_n", BigInteger, nullable=False, default=0),
    Column("lat_sum_ms", BigInteger, nullable=False, default=0),  # integers: sums exact in any order
    Column("le_1h", BigInteger, nullable=False, default=0),
    Column("le_1d", BigInteger, nullable=False, default=0),
    Column("le_7d", BigInteger, nullable=False, default=0),
    Column("gt_7d", BigInteger, nullable=False, default=0),
    Column("last_us", BigInteger, nullable=False, default=0),
    Index("ix_quality_arrival_day", "day", "org"),
)

quality_issue = Table(
    "quality_issue", metadata,
    Column("rule", String(32), primary_key=True),
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("org", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("detail", String(64), nullable=False, default=""),
    Column("ts_us", BigInteger, nullable=False),
    Index("ix_quality_issue_org", "org", "rule", "ts_us"),
    # The consumer replaces a changed resource's rows: found by resource, whatever the rule.
    Index("ix_quality_issue_resource", "res_type", "res_id"),
)

#: Which institution each current Patient came from (``meta.source``): with the patient index's
#: links (``mpi_record.person_id``) it gives the duplicate records an institution creates.
quality_patient = Table(
    "quality_patient", metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("org", String(64), nullable=False),
    Index("ix_quality_patient_org", "org"),
)

TABLES = (quality_arrival, quality_issue, quality_patient)


def ensure_indexes(engine) -> None:
    """Indexes added after a table first shipped (``create_all`` makes them only with a new table).

    ``IF NOT EXISTS``, and a failure (another worker creating it at the same moment, a busy SQLite
    file) only logged: the index makes the consumer faster, nothing depends on it for correctness."""
    import logging

    from sqlalchemy.schema import CreateIndex

    for table in TABLES:
        for index in table.indexes:
            try:
                with engine.begin() as conn:
                    conn.execute(CreateIndex(index, if_not_exists=True))
            except Exception as exc:  # noqa: BLE001 - see the docstring
                logging.getLogger("hutong.quality").warning("index %s not created now (%s)", index.name,
                                                            type(exc).__name__)
