"""What the consult capability keeps beside the FHIR store: one row per tracked piece of work (the
queues, service levels and statistics read it without parsing Tasks), each status change with its
time, the message order of each conversation, and notifications.

The FHIR resources (Task, ServiceRequest, Communication, Appointment, Encounter…) are the record;
these rows are written in the same transaction as the resources they describe.
"""

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from hutong.store.schema import metadata

consult_item = Table(
    "consult_item", metadata,
    Column("id", String(64), primary_key=True),             # the Task id
    Column("tenant", String(64), nullable=False),
    Column("kind", String(16), nullable=False),             # free | followup | teleconsult | referral
    Column("subkind", String(16)),                           # tele kind, or referral direction (up/down)
    Column("status", String(16), nullable=False),            # business status (vocab)
    Column("patient", String(80), nullable=False),           # Patient/…
    Column("requester", String(80), nullable=False),         # Patient/… or PractitionerRole/…
    Column("requester_org", String(80)),                     # Organization/… (referral, teleconsult)
    Column("target_org", String(80)),                        # Organization/… (the queue's hospital)
    Column("department", String(16)),                        # department code (the queue)
    Column("owner", String(80)),                             # PractitionerRole/… working on it
    Column("request", String(80)),                           # ServiceRequest/… (referral, teleconsult)
    Column("encounter", String(80)),                         # Encounter/… (online visit)
    Column("parent", String(64)),                            # the item this one redirects or returns
    Column("title", String(200), nullable=False),
    Column("urgent", Boolean, nullable=False, default=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("first_response_us", BigInteger),
    Column("due_us", BigInteger),                            # first response / action deadline
    Column("escalations", Integer, nullable=False, default=0),
    Column("breached", Boolean, nullable=False, default=False),
    Column("closed_us", BigInteger),
    Column("rating", Integer),
    Column("complaint", Text),
    Column("retain_until_us", BigInteger, nullable=False),
    Index("ix_consult_item_queue", "kind", "status", "target_org", "department"),
    Index("ix_consult_item_owner", "owner", "status"),
    Index("ix_consult_item_patient", "patient", "created_us"),
    Index("ix_consult_item_due", "status", "due_us"),
    Index("ix_consult_item_requester_org", "requester_org", "kind", "status"),
)

consult_step = Table(
    "consult_step", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(80), nullable=False),
    Column("note", Text),
    Column("ts_us", BigInteger, nullable=False),
    Index("ix_consult_step_item", "item", "id"),
)

consult_message = Table(
    "consult_message", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the order of a conversation
    Column("item", String(64), nullable=False),
    Column("communication", String(64), nullable=False),
    Column("sender", String(80), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Index("ix_consult_message_item", "item", "id"),
)

consult_notice = Table(
    "consult_notice", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient", String(80), nullable=False),          # Patient/…, Organization/…, PractitionerRole/…
    Column("item", String(64), nullable=False),
    Column("text", Text, nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Index("ix_consult_notice_recipient", "recipient", "id"),
)

TABLES = (consult_item, consult_step, consult_message, consult_notice)

consult_rx = Table(
    "consult_rx", metadata,
    Column("id", String(64), primary_key=True),               # the prescription's group identifier
    Column("item", String(64), nullable=False),
    Column("status", String(16), nullable=False),             # pending | approved | rejected
    Column("prescriber", String(80), nullable=False),
    Column("org", String(80)),
    Column("reviewer", String(80)),
    Column("note", Text),
    Column("requests", Text, nullable=False),                  # MedicationRequest ids, comma-separated
    Column("created_us", BigInteger, nullable=False),
    Column("reviewed_us", BigInteger),
    Index("ix_consult_rx_status", "status", "org", "created_us"),
    Index("ix_consult_rx_item", "item"),
)

#: Family-doctor contracts (hutong/consult/family.py).
consult_contract = Table(
    "consult_contract", metadata,
    Column("id", String(64), primary_key=True),          # the CareTeam id
    Column("patient", String(80), nullable=False),
    Column("org", String(80), nullable=False),
    Column("status", String(16), nullable=False),        # active | ended
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("programmes", String(200), nullable=False),   # comma-separated PROGRAMMES keys
    Column("next_follow_up_us", BigInteger),
    Index("ix_consult_contract_org", "org", "status"),
    Index("ix_consult_contract_patient", "patient", "status"),
)

TABLES = (consult_item, consult_step, consult_message, consult_notice, consult_rx, consult_contract)
