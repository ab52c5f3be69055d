"""FHIR topic-based Subscriptions (R4 Subscriptions Backport IG): what a Subscription asks for,
the change-log consumers that keep its state and match events to it.

A Subscription (profile ``backport-subscription``) names a topic in ``criteria`` (a canonical URL
of ``hutong.federation.topics``), narrows it with ``_criteria.extension:backport-filter-criteria``
(``Encounter?patient=Patient/123``, several are ANDed), and says how to be told:
``channel.type`` ``rest-hook`` (``channel.endpoint``, ``channel.header``) or ``websocket``;
``channel.payload`` with ``_payload.extension:backport-payload-content`` (``empty``, ``id-only``,
``full-resource``); ``channel.extension`` ``backport-heartbeat-period``, ``backport-timeout``,
``backport-max-count``.

Two change-log consumers (exactly once, in the write transaction that moves their position):

- ``subscriptions-state`` follows Subscription resources into ``subscription_state``;
- ``subscriptions-match`` numbers, per subscription, every change its topic and filters match
  (``subscription_event``, ``events-since-subscription-start``).

Delivery (``hutong.federation.delivery``) sends what was matched, in order.

Tenancy: a subscription of a city's tenant sees that tenant's changes only; one made by a caller
of the node's own tenant (the province, or a city node's own operators) sees every tenant's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import orjson
from sqlalchemy import func, insert, select, update

from hutong.core.clock import now_us
from hutong.core.errors import FhirError, bad_request
from hutong.federation.tables import subscription_event, subscription_state
from hutong.federation.topics import BACKPORT, BY_URL

FILTER_EXT = BACKPORT + "backport-filter-criteria"
PAYLOAD_EXT = BACKPORT + "backport-payload-content"
HEARTBEAT_EXT = BACKPORT + "backport-heartbeat-period"
TIMEOUT_EXT = BACKPORT + "backport-timeout"
MAX_COUNT_EXT = BACKPORT + "backport-max-count"
PROFILE = BACKPORT + "backport-subscription"

CHANNELS = ("rest-hook", "websocket")
PAYLOADS = ("empty", "id-only", "full-resource")
STATE_CONSUMER = "subscriptions-state"
MATCH_CONSUMER = "subscriptions-match"


@dataclass(frozen=True)
class SubscriptionSpec:
    """What a Subscription resource asks for, checked."""

    topic: str
    channel: str
    endpoint: str | None
    headers: tuple[str, ...]
    payload: str
    filters: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    heartbeat_s: int
    timeout_s: int
    max_count: int
    end_us: int | None
    status: str


def _ext(element: dict | None, url: str) -> list:
    if not isinstance(element, dict):
        return []
    return [e for e in element.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def _int_ext(channel: dict, url: str, default: int, low: int, high: int, name: str) -> int:
    found = _ext(channel, url)
    if not found:
        return default
    value = next((v for k, v in found[0].items() if k.startswith("value")), None)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(f"Subscription.channel {name} must be an integer from {low} to {high}",
                          "Subscription.channel.extension")
    return value


def parse_subscription(resource: dict) -> SubscriptionSpec:
    """Check a Subscription against this server's backport rules (400 with the element at fault)."""
    criteria = resource.get("criteria")
    topic = BY_URL.get(criteria) if isinstance(criteria, str) else None
    if topic is None:
        raise FhirError(422, "not-supported", f"unknown subscription topic {str(criteria)[:120]!r}; "
                        f"the topics are listed in the CapabilityStatement and at /api/federation/topics",
                        "Subscription.criteria")
    filters = []
    for ext in _ext(resource.get("_criteria"), FILTER_EXT):
        value = ext.get("valueString")
        if not isinstance(value, str) or "?" not in value:
            raise bad_request("backport-filter-criteria must be a string such as Encounter?patient=Patient/123",
                              "Subscription._criteria")
        res_type, _, query = value.partition("?")
        if res_type != topic.res_type:
            raise bad_request(f"filter criteria must be on {topic.res_type}, the topic's resource type",
                              "Subscription._criteria")
        try:
            params = tuple(parse_qsl(query, keep_blank_values=False, strict_parsing=True))
        except ValueError as exc:
            raise bad_request(f"invalid filter criteria {value[:200]!r}", "Subscription._criteria") from exc
        if any(k.startswith("_") and k not in ("_tag", "_profile", "_security", "_source") for k, _ in params):
            raise bad_request("filter criteria may not use result parameters (_count, _sort, _include…)",
                              "Subscription._criteria")
        filters.append((res_type, params))
    channel = resource.get("channel")
    if not isinstance(channel, dict):
        raise bad_request("Subscription.channel is required", "Subscription.channel")
    kind = channel.get("type")
    if kind not in CHANNELS:
        raise FhirError(422, "not-supported", f"channel type {str(kind)[:40]!r} is not supported "
                        f"(supported: {', '.join(CHANNELS)})", "Subscription.channel.type")
    endpoint = channel.get("endpoint")
    if kind == "rest-hook":
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise bad_request("a rest-hook channel needs an http(s) endpoint", "Subscription.channel.endpoint")
    headers = channel.get("header") or []
    if not isinstance(headers, list) or not all(isinstance(h, str) and ":" in h and "\n" not in h for h in headers):
        raise bad_request('channel.header entries must be "Name: value" strings', "Subscription.channel.header")
    payload_ext = _ext(channel.get("_payload"), PAYLOAD_EXT)
    payload = payload_ext[0].get("valueCode") if payload_ext else ("id-only" if channel.get("payload") else "empty")
    if payload not in PAYLOADS:
        raise bad_request(f"payload content must be one of {', '.join(PAYLOADS)}", "Subscription.channel._payload")
    end_us = None
    if resource.get("end"):
        try:
            end_us = int(datetime.fromisoformat(str(resource["end"]).replace("Z", "+00:00")).timestamp() * 1e6)
        except ValueError as exc:
            raise bad_request("Subscription.end must be an instant", "Subscription.end") from exc
    return SubscriptionSpec(
        topic=topic.url, channel=kind, endpoint=endpoint if kind == "rest-hook" else None, headers=tuple(headers),
        payload=payload, filters=tuple(filters),
        heartbeat_s=_int_ext(channel, HEARTBEAT_EXT, 0, 0, 86400, "heartbeat period"),
        timeout_s=_int_ext(channel, TIMEOUT_EXT, 30, 1, 300, "timeout"),
        max_count=_int_ext(channel, MAX_COUNT_EXT, 1, 1, 1000, "max count"),
        end_us=end_us, status=str(resource.get("status") or "requested"))


def check_filters(tx, spec: SubscriptionSpec) -> None:
    """Run each filter once against the search engine, so an unknown parameter is a 400 now rather
    than a silent non-match later."""
    for res_type, params in spec.filters:
        tx.search_ids(res_type, [("_id", "x-check-only"), *params], limit=1)


# ------------------------------------------------------------------ consumers
def follow_subscriptions(tx, events) -> None:
    """``subscriptions-state``: mirror each Subscription version into ``subscription_state``.

    A client's new version (status ``requested``, or a changed channel) starts over with a
    handshake; versions the server itself wrote (status ``active``/``error`` after delivery) keep
    the delivery counters. A deletion or status ``off`` stops delivery."""
    s = subscription_state.c
    for ev in events:
        stored = tx.read("Subscription", ev.res_id)
        row = tx.conn.execute(select(subscription_state).where(s.sub_id == ev.res_id)).first()
        if stored is None or stored.deleted:
            if row is not None:
                tx.conn.execute(update(subscription_state).where(s.sub_id == ev.res_id).values(status="off"))
            continue
        if row is not None and stored.version_id <= row.version_id:
            continue
        try:
            spec = parse_subscription(stored.resource)
        except FhirError as exc:  # stored before these rules, or by a bulk load: never delivered
            values = {"status": "error", "last_error": exc.diagnostics[:500], "version_id": stored.version_id}
            if row is None:
                continue
            tx.conn.execute(update(subscription_state).where(s.sub_id == ev.res_id).values(**values))
            continue
        values = {"tenant": stored.tenant, "topic": spec.topic, "channel": spec.channel, "endpoint": spec.endpoint,
                  "headers": orjson.dumps(list(spec.headers)).decode(), "payload": spec.payload,
                  "filters": orjson.dumps([[t, [list(p) for p in ps]] for t, ps in spec.filters]).decode(),
                  "heartbeat_s": spec.heartbeat_s, "timeout_s": spec.timeout_s, "max_count": spec.max_count,
                  "end_us": spec.end_us, "version_id": stored.version_id}
        restart = spec.status == "requested"
        if row is None or restart or row.status == "off":
            values["start_seq"] = ev.seq
        status = {"requested": "requested", "active": "active", "error": "error", "off": "off"}.get(spec.status, "off")
        if spec.channel == "websocket" and status == "requested":
            status = "active"  # a websocket subscription's handshake happens when a client binds
        if row is None:
            tx.conn.execute(insert(subscription_state).values(
                sub_id=ev.res_id, status=status, events=0, delivered=0, handshake_done=spec.channel == "websocket",
                attempts=0, next_attempt_us=0, last_sent_us=0, **values))
        else:
            if restart or row.status == "off":
                values.update(status=status, handshake_done=spec.channel == "websocket", attempts=0,
                              failing_since_us=None, next_attempt_us=0, last_error=None)
            elif spec.status == "off":
                values["status"] = "off"
            tx.conn.execute(update(subscription_state).where(s.sub_id == ev.res_id).values(**values))


def _live_subscriptions(tx) -> list:
    s = subscription_state.c
    return tx.conn.execute(select(subscription_state).where(s.status.in_(("requested", "active")))).all()


def match_events(tx, events) -> None:
    """``subscriptions-match``: number every change each live subscription's topic and filters match."""
    subs = _live_subscriptions(tx)
    if not subs:
        return
    from hutong.federation.topics import TOPICS

    by_type: dict[str, list] = {}
    topic_types = {t.url: t for t in TOPICS}
    for sub in subs:
        topic = topic_types.get(sub.topic)
        if topic is not None:
            by_type.setdefault(topic.res_type, []).append((sub, topic, orjson.loads(sub.filters)))
    if not by_type:
        return
    default_tenant = tx.store.settings.default_tenant
    now = now_us()
    counts: dict[str, int] = {}
    s, e = subscription_state.c, subscription_event.c
    rows = []
    for ev in events:
        for sub, topic, filters in by_type.get(ev.res_type, ()):
            if ev.seq <= sub.start_seq or ev.op not in topic.ops or (sub.end_us and sub.end_us < now):
                continue
            if sub.tenant != default_tenant and ev.tenant != sub.tenant:
                continue
            if filters:
                if ev.op == "delete":
                    continue
                if not all(tx.search_ids(t, [("_id", ev.res_id), *[tuple(p) for p in ps]], limit=1)
                           for t, ps in filters):
                    continue
            if sub.sub_id not in counts:
                counts[sub.sub_id] = int(tx.conn.execute(
                    select(func.coalesce(func.max(e.event_number), 0)).where(e.sub_id == sub.sub_id)).scalar())
            counts[sub.sub_id] += 1
            rows.append({"sub_id": sub.sub_id, "event_number": counts[sub.sub_id], "seq": ev.seq,
                         "res_type": ev.res_type, "res_id": ev.res_id, "version_id": ev.version_id, "op": ev.op,
                         "ts_us": ev.ts_us})
    if rows:
        tx.conn.execute(insert(subscription_event), rows)
        for sub_id, n in counts.items():
            tx.conn.execute(update(subscription_state).where(s.sub_id == sub_id).values(events=n))
