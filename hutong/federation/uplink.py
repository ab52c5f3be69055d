"""A city's link up to the province: its changes, in commit order, exactly once, after any outage.

What goes up: events of the city's own tenant whose type is in ``federation_up_types``, except
versions that federation ingest wrote here (they came from elsewhere; sending them back would echo).
Each is a replication envelope (``hutong.federation.envelope``) carrying the version's JSON.

Two transports, one selection:

- **HTTPS** (no broker shared with the province): the uplink asks the province how far it has
  applied this node (``GET /api/federation/peers/{node}``), then ``POST``s batches to
  ``/api/federation/ingest``; the province applies each batch in one transaction together with the
  new position and answers it. The province's committed position is the resume point, so a retry
  after a lost answer is recognised there as a repeat, and nothing is skipped.
- **JetStream** (a broker shared with the province, ``federation_nats_url``): envelopes are
  published to ``{prefix}.federation.up.{tenant}.{type}`` (``Nats-Msg-Id`` ``{node}:{seq}:up``), the
  position (``federation-uplink``) recorded after the acknowledgements; the province follows the
  stream and de-duplicates by (node, seq).

While the province or the broker is unreachable the city keeps working: the outbox is the queue.
The uplink retries with backoff (up to 10 s between attempts) and catches up in order. Every few
seconds, also when idle, it reports the city's head (newest seq and its commit time) so that the
province can show the city's lag.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from hutong.config import Settings
from hutong.federation import jetstream
from hutong.federation.config import FederationConfig
from hutong.federation.envelope import Envelope, up_subject
from hutong.federation.identity import node_id
from hutong.federation.ingest import replica_versions
from hutong.federation.outage import Outage, is_database_failure
from hutong.store import Store

log = logging.getLogger("hutong.federation")

POSITION = "federation-uplink"
HEARTBEAT_S = 3.0


def head(store: Store) -> tuple[int, int]:
    """The newest change (seq, commit time in µs) of this node (0, 0 when none)."""
    last = store.outbox.last_seq()
    if not last:
        return 0, 0
    events = store.outbox.read(last - 1, 1)
    return (events[0].seq, events[0].ts_us) if events else (last, 0)


def select_up(store: Store, config: FederationConfig, after: int, limit: int) -> tuple[list[Envelope], int]:
    """Envelopes to send after position ``after`` (``prev`` chained from ``after``), and the seq the
    selection scanned through (events skipped on the way need not be read again)."""
    node = node_id(store)
    top = store.outbox.last_seq()  # read first: every event up to it has committed
    rows = store.outbox.read_versions(after, limit, set(config.up_types))
    echoes = replica_versions(store, [(e.res_type, e.res_id) for e, _ in rows])
    out: list[Envelope] = []
    prev = after
    for event, content in rows:
        if event.tenant != config.tenant or echoes.get((event.res_type, event.res_id)) == event.version_id:
            continue
        out.append(Envelope.of(node, prev, event, content))
        prev = event.seq
    if len(rows) == limit:
        return out, rows[-1][0].seq
    return out, max(top, rows[-1][0].seq if rows else after)


class Uplink:
    """Runs the city's push-up (``run(stop)``); ``status`` says how it is going."""

    def __init__(self, store: Store, settings: Settings, config: FederationConfig, *, batch: int = 500,
                 timeout: float = 30.0):
        self.store = store
        self.settings = settings
        self.config = config
        self.batch = batch
        self.timeout = timeout
        self.status: dict = {"transport": config.uplink, "connected": False, "sent": 0, "position": 0,
                             "last_error": "", "down_since_us": 0}
        self._wake: asyncio.Event | None = None
        self._loop = None
        # Each logged once per outage, not per retry (hutong.federation.outage).
        self.link_outage = Outage(log, f"uplink to the province ({config.uplink})", "changes queue in the outbox")
        self.database_outage = Outage(log, "uplink: the database", "nothing is sent until it is back")

    def wake(self) -> None:
        if self._wake is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        backoff = 0.5
        while not stop.is_set():
            try:
                if self.config.uplink == "https":
                    await self._run_https(stop)
                else:
                    await self._run_jetstream(stop)
                return
            except Exception as exc:  # noqa: BLE001 - the link or the database is down: the outbox queues
                if is_database_failure(exc):
                    self.database_outage.failed(exc)
                    self.status["last_error"] = self.database_outage.last_error
                else:
                    self.link_outage.failed(exc)
                    self.status.update(connected=False, down_since_us=self.link_outage.since_us,
                                       last_error=self.link_outage.last_error)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 10.0)

    def _up(self) -> None:
        """The province (or the broker) answered."""
        self.link_outage.ok()
        self.status.update(connected=True, down_since_us=0, last_error="")

    def _database_ok(self) -> None:
        self.database_outage.ok()

    # ------------------------------------------------------------------ HTTPS
    def _headers(self) -> dict:
        # The node's identity as the province's caller, believed by the province only with the
        # trusted-gateway key both share (HUTONG_SECURITY_GATEWAY_KEY; hutong/security).
        from hutong.security.service import node_identity_headers

        return node_identity_headers(self.store, self.config.tenant, f"node-{node_id(self.store)}")

    async def _run_https(self, stop: asyncio.Event) -> None:
        base = self.config.province_url
        node = node_id(self.store)
        async with httpx.AsyncClient(base_url=base, timeout=self.timeout, headers=self._headers()) as client:
            r = await client.get(f"/api/federation/peers/{node}")
            r.raise_for_status()
            position = int(r.json()["last_seq"])
            scanned = position
            self._up()
            last_beat = 0.0
            while not stop.is_set():
                envs, through = await asyncio.to_thread(select_up, self.store, self.config, scanned, self.batch)
                self._database_ok()
                loop_time = asyncio.get_running_loop().time()
                if not envs and loop_time - last_beat < HEARTBEAT_S and through == scanned:
                    await _sleep(stop, 0.25, self._wake)
                    self._wake.clear()
                    continue
                if envs:
                    # prev chains from what the province has applied, not from what was scanned locally
                    envs[0] = _with_prev(envs[0], position)
                hd = await asyncio.to_thread(head, self.store)
                # through: how far this selection read (the province moves past what never flows up)
                body = b'{"node":"%s","tenant":"%s","head":{"seq":%d,"ts_us":%d},"through":%d,"events":[%s]}' % (
                    node.encode(), self.config.tenant.encode(), hd[0], hd[1], min(through, hd[0]),
                    b",".join(e.replication_bytes() for e in envs))
                r = await client.post("/api/federation/ingest", content=body,
                                      headers={"Content-Type": "application/json"})
                if r.status_code >= 400:
                    raise RuntimeError(f"province answered {r.status_code}: {r.text[:300]}")
                answer = r.json()
                position = int(answer["through"].get(node, position)) if envs else position
                scanned = max(through, position)
                last_beat = loop_time
                self.status["sent"] += len(envs)
                self.status["position"] = position

    # ------------------------------------------------------------------ JetStream
    async def _run_jetstream(self, stop: asyncio.Event) -> None:
        node = node_id(self.store)
        prefix = self.settings.events_subject_prefix
        nc = await jetstream.connect(self.config.shared_nats_url, name=f"hutong-uplink-{node[:8]}", reconnect=False)
        try:
            js = nc.jetstream(timeout=5)
            await jetstream.ensure_stream(js, jetstream.stream_config(self.settings))
            self._up()
            position = await asyncio.to_thread(self.store.outbox.position, POSITION)
            scanned = position
            last_beat = 0.0
            while not stop.is_set():
                envs, through = await asyncio.to_thread(select_up, self.store, self.config, scanned, self.batch)
                self._database_ok()
                loop_time = asyncio.get_running_loop().time()
                if loop_time - last_beat >= HEARTBEAT_S:
                    hd = await asyncio.to_thread(head, self.store)
                    # through: what every envelope before this message covers (all acknowledged)
                    await js.publish(f"{prefix}.federation.head.{self.config.tenant}",
                                     b'{"node":"%s","tenant":"%s","head_seq":%d,"head_ts_us":%d,"through":%d}' % (
                                         node.encode(), self.config.tenant.encode(), hd[0], hd[1],
                                         min(scanned, hd[0])))
                    last_beat = loop_time
                if not envs:
                    scanned = through
                    await _sleep(stop, 0.25, self._wake)
                    self._wake.clear()
                    continue
                envs[0] = _with_prev(envs[0], position)
                futures = [await js.publish_async(up_subject(prefix, e.tenant, e.res_type), e.replication_bytes(),
                                                  headers={"Nats-Msg-Id": e.id + ":up"}) for e in envs]
                results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 10)
                acked = position
                for env, res in zip(envs, results, strict=True):
                    if isinstance(res, BaseException):
                        break
                    acked = env.seq
                if acked > position:
                    await asyncio.to_thread(self.store.outbox.advance, POSITION, acked)
                    self.status["sent"] += sum(1 for e in envs if e.seq <= acked)
                    position = acked
                    self.status["position"] = position
                if acked != envs[-1].seq:
                    raise RuntimeError("the broker did not acknowledge every envelope")
                scanned = through
        finally:
            try:
                await asyncio.wait_for(nc.close(), 2)
            except Exception:  # noqa: BLE001
                pass


def _with_prev(env: Envelope, prev: int) -> Envelope:
    from dataclasses import replace

    return replace(env, prev=prev)


async def _sleep(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    waiters = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(wake.wait())] if wake else [])
    _, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()
