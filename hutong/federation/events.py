"""Application events across worker processes and nodes: ``publish`` and ``subscribe``.

A capability gets the node's bus from ``node.services["events"]`` (or ``event_bus(node)``)::

    bus = event_bus(node)
    await bus.publish("consult.room.r1", {"message": "m-123"})           # from async code
    bus.publish_sync("consult.room.r1", {"message": "m-123"})            # from a thread (route handler)

    async def on_message(event: Event) -> None:                           # runs on the subscriber's loop
        ...  # event.subject, event.payload (dict), event.id, event.node, event.ts_us
    sub = await bus.subscribe("consult.room.*", on_message)              # NATS wildcards: * one token, > the rest
    ...
    await sub.unsubscribe()

    await bus.subscribe_changes(on_change, res_type="Communication")     # committed changes of this node
                                                                         # (event.payload: seq, tenant, type, id, version, op)

Subjects are dot-separated tokens (``[A-Za-z0-9_-]``), at most 200 characters; payloads are JSON
objects of at most 256 KiB. Each event has a unique ``id`` for handlers that must not act twice.

**With NATS** (``nats_url`` set and reachable when the bus starts): events go through JetStream
(stream ``events_stream``, subject ``{prefix}.app.{subject}``, de-duplicated by id) and reach every
subscriber in every process of every node on that broker. Subscriptions are live: a subscriber
gets the events published while it is subscribed, in publish order per publisher; what it missed
while away it reads from its own records (or the stream, by sequence).

**Without NATS** (``make run`` on a laptop): events are rows of ``federation_app_event`` and every
process of the node polls for new rows (every 100 ms, at once after a local publish), so they
cross worker processes of one node but not nodes. Rows older than an hour are pruned. The bus says
which mode it is in (``bus.mode``) and logs it once.

Change events: with NATS they come from the relay's stream (``{prefix}.change.{tenant}.{type}``,
only while a relay runs for the node); without NATS the bus follows the outbox from the moment of
subscribing. Capabilities that must process every change exactly once use a change-log
``Consumer`` (``hutong/capability.py``) instead: that is transactional, this is for live fan-out.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from sqlalchemy import delete, func, insert, select

from hutong.config import Settings
from hutong.core.clock import now_us
from hutong.core.errors import bad_request
from hutong.federation import jetstream
from hutong.federation.envelope import app_subject, token
from hutong.federation.identity import node_id
from hutong.federation.outage import Outage, is_database_failure
from hutong.federation.tables import federation_app_event
from hutong.store import Store

log = logging.getLogger("hutong.federation")

_SUBJECT = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_PATTERN = re.compile(r"^([A-Za-z0-9_\-]+|\*)(\.([A-Za-z0-9_\-]+|\*))*(\.>)?$|^>$")
MAX_PAYLOAD = 256 * 1024
POLL_S = 0.1
KEEP_S = 3600


@dataclass(frozen=True)
class Event:
    """One application event (or, from ``subscribe_changes``, one committed change)."""

    subject: str
    payload: dict
    id: str
    node: str
    ts_us: int


Handler = Callable[[Event], Awaitable[None]]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    p, s = pattern.split("."), subject.split(".")
    for i, part in enumerate(p):
        if part == ">":
            return len(s) > i
        if i >= len(s) or (part != "*" and part != s[i]):
            return False
    return len(p) == len(s)


def _check_subject(subject: str) -> None:
    if not isinstance(subject, str) or len(subject) > 200 or not _SUBJECT.match(subject):
        raise bad_request(f"invalid event subject {str(subject)[:60]!r}: dot-separated tokens of [A-Za-z0-9_-]")


def _check_pattern(pattern: str) -> None:
    if not isinstance(pattern, str) or len(pattern) > 200 or not _PATTERN.match(pattern):
        raise bad_request(f"invalid subscription subject {str(pattern)[:60]!r}")


def _encode(event: Event) -> bytes:
    return orjson.dumps({"subject": event.subject, "payload": event.payload, "id": event.id, "node": event.node,
                         "ts_us": event.ts_us})


def _decode(data: bytes) -> Event | None:
    try:
        doc = orjson.loads(data)
        return Event(doc["subject"], doc["payload"], doc["id"], doc["node"], int(doc["ts_us"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class Subscription:
    """A live subscription; ``await sub.unsubscribe()`` ends it."""

    def __init__(self, bus: EventBus, pattern: str, handler: Handler, loop: asyncio.AbstractEventLoop,
                 changes: tuple[str, str] | None = None):
        self.bus = bus
        self.pattern = pattern
        self.handler = handler
        self.loop = loop
        self.changes = changes
        self.nats_sub = None
        self.active = True

    def deliver(self, event: Event) -> None:
        """Run the handler on the subscriber's loop (from whichever thread received the event)."""
        if not self.active or self.loop.is_closed():
            return

        async def call():
            try:
                await self.handler(event)
            except Exception:  # noqa: BLE001 - a failing handler must not stop the bus
                log.exception("event handler for %s failed", self.pattern)

        try:
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(call()))
        except RuntimeError:  # the subscriber's loop has closed
            self.active = False

    async def unsubscribe(self) -> None:
        self.active = False
        await self.bus._drop(self)


class EventBus:
    """The node's application event bus (see the module docstring). Thread-safe; starts on first use."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self.prefix = settings.events_subject_prefix
        self.mode: str | None = None  # "nats" | "database" once started
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc = None
        self._js = None
        self._subs: list[Subscription] = []
        self._subs_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._last_row = 0
        self._last_seq = 0
        self._database_outage = Outage(log, "events: the database", "application events wait")

    # ------------------------------------------------------------------ start / stop
    def start(self) -> str:
        """Connect (NATS if configured and reachable, else the database) and return the mode."""
        with self._start_lock:
            if self.mode is not None:
                return self.mode
            ready = threading.Event()
            self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="hutong-events",
                                            daemon=True)
            self._thread.start()
            ready.wait(10)
            return self.mode or "database"

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        url = jetstream.configured(self.settings.nats_url)
        if url:
            try:
                self._nc = await jetstream.connect(url, name=f"hutong-events-{node_id(self.store)[:8]}")
                self._js = self._nc.jetstream(timeout=5)
                await jetstream.ensure_stream(self._js, jetstream.stream_config(self.settings))
                self.mode = "nats"
                log.info("events: NATS JetStream at %s (stream %s)", url, self.settings.events_stream)
            except Exception as exc:  # noqa: BLE001 - no broker: the database carries the events
                self._nc = self._js = None
                log.warning("events: NATS not reachable at %s (%s): application events go through the database "
                            "(this node's processes only)", url, type(exc).__name__)
        if self.mode is None:
            self.mode = "database"
            with self.store.read() as tx:
                c = federation_app_event.c
                self._last_row = int(tx.conn.execute(select(func.max(c.id))).scalar() or 0)
            self._last_seq = self.store.outbox.last_seq()
        ready.set()
        if self.mode == "nats":
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
            try:
                await asyncio.wait_for(self._nc.drain(), 2)
            except Exception:  # noqa: BLE001
                pass
        else:
            await self._poll_database()

    # ------------------------------------------------------------------ publish
    def _event(self, subject: str, payload: dict) -> Event:
        _check_subject(subject)
        if not isinstance(payload, dict):
            raise bad_request("an event payload must be a JSON object")
        event = Event(subject, payload, uuid.uuid4().hex, node_id(self.store), now_us())
        if len(_encode(event)) > MAX_PAYLOAD:
            raise bad_request(f"event payload exceeds {MAX_PAYLOAD} bytes")
        return event

    async def publish(self, subject: str, payload: dict) -> str:
        """Publish an application event; returns its id once the broker (or database) has it."""
        event = self._event(subject, payload)
        self.start()
        if self.mode == "nats":
            fut = asyncio.run_coroutine_threadsafe(self._publish_nats(event), self._loop)
            await asyncio.wrap_future(fut)
        else:
            await asyncio.to_thread(self._insert, event)
        return event.id

    def publish_sync(self, subject: str, payload: dict, timeout: float = 10) -> str:
        """``publish`` for code running in a thread (not on an event loop)."""
        event = self._event(subject, payload)
        self.start()
        if self.mode == "nats":
            asyncio.run_coroutine_threadsafe(self._publish_nats(event), self._loop).result(timeout)
        else:
            self._insert(event)
        return event.id

    async def _publish_nats(self, event: Event) -> None:
        await self._js.publish(app_subject(self.prefix, event.subject), _encode(event),
                               headers={"Nats-Msg-Id": event.id})

    def _insert(self, event: Event) -> None:
        with self.store.write() as tx:
            tx.conn.execute(insert(federation_app_event).values(
                event_id=event.id, subject=event.subject, payload=orjson.dumps(event.payload).decode(),
                ts_us=event.ts_us))
        self._wake.set()

    # ------------------------------------------------------------------ subscribe
    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        """Call ``handler(event)`` (on the calling loop) for every event whose subject matches."""
        _check_pattern(subject)
        return await self._add(Subscription(self, subject, handler, asyncio.get_running_loop()))

    async def subscribe_changes(self, handler: Handler, *, tenant: str = "*", res_type: str = "*") -> Subscription:
        """Call ``handler(event)`` for committed changes of this node (``event.payload`` is the change)."""
        tenant_token = "*" if tenant == "*" else token(tenant)
        if res_type != "*":
            _check_subject(res_type)
        sub = Subscription(self, f"change.{tenant_token}.{res_type}", handler, asyncio.get_running_loop(),
                           changes=(tenant_token, res_type))
        return await self._add(sub)

    async def _add(self, sub: Subscription) -> Subscription:
        self.start()
        with self._subs_lock:
            self._subs.append(sub)
        if self.mode == "nats":
            if sub.changes is not None:
                # The relay's subjects (``envelope.change_subject``), wildcards kept as wildcards.
                nats_subject = f"{self.prefix}.change.{sub.changes[0]}.{sub.changes[1]}"
            else:
                nats_subject = app_subject(self.prefix, sub.pattern)

            async def on_msg(msg, sub=sub):
                event = _change_event(msg.data) if sub.changes is not None else _decode(msg.data)
                if event is not None:
                    sub.deliver(event)

            fut = asyncio.run_coroutine_threadsafe(self._nc.subscribe(nats_subject, cb=on_msg), self._loop)
            sub.nats_sub = await asyncio.wrap_future(fut)
        return sub

    async def _drop(self, sub: Subscription) -> None:
        with self._subs_lock:
            if sub in self._subs:
                self._subs.remove(sub)
        if sub.nats_sub is not None and self._loop is not None:
            fut = asyncio.run_coroutine_threadsafe(sub.nats_sub.unsubscribe(), self._loop)
            try:
                await asyncio.wrap_future(fut)
            except Exception:  # noqa: BLE001 - the connection is gone already
                pass

    # ------------------------------------------------------------------ database mode
    async def _poll_database(self) -> None:
        last_prune = time.monotonic()
        while not self._stop.is_set():
            await asyncio.to_thread(self._wake.wait, POLL_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._subs_lock:
                subs = list(self._subs)
            try:
                if any(s.changes is None for s in subs):
                    await asyncio.to_thread(self._poll_app_events, subs)
                else:
                    self._last_row = await asyncio.to_thread(self._max_row)
                if any(s.changes is not None for s in subs):
                    await asyncio.to_thread(self._poll_changes, subs)
                else:
                    self._last_seq = await asyncio.to_thread(self.store.outbox.last_seq)
                if time.monotonic() - last_prune > 60:
                    last_prune = time.monotonic()
                    await asyncio.to_thread(self._prune)
                self._database_outage.ok()
            except Exception as exc:  # noqa: BLE001 - a database hiccup: poll again
                if is_database_failure(exc):
                    self._database_outage.failed(exc)
                else:  # a defect: keep its traceback (RepeatFilter collapses repeats)
                    log.exception("events: polling the database failed")

    def _max_row(self) -> int:
        with self.store.read() as tx:
            return int(tx.conn.execute(select(func.max(federation_app_event.c.id))).scalar() or self._last_row)

    def _poll_app_events(self, subs: list[Subscription]) -> None:
        c = federation_app_event.c
        with self.store.read() as tx:
            rows = tx.conn.execute(select(c.id, c.event_id, c.subject, c.payload, c.ts_us)
                                   .where(c.id > self._last_row).order_by(c.id).limit(1000)).all()
        node = node_id(self.store)
        for row in rows:
            self._last_row = row[0]
            event = Event(row[2], orjson.loads(row[3]), row[1], node, row[4])
            for sub in subs:
                if sub.changes is None and subject_matches(sub.pattern, event.subject):
                    sub.deliver(event)

    def _poll_changes(self, subs: list[Subscription]) -> None:
        events = self.store.outbox.read(self._last_seq, 1000)
        node = node_id(self.store)
        for ev in events:
            self._last_seq = ev.seq
            subject = f"change.{token(ev.tenant)}.{ev.res_type}"
            event = Event(subject, {"seq": ev.seq, "tenant": ev.tenant, "type": ev.res_type, "id": ev.res_id,
                                    "version": ev.version_id, "op": ev.op, "ts_us": ev.ts_us},
                          f"{node}:{ev.seq}", node, ev.ts_us)
            for sub in subs:
                if sub.changes is not None and subject_matches(sub.pattern, subject):
                    sub.deliver(event)

    def _prune(self) -> None:
        with self.store.write() as tx:
            tx.conn.execute(delete(federation_app_event).where(federation_app_event.c.ts_us < now_us() - KEEP_S * 1_000_000))


def _change_event(data: bytes) -> Event | None:
    try:
        doc = orjson.loads(data)
        return Event(f"change.{token(doc['tenant'])}.{doc['type']}", doc, f"{doc['node']}:{doc['seq']}", doc["node"],
                     int(doc["ts_us"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def event_bus(node) -> EventBus:
    """The node's bus (made on first call; ``node.services["events"]``)."""
    bus = node.services.get("events")
    if bus is None:
        bus = node.services["events"] = EventBus(node.store, node.settings)
    return bus
