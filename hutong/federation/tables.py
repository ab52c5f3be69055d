"""The federation capability's own tables (beside the FHIR store, in the same database).

Times are integer microseconds UTC, like the store's. No table holds personal data in clear except
``federation_conflict.content`` (a resource version kept so that a conflict loses nothing) and
``subscription_dead_letter.bundle`` (an undelivered notification): both are as sensitive as the
store's own ``resource_version`` and are backed up and protected with it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from hutong.store.schema import BigIntPK, metadata

#: This node's identity (one row, ``key = 'node'``): a random id made when the database was first
#: used, so two databases never share one even when restored from the same backup template.
federation_node = Table(
    "federation_node", metadata,
    Column("key", String(16), primary_key=True),
    Column("node_id", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

#: Every node this node receives changes from (a city at the province, the province at a city):
#: how far its change log has been applied (``last_seq``, committed with the applied writes, which
#: makes applying exactly-once), what it last said about its own head, and what went wrong.
federation_peer = Table(
    "federation_peer", metadata,
    Column("node_id", String(64), primary_key=True),
    Column("tenant", String(32), nullable=False),
    Column("direction", String(8), nullable=False),  # up (a city's data at the province) | down
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("last_origin_us", BigInteger, nullable=False, default=0),  # commit time of last_seq at the origin
    Column("last_applied_us", BigInteger, nullable=False, default=0),
    Column("head_seq", BigInteger, nullable=False, default=0),  # the origin's newest event, as it reported
    Column("head_origin_us", BigInteger, nullable=False, default=0),
    Column("last_contact_us", BigInteger, nullable=False, default=0),
    Column("applied", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("gaps", BigInteger, nullable=False, default=0),
    Column("conflicts", BigInteger, nullable=False, default=0),
    #: JetStream stream sequence applied through (a consumer reading the shared stream resumes there).
    Column("stream_seq", BigInteger, nullable=False, default=0),
    Column("url", String(512)),
)

#: Which local resources are replicas of another node's, and which local version the last applied
#: origin version became: a current version that differs was written here, which is a conflict.
federation_replica = Table(
    "federation_replica", metadata,
    Column("res_type", String(64), primary_key=True),
    Column("res_id", String(64), primary_key=True),
    Column("origin_node", String(64), nullable=False),
    Column("origin_tenant", String(32), nullable=False),
    Column("origin_seq", BigInteger, nullable=False),
    Column("origin_version", Integer, nullable=False),
    Column("origin_us", BigInteger, nullable=False),
    Column("local_version", Integer, nullable=False),
    Column("applied_us", BigInteger, nullable=False),
)

#: How far a follower of a shared JetStream stream has applied it (stream sequence), committed with
#: the writes it made: the province's ingest of ``{prefix}.federation.>`` resumes there.
federation_stream_position = Table(
    "federation_stream_position", metadata,
    Column("name", String(128), primary_key=True),
    Column("stream_seq", BigInteger, nullable=False),
)

#: Conflicts found while applying another node's changes, with the version that did not win.
federation_conflict = Table(
    "federation_conflict", metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("detected_us", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),  # local-change-overwritten | id-collision
    Column("tenant", String(32), nullable=False),  # the tenant whose data it is (origin tenant)
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("origin_node", String(64), nullable=False),
    Column("origin_seq", BigInteger, nullable=False),
    Column("origin_version", Integer, nullable=False),
    Column("local_version", Integer),
    Column("local_tenant", String(32)),
    Column("resolution", String(32), nullable=False),  # origin-applied | kept-local
    Column("content", Text),  # the version that did not become current (None for a deletion)
    Column("status", String(16), nullable=False, default="open"),  # open | acknowledged
    Index("ix_federation_conflict_tenant", "tenant", "detected_us"),
)

#: Application events when no broker is configured (``events.publish`` without NATS): each
#: process of the node polls for rows after the last it saw. Old rows are pruned.
federation_app_event = Table(
    "federation_app_event", metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("payload", Text, nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Index("ix_federation_app_event_ts", "ts_us"),
)

# ---------------------------------------------------------------------------- FHIR Subscriptions

#: Delivery state of each Subscription resource (kept by the matcher and the delivery worker).
subscription_state = Table(
    "subscription_state", metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("tenant", String(32), nullable=False),
    Column("topic", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("channel", String(16), nullable=False),  # rest-hook | websocket
    Column("endpoint", String(1024)),
    Column("headers", Text, nullable=False, default="[]"),  # JSON list of "Name: value"
    Column("payload", String(16), nullable=False),  # empty | id-only | full-resource
    Column("filters", Text, nullable=False, default="[]"),  # JSON [[type, [[param, value], ...]], ...]
    Column("heartbeat_s", Integer, nullable=False, default=0),
    Column("timeout_s", Integer, nullable=False, default=30),
    Column("max_count", Integer, nullable=False, default=1),
    Column("end_us", BigInteger),  # Subscription.end
    Column("version_id", Integer, nullable=False),  # Subscription version this row reflects
    Column("start_seq", BigInteger, nullable=False, default=0),  # changes after this seq are its events
    Column("events", BigInteger, nullable=False, default=0),  # events since subscription start
    Column("delivered", BigInteger, nullable=False, default=0),  # highest event number delivered (rest-hook)
    Column("handshake_done", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),  # consecutive failed attempts
    Column("failing_since_us", BigInteger),
    Column("next_attempt_us", BigInteger, nullable=False, default=0),
    Column("last_sent_us", BigInteger, nullable=False, default=0),
    Column("last_error", Text),
    Index("ix_subscription_state_due", "next_attempt_us"),
)

#: Every event a subscription matched, numbered from 1 per subscription (``events-since-subscription-start``).
subscription_event = Table(
    "subscription_event", metadata,
    Column("sub_id", String(64), primary_key=True),
    Column("event_number", BigInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False),  # change-log position
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("op", String(8), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
)

#: Notifications given up on (retry budget spent, or refused by the subscriber with a 4xx).
subscription_dead_letter = Table(
    "subscription_dead_letter", metadata,
    Column("id", BigIntPK, primary_key=True, autoincrement=True),
    Column("sub_id", String(64), nullable=False),
    Column("first_event", BigInteger, nullable=False),
    Column("last_event", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failure_us", BigInteger),
    Column("dead_us", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_subscription_dead_letter_sub", "sub_id", "first_event"),
)

#: Websocket binding tokens ($get-ws-binding-token); only the SHA-256 of a token is kept.
subscription_ws_token = Table(
    "subscription_ws_token", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("sub_ids", Text, nullable=False),  # JSON list
    Column("tenant", String(32)),
    Column("expires_us", BigInteger, nullable=False),
)

TABLES = (federation_node, federation_peer, federation_replica, federation_stream_position, federation_conflict, federation_app_event,
          subscription_state, subscription_event, subscription_dead_letter, subscription_ws_token)
