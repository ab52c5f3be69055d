"""The critical-value alerts the platform raised, with their acknowledgement and escalation."""

from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text, UniqueConstraint

from hutong.store.schema import metadata

critical_alert = Table(
    "reportread_critical_alert", metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("observation", String(80), nullable=False),     # Observation/{id}
    Column("patient", String(80)),
    Column("analyte", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("direction", String(16), nullable=False),        # critical-high / critical-low
    Column("threshold", Float, nullable=False),
    Column("doctor", String(80)),                            # PractitionerRole/… or Practitioner/… who ordered
    Column("institution", String(80)),                       # Organization/…
    Column("department", String(80)),                        # HealthcareService/… (or Organization/…) to escalate to
    Column("flag", String(80)),                              # Flag/…
    Column("communication", String(80)),                     # Communication/… to the doctor
    Column("escalation", String(80)),                        # Communication/… to the department
    Column("status", String(16), nullable=False),            # open / acknowledged / escalated
    Column("created_us", BigInteger, nullable=False),
    Column("deadline_us", BigInteger, nullable=False),
    Column("acked_us", BigInteger),
    Column("acked_by", String(80)),
    Column("ack_note", Text),
    Column("escalated_us", BigInteger),
    UniqueConstraint("tenant", "observation", name="uq_reportread_alert_obs"),
    Index("ix_reportread_alert_status", "status", "deadline_us"),
    Index("ix_reportread_alert_doctor", "doctor", "status"),
)

TABLES = (critical_alert,)
