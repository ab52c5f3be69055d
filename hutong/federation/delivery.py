"""Delivering Subscription notifications: rest-hook POSTs in order, with retries and backoff over
hours, a dead-letter record, and an AuditEvent per delivery attempt.

For each rest-hook subscription, one notification at a time and in event order: first the
handshake (then the Subscription becomes ``active``), then the matched events, ``max-count`` per
notification, then heartbeats when nothing was sent for the heartbeat period. A subscriber that
answers 2xx has the notification; anything else (refused connection, timeout, 5xx, 408, 429) is
retried after 5 s, 10 s, 20 s … up to 10 minutes between attempts, so a subscriber that is down
for an hour is tried about a dozen times and gets everything it missed, in order, within ten
minutes of coming back. After ``subscription_retry_hours`` (48) of failing, the pending
notifications are written to ``subscription_dead_letter``, the Subscription's status becomes
``error`` and delivery stops until the client sets it back to ``requested``; the events stay
readable with ``$events``. A 4xx other than 408/429 refuses that notification for good: it is
dead-lettered at once and delivery goes on with the next.

Websocket subscriptions: the worker announces new events on the event bus
(``subscriptions.ws.{id}``); whichever process holds a bound websocket sends them
(``hutong.federation.subscription_routes``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import httpx
import orjson
from sqlalchemy import and_, or_, select, update

from hutong.config import Settings
from hutong.core.clock import instant, now_us
from hutong.federation.envelope import token
from hutong.federation.identity import node_id
from hutong.federation.notify import notification_bundle, read_events
from hutong.federation.outage import Outage, is_database_failure
from hutong.federation.tables import subscription_dead_letter, subscription_state
from hutong.store import Store

log = logging.getLogger("hutong.federation")

_RETRYABLE_4XX = (408, 425, 429)


class Delivery:
    """The delivery worker (``run(stop)``); ``step()`` does one round (tests drive it with a clock)."""

    def __init__(self, store: Store, settings: Settings, *, bus=None, clock: Callable[[], int] = now_us,
                 base_url: str | None = None, transport: httpx.AsyncBaseTransport | None = None):
        self.store = store
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.base_url = (base_url or settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        if not self.base_url.endswith("/fhir"):
            self.base_url += "/fhir"
        self.backoff_base_s = 5.0
        self.backoff_cap_s = 600.0
        self.retry_s = settings.subscription_retry_hours * 3600.0
        self.concurrency = 16
        self.transport = transport
        self.status = {"sent": 0, "failed": 0, "dead_lettered": 0, "rounds": 0}
        # Logged once per outage, not per round (hutong.federation.outage).
        self.database_outage = Outage(log, "subscription delivery: the database", "notifications wait")

    def backoff_s(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1`` (exponential, capped, ±10 % jitter)."""
        base = min(self.backoff_cap_s, self.backoff_base_s * (2 ** max(0, attempts - 1)))
        return base * random.uniform(0.9, 1.1)

    # ------------------------------------------------------------------ selecting work
    def due(self) -> list:
        now = self.clock()
        s = subscription_state.c
        with self.store.read() as tx:
            return tx.conn.execute(select(subscription_state).where(
                s.status.in_(("requested", "active")), s.next_attempt_us <= now,
                or_(and_(s.channel == "rest-hook",
                         or_(s.handshake_done.is_(False), s.events > s.delivered,
                             and_(s.heartbeat_s > 0, s.last_sent_us + s.heartbeat_s * 1_000_000 <= now))),
                    and_(s.channel == "websocket", s.events > s.delivered)))
                .order_by(s.next_attempt_us).limit(500)).all()

    # ------------------------------------------------------------------ one round
    async def step(self, client: httpx.AsyncClient | None = None) -> int:
        """Send one notification to every subscription that is due; returns how many were tried."""
        rows = await asyncio.to_thread(self.due)
        if not rows:
            return 0
        self.status["rounds"] += 1
        own = client is None
        if own:
            client = httpx.AsyncClient(transport=self.transport)
        try:
            sem = asyncio.Semaphore(self.concurrency)

            async def one(row):
                async with sem:
                    if row.channel == "websocket":
                        await self._announce(row)
                    else:
                        await self._deliver(client, row)

            await asyncio.gather(*(one(r) for r in rows))
        finally:
            if own:
                await client.aclose()
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(transport=self.transport) as client:
            while not stop.is_set():
                try:
                    n = await self.step(client)
                    self.database_outage.ok()
                except Exception as exc:  # noqa: BLE001 - a database hiccup: next round
                    if is_database_failure(exc):
                        self.database_outage.failed(exc)
                    else:  # a defect: keep its traceback, once per kind (RepeatFilter collapses repeats)
                        log.exception("subscription delivery round failed")
                    n = 0
                if n == 0:
                    try:
                        await asyncio.wait_for(stop.wait(), 0.5)
                    except TimeoutError:
                        pass

    # ------------------------------------------------------------------ websocket announcements
    async def _announce(self, row) -> None:
        if self.bus is not None:
            await self.bus.publish(f"subscriptions.ws.{token(row.sub_id)}",
                                   {"subscription": row.sub_id, "from": row.delivered + 1, "to": row.events})
        s = subscription_state.c

        def mark():
            with self.store.write() as tx:
                tx.conn.execute(update(subscription_state).where(s.sub_id == row.sub_id, s.delivered < row.events)
                                .values(delivered=row.events, last_sent_us=self.clock()))
        await asyncio.to_thread(mark)

    # ------------------------------------------------------------------ rest-hook
    def _prepare(self, row) -> tuple[str, dict, int, int]:
        """(kind, bundle, first event, last event) of the next notification for ``row``."""
        with self.store.read() as tx:
            if not row.handshake_done:
                return "handshake", notification_bundle(tx, row, "handshake", self.base_url), 0, 0
            if row.events > row.delivered:
                first, last = row.delivered + 1, min(row.events, row.delivered + row.max_count)
                events = read_events(tx.conn, row.sub_id, first, last)
                return "event-notification", notification_bundle(tx, row, "event-notification", self.base_url,
                                                                 events), first, last
            return "heartbeat", notification_bundle(tx, row, "heartbeat", self.base_url), 0, 0

    async def _deliver(self, client: httpx.AsyncClient, row) -> None:
        kind, bundle, first, last = await asyncio.to_thread(self._prepare, row)
        headers = {"Content-Type": "application/fhir+json"}
        for h in orjson.loads(row.headers or "[]"):
            name, _, value = h.partition(":")
            headers[name.strip()] = value.strip()
        error, status_code = None, None
        try:
            r = await client.post(row.endpoint, content=orjson.dumps(bundle), headers=headers,
                                  timeout=row.timeout_s)
            status_code = r.status_code
            if not 200 <= r.status_code < 300:
                error = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        await asyncio.to_thread(self._settle, row, kind, first, last, error, status_code)

    def _settle(self, row, kind: str, first: int, last: int, error: str | None, status_code: int | None) -> None:
        """Record the attempt: state, dead letter, Subscription status, and its AuditEvent, in one transaction."""
        now = self.clock()
        s = subscription_state.c
        where = update(subscription_state).where(s.sub_id == row.sub_id)
        permanent = status_code is not None and 400 <= status_code < 500 and status_code not in _RETRYABLE_4XX
        node = node_id(self.store)  # before the write transaction: it may create the id in one of its own
        with self.store.write(row.tenant) as tx:
            tx.check_references = False  # the audit names the Subscription even if it was just deleted
            if error is None:
                values = {"attempts": 0, "failing_since_us": None, "next_attempt_us": 0, "last_sent_us": now,
                          "last_error": None}
                if kind == "handshake":
                    values.update(handshake_done=True, status="active")
                    _set_resource_status(tx, row, "active", None)
                elif kind == "event-notification":
                    values["delivered"] = last
                tx.conn.execute(where.values(**values))
                self.status["sent"] += 1
                outcome = "0"
            elif permanent and kind == "event-notification":
                self._dead_letter(tx, row, first, last, row.attempts + 1, row.failing_since_us or now, now,
                                  f"refused by the subscriber: {error}")
                tx.conn.execute(where.values(delivered=last, attempts=0, failing_since_us=None, next_attempt_us=0,
                                             last_error=error))
                outcome = "4"
            else:
                failing_since = row.failing_since_us or now
                attempts = row.attempts + 1
                if (now - failing_since) / 1e6 >= self.retry_s:
                    if row.events > row.delivered:
                        self._dead_letter(tx, row, row.delivered + 1, row.events, attempts, failing_since, now,
                                          f"retried for {self.retry_s / 3600:.0f} h: {error}")
                    tx.conn.execute(where.values(status="error", delivered=row.events, attempts=attempts,
                                                 last_error=error))
                    _set_resource_status(tx, row, "error", f"delivery failed for {self.retry_s / 3600:.0f} h: {error}")
                else:
                    tx.conn.execute(where.values(attempts=attempts, failing_since_us=failing_since,
                                                 next_attempt_us=now + int(self.backoff_s(attempts) * 1e6),
                                                 last_error=error))
                self.status["failed"] += 1
                outcome = "4" if error and error.startswith("HTTP") else "8"
            tx.create(_audit_event(row, kind, first, last, outcome, error, now, node))

    def _dead_letter(self, tx, row, first: int, last: int, attempts: int, since: int, now: int, reason: str) -> None:
        tx.conn.execute(subscription_dead_letter.insert().values(
            sub_id=row.sub_id, first_event=first, last_event=last, attempts=attempts, first_failure_us=since,
            dead_us=now, reason=reason[:1000]))
        self.status["dead_lettered"] += last - first + 1
        log.warning("subscription %s: events %d-%d dead-lettered (%s)", row.sub_id, first, last, reason[:200])


def _set_resource_status(tx, row, status: str, error: str | None) -> None:
    """Reflect the delivery state in the Subscription resource, unless the client changed it meanwhile."""
    current = tx.read("Subscription", row.sub_id)
    if current is None or current.deleted or current.version_id != row.version_id:
        return
    resource = current.resource
    if resource.get("status") == status and (error is None or resource.get("error") == error):
        return
    resource["status"] = status
    if error:
        resource["error"] = error[:500]
    else:
        resource.pop("error", None)
    tx.update("Subscription", row.sub_id, resource)
    s = subscription_state.c
    tx.conn.execute(update(subscription_state).where(s.sub_id == row.sub_id)
                    .values(version_id=current.version_id + 1))


def _audit_event(row, kind: str, first: int, last: int, outcome: str, error: str | None, now: int,
                 node: str) -> dict:
    """The AuditEvent of one delivery attempt (transmit; IHE BALP's shape, without personal data)."""
    from urllib.parse import urlsplit

    host = urlsplit(row.endpoint or "").hostname or ""
    detail = [{"type": "notification-type", "valueString": kind}]
    if first:
        detail.append({"type": "events", "valueString": f"{first}-{last}"})
    event = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "transmit",
                 "display": "Transmit Record"},
        "action": "E", "recorded": instant(now), "outcome": outcome,
        "agent": [
            {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153",
                                  "display": "Source Role ID"}]},
             "who": {"display": f"Hutong subscription delivery (node {node[:12]})"}, "requestor": False},
            {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152",
                                  "display": "Destination Role ID"}]},
             "who": {"display": host or "subscriber"}, "requestor": False,
             **({"network": {"address": host[:200], "type": "1"}} if host else {})},
        ],
        "source": {"observer": {"display": f"Hutong node {node[:12]}"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                             "display": "Application Server"}]},
        "entity": [{"what": {"reference": f"Subscription/{row.sub_id}"}, "detail": detail}],
    }
    if error:
        event["outcomeDesc"] = error[:500]
    return event
