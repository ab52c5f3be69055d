"""The security capability's tables: node signing keys, registered clients, used assertion ids,
staff accounts and sessions, security events, and the audit trail (a hash chain)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from hutong.store.schema import metadata

#: The node's own signing keys for access tokens (the newest active one signs; all unretired verify).
security_node_key = Table(
    "security_node_key", metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("public_jwk", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("retired_us", BigInteger),
)

#: Institution systems registered for SMART Backend Services (client credentials, private_key_jwt).
security_client = Table(
    "security_client", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("jwks", Text),           # inline JWKS (JSON text), or
    Column("jwks_url", String(500)),  # the URL the client publishes its keys at
    Column("scope", Text, nullable=False),
    Column("roles", String(200), nullable=False, default="system"),
    Column("institution", String(64)),
    Column("tenant", String(16)),
    Column("status", String(16), nullable=False, default="active"),  # active | disabled
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

#: Client-assertion ids seen, kept until the assertion expires (replays are refused).
security_jti = Table(
    "security_jti", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("exp_us", BigInteger, nullable=False),
)

#: People who sign in to the pages (operators, doctors, statisticians, auditors, residents).
security_user = Table(
    "security_user", metadata,
    Column("username", String(64), primary_key=True),
    Column("display", String(100), nullable=False, default=""),
    Column("password_hash", Text),  # argon2id; residents sign in with a phone code instead
    Column("totp_secret", String(64)),
    Column("roles", String(200), nullable=False),
    Column("institution", String(64)),
    Column("tenant", String(16)),
    Column("patient", String(64)),  # a resident's Patient id
    Column("phone_hash", String(64)),  # keyed hash of a resident's phone (lookup only)
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until_us", BigInteger, nullable=False, default=0),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_us", BigInteger, nullable=False),
)

#: Page sessions; only a hash of the cookie's value is kept.
security_session = Table(
    "security_session", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
)

#: Security events (failed sign-ins, lockouts, refused tokens, replays, scraping, scanning), counted by kind.
security_event = Table(
    "security_event", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("who", String(200)),
    Column("address", String(64)),
    Column("detail", Text),
    Index("ix_security_event_kind_ts", "kind", "ts_us"),
)

#: The audit trail: one row per AuditEvent (IHE BALP), chained by hash (``hash`` covers ``prev_hash``
#: and the canonical JSON of ``event``). Rows are only ever inserted.
audit_event = Table(
    "audit_event", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("action", String(8), nullable=False),      # C R U D E (FHIR AuditEvent.action)
    Column("subtype", String(40), nullable=False),     # read, search-type, create, login, export…
    Column("agent", String(200), nullable=False),      # client id or user name
    Column("institution", String(64)),
    Column("patient", String(64)),                     # the Patient the event is about (one row per patient)
    Column("purpose", String(40)),
    Column("outcome", String(4), nullable=False),      # 0 4 8 12 (FHIR AuditEvent.outcome)
    Column("break_glass", Boolean, nullable=False, default=False),
    Column("event", Text, nullable=False),             # the AuditEvent resource, canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_event_patient_ts", "patient", "ts_us"),
    Index("ix_audit_event_agent_ts", "agent", "ts_us"),
    Index("ix_audit_event_ts", "ts_us"),
)

#: The head of the chain: one row, locked by each appender so the chain has one order.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Anchors: the chain's head hash recorded periodically (and printable for an outside witness).
audit_anchor = Table(
    "audit_anchor", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
)

#: Retention cuts: the last purged event's sequence number and hash, signed with the node's key
#: (``hutong/security/retention.py``); verification continues the chain from the newest one.
audit_cut = Table(
    "audit_cut", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("purged", BigInteger, nullable=False),
    Column("signature", Text, nullable=False),  # compact JWS (ES256) over seq, hash, ts_us, purged
)

TABLES = (security_node_key, security_client, security_jti, security_user, security_session, security_event,
          audit_event, audit_head, audit_anchor, audit_cut)
