"""The relay: every committed change event of the outbox, published to NATS JetStream in commit order.

Position: the relay acts first and records after. It reads the events after its recorded position
(``consumer_position`` row ``federation-relay``), publishes them pipelined on one connection (so the
broker stores them in that order), waits for the acknowledgements, and then records the position of
the last event acknowledged without a gap. A crash or a broker outage between publishing and
recording makes it publish some events again when it resumes: the broker drops those repeats by
event id (``Nats-Msg-Id`` = ``node:seq``) within its duplicate window, and consumers drop the rest
by (node, seq) (``hutong.federation.ingest`` keeps a position per origin node for that), so each
event is seen once. Nothing committed is ever skipped: the outbox is the queue while the broker is
away, however long.

Order: ``seq`` order is commit order (the outbox guarantees it on both backends), events are
published in ``seq`` order on one connection, and after a failure the relay resumes at the first
unacknowledged event, so the stream holds each node's events in commit order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from hutong.config import Settings
from hutong.core.clock import now_us
from hutong.federation import jetstream
from hutong.federation.envelope import change_subject, envelopes_from_outbox
from hutong.federation.identity import node_id
from hutong.federation.outage import Outage, is_database_failure
from hutong.store import Store

log = logging.getLogger("hutong.federation")

POSITION = "federation-relay"


@dataclass
class RelayStatus:
    """What the relay is doing, for the status API and the console."""

    connected: bool = False
    published: int = 0
    duplicates: int = 0  # acknowledged by the broker as repeats (resumed after a crash)
    position: int = 0
    last_error: str = ""
    down_since_us: int = 0
    batches: int = 0
    started_us: int = field(default_factory=now_us)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a publish (it is down, unreachable, or too slow)."""


class Relay:
    """Publishes the outbox to JetStream; ``run`` until ``stop`` is set (reconnecting with backoff)."""

    def __init__(self, store: Store, settings: Settings, *, url: str | None = None, batch: int = 500,
                 ack_timeout: float = 5.0, poll_s: float = 0.2, position_name: str = POSITION):
        self.store = store
        self.settings = settings
        self.url = url if url is not None else settings.nats_url
        self.batch = batch
        self.ack_timeout = ack_timeout
        self.poll_s = poll_s
        self.position_name = position_name
        self.prefix = settings.events_subject_prefix
        self.status = RelayStatus()
        self._nc = None
        self._js = None
        self._wake: asyncio.Event | None = None
        # Each logged once per outage, not per retry (hutong.federation.outage).
        self.broker_outage = Outage(log, "relay: the NATS broker", "events queue in the outbox")
        self.database_outage = Outage(log, "relay: the database", "nothing is published until it is back")

    # ------------------------------------------------------------------ connection
    async def _connect(self) -> None:
        self._nc = await jetstream.connect(self.url, name=f"hutong-relay-{node_id(self.store)[:8]}", reconnect=False)
        self._js = self._nc.jetstream(timeout=self.ack_timeout)
        await jetstream.ensure_stream(self._js, jetstream.stream_config(self.settings))
        self.status.connected = True

    async def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        self.status.connected = False
        if nc is not None:
            try:
                await asyncio.wait_for(nc.close(), 2)
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to keep
                pass

    # ------------------------------------------------------------------ one step
    async def publish_batch(self) -> int:
        """Publish the next batch after the recorded position; returns how many were acknowledged.

        Raises ``BrokerUnavailable`` when the broker failed part-way (the position then covers what
        was acknowledged in order, and the rest is published again on the next call)."""
        if self._js is None:
            await self._connect()
        node = node_id(self.store)
        after = await asyncio.to_thread(self.store.outbox.position, self.position_name)
        self.status.position = after
        rows = await asyncio.to_thread(self.store.outbox.read, after, self.batch)
        if not rows:
            return 0
        envs = envelopes_from_outbox(node, after, [(e, None) for e in rows])
        futures = []
        try:
            for env in envs:
                futures.append(await self._js.publish_async(
                    change_subject(self.prefix, env.tenant, env.res_type), env.change_bytes(),
                    headers={"Nats-Msg-Id": env.id}))
            results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), self.ack_timeout)
        except Exception as exc:  # noqa: BLE001 - connection lost, timeout: resume from the position
            for f in futures:
                f.cancel()
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        through, failure = after, None
        for env, res in zip(envs, results, strict=True):
            if isinstance(res, BaseException):
                failure = res
                break
            through = env.seq
            self.status.published += 1
            if res.duplicate:
                self.status.duplicates += 1
        if through > after:
            await asyncio.to_thread(self.store.outbox.advance, self.position_name, through)
            self.status.position = through
        self.status.batches += 1
        if failure is not None:
            raise BrokerUnavailable(f"{type(failure).__name__}: {failure}")
        return len(envs)

    # ------------------------------------------------------------------ the loop
    def wake(self) -> None:
        """Called (from any thread) after a local commit."""
        wake, loop = self._wake, getattr(self, "_loop", None)
        if wake is not None and loop is not None:
            loop.call_soon_threadsafe(wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        backoff = 0.2
        while not stop.is_set():
            try:
                n = await self.publish_batch()
                self._recovered()
                backoff = 0.2
                if n < self.batch:
                    await _wait_any(stop, self._wake, self.poll_s)
                    self._wake.clear()
            except Exception as exc:  # noqa: BLE001 - the broker or the database is away: the outbox queues
                if is_database_failure(exc):
                    self.database_outage.failed(exc)
                    self.status.last_error = self.database_outage.last_error
                else:  # the connection may be half-dead: start afresh
                    self.broker_outage.failed(exc)
                    self.status.last_error = self.broker_outage.last_error
                    await self._disconnect()
                if not self.status.down_since_us:
                    self.status.down_since_us = now_us()
                await _wait_any(stop, None, backoff)
                backoff = min(backoff * 2, 5.0)
        await self._disconnect()

    def _recovered(self) -> None:
        """A batch went through (or there was nothing to send): whatever was away is back."""
        self.broker_outage.ok()
        self.database_outage.ok()
        self.status.down_since_us = 0
        self.status.last_error = ""


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    done, pending = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()


def run_relay_until(store: Store, settings: Settings, seconds: float, **kw) -> RelayStatus:
    """Run a relay for ``seconds`` (tests, benchmarks and ``hutong federation relay --for``)."""
    relay = Relay(store, settings, **kw)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task

    t0 = time.perf_counter()
    asyncio.run(main())
    log.debug("relay ran %.1f s", time.perf_counter() - t0)
    return relay.status
