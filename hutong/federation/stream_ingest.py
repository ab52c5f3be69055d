"""The province's follower of the shared broker: cities' envelopes from JetStream, applied exactly once.

It reads ``{prefix}.federation.>`` (envelopes under ``.up.{tenant}.{type}``, heads under
``.head.{tenant}``) with an ordered consumer from the stream sequence recorded in its database
(``federation_stream_position``), applies each batch in one transaction that also records the new
stream sequence, and resumes there after any failure. A repeat stored by the broker after its
duplicate window is dropped by the per-node position (``apply_envelopes``).
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from hutong.config import Settings
from hutong.core.clock import now_us
from hutong.federation import jetstream
from hutong.federation.config import FederationConfig
from hutong.federation.envelope import Envelope
from hutong.federation.follow import stream_messages
from hutong.federation.ingest import apply_envelopes, stream_position
from hutong.federation.outage import Outage, is_database_failure
from hutong.store import Store

log = logging.getLogger("hutong.federation")

NAME = "federation-up"


class StreamIngest:
    def __init__(self, store: Store, settings: Settings, config: FederationConfig, *, batch: int = 500):
        self.store = store
        self.settings = settings
        self.config = config
        self.batch = batch
        self.status: dict = {"connected": False, "applied": 0, "refused": 0, "malformed": 0, "stream_seq": 0,
                             "last_error": "", "down_since_us": 0}
        # Each logged once per outage, not per retry (hutong.federation.outage).
        self.broker_outage = Outage(log, "province stream ingest: the shared broker", "cities' changes wait there")
        self.database_outage = Outage(log, "province stream ingest: the database", "cities' changes wait in the stream")

    async def run(self, stop: asyncio.Event) -> None:
        from hutong.federation.uplink import _sleep

        backoff = 0.5
        while not stop.is_set():
            try:
                await self._follow(stop)
            except Exception as exc:  # noqa: BLE001 - broker or database trouble: resume from the position
                outage = self.database_outage if is_database_failure(exc) else self.broker_outage
                outage.failed(exc)
                if not self.status["down_since_us"]:
                    self.status["down_since_us"] = now_us()
                self.status.update(connected=False, last_error=outage.last_error)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 10.0)

    async def _follow(self, stop: asyncio.Event) -> None:
        url = self.config.shared_nats_url or self.settings.nats_url
        prefix = self.settings.events_subject_prefix
        nc = await jetstream.connect(url, name="hutong-province-ingest", reconnect=False)
        try:
            js = nc.jetstream(timeout=5)
            await jetstream.ensure_stream(js, jetstream.stream_config(self.settings))
            self.broker_outage.ok()
            self.status.update(connected=True, last_error="")
            while not stop.is_set():
                start = await asyncio.to_thread(stream_position, self.store, NAME)
                self.database_outage.ok()
                self.status["down_since_us"] = 0
                batch: list[Envelope] = []
                heads: dict[str, tuple[int, int]] = {}
                scanned: dict[str, int] = {}
                last = start
                async for seq, data in stream_messages(js, f"{prefix}.federation.>", start + 1, idle_s=0.2,
                                                       stream=self.settings.events_stream):
                    last = seq
                    try:
                        doc = orjson.loads(data)
                        if "head_seq" in doc:
                            heads[str(doc["node"])] = (int(doc["head_seq"]), int(doc["head_ts_us"]))
                            if "through" in doc:
                                scanned[str(doc["node"])] = int(doc["through"])
                        else:
                            batch.append(Envelope.parse(doc))
                    except (ValueError, KeyError, TypeError):
                        self.status["malformed"] += 1
                    if len(batch) >= self.batch or stop.is_set():
                        break
                if last == start:
                    continue
                await asyncio.to_thread(self._apply, batch, heads, last, scanned)
                self.status["stream_seq"] = last
        finally:
            try:
                await asyncio.wait_for(nc.close(), 2)
            except Exception:  # noqa: BLE001
                pass

    def _apply(self, batch: list[Envelope], heads: dict, last: int, scanned: dict | None = None) -> None:
        result = apply_envelopes(self.store, batch, direction="up", accept=accepted_up(self.store, self.config),
                                 heads=heads, stream=(NAME, last), strict=False, scanned=scanned)
        self.status["applied"] += result.applied
        if result.refused:
            self.status["refused"] += result.refused
            log.warning("refused %d envelopes from the shared stream (tenant rules)", result.refused)


def accepted_up(store: Store, config: FederationConfig) -> frozenset[str]:
    """What the province takes from cities: any type but those it distributes down (which it owns).
    What actually flows up is each city's ``federation_up_types``."""
    return store.known_types() - config.down_types
