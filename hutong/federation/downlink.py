"""Downward distribution: what the province publishes for every city (the registry of institutions
and practitioners, the recognition catalog, terminology, statistics forms), pulled by each city.

One generic mechanism for any set of types (``federation_down_types``): the province serves its
own tenant's changes of those types as a feed (``GET /api/federation/feed?after=N``,
``feed_page``); a city polls it with the position it has applied (``federation_peer.last_seq`` of
the province's node, committed with the applied writes), applies each page in one transaction
(``apply_envelopes`` with direction ``down``) and asks again. A capability that adds a type the
province distributes (the recognition catalog's ActivityDefinitions, a statistics Questionnaire)
needs nothing of its own: it names the type in the setting (or a set in ``config.TYPE_SETS``).
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import orjson

from hutong.core.clock import now_us
from hutong.federation.config import FederationConfig
from hutong.federation.envelope import Envelope
from hutong.federation.identity import node_id
from hutong.federation.ingest import apply_envelopes
from hutong.federation.outage import Outage, is_database_failure
from hutong.federation.tables import federation_peer
from hutong.store import Store

log = logging.getLogger("hutong.federation")

POLL_S = 2.0


def feed_page(store: Store, config: FederationConfig, after: int, limit: int = 500) -> dict:
    """The province's changes of the down types after ``after``: ``{"node", "tenant", "events",
    "through", "head"}``; ``through`` is how far it scanned (ask after it next time)."""
    limit = max(1, min(int(limit), 2000))
    node = node_id(store)
    top = store.outbox.last_seq()
    rows = store.outbox.read_versions(after, limit, set(config.down_types))
    events = [Envelope.of(node, 0, e, content) for e, content in rows if e.tenant == config.tenant]
    through = rows[-1][0].seq if len(rows) == limit else max(top, rows[-1][0].seq if rows else after)
    return {"node": node, "tenant": config.tenant, "events": events, "through": through,
            "head": {"seq": top}}


def feed_bytes(page: dict) -> bytes:
    """The feed page as JSON (envelopes spliced in without re-parsing their resources)."""
    head = orjson.dumps({k: v for k, v in page.items() if k != "events"})
    return head[:-1] + b',"events":[' + b",".join(e.replication_bytes() for e in page["events"]) + b"]}"


class Downlink:
    """A city's pull of the province's feed (``run(stop)``)."""

    def __init__(self, store: Store, config: FederationConfig, *, timeout: float = 30.0):
        self.store = store
        self.config = config
        self.timeout = timeout
        self.status: dict = {"connected": False, "applied": 0, "through": 0, "last_error": "", "down_since_us": 0}
        # Each logged once per outage, not per retry (hutong.federation.outage).
        self.link_outage = Outage(log, "downlink from the province", "the local copy stays as it is")
        self.database_outage = Outage(log, "downlink: the database")

    def _position(self) -> tuple[str | None, int]:
        from sqlalchemy import select

        p = federation_peer.c
        with self.store.read() as tx:
            row = tx.conn.execute(select(p.node_id, p.stream_seq).where(p.direction == "down")).first()
        return (row[0], int(row[1])) if row else (None, 0)

    def _save_scan(self, node: str, through: int) -> None:
        from sqlalchemy import update

        p = federation_peer.c
        with self.store.write() as tx:
            tx.conn.execute(update(federation_peer).where(p.node_id == node, p.stream_seq < through)
                            .values(stream_seq=through, last_contact_us=now_us()))

    async def run(self, stop: asyncio.Event) -> None:
        from hutong.federation.uplink import _sleep
        from hutong.security.service import node_identity_headers

        headers = node_identity_headers(self.store, self.config.tenant, f"node-{node_id(self.store)}")
        backoff = 0.5
        while not stop.is_set():
            try:
                async with httpx.AsyncClient(base_url=self.config.province_url, timeout=self.timeout,
                                             headers=headers) as client:
                    while not stop.is_set():
                        node, after = await asyncio.to_thread(self._position)
                        r = await client.get("/api/federation/feed", params={"after": after, "limit": 500})
                        r.raise_for_status()
                        page = r.json()
                        self.link_outage.ok()
                        self.status.update(connected=True, down_since_us=0, last_error="")
                        envs = [Envelope.parse(e) for e in page["events"]]
                        result = await asyncio.to_thread(
                            apply_envelopes, self.store, envs, direction="down", accept=self.config.down_types,
                            heads={page["node"]: (int(page["head"]["seq"]), 0)}, expect_tenant=page["tenant"],
                            scanned={page["node"]: min(int(page["through"]), int(page["head"]["seq"]))})
                        self.status["applied"] += result.applied
                        if node is None:
                            await asyncio.to_thread(_ensure_peer, self.store, page["node"], page["tenant"])
                        await asyncio.to_thread(self._save_scan, page["node"], int(page["through"]))
                        self.status["through"] = int(page["through"])
                        self.database_outage.ok()
                        backoff = 0.5
                        if len(envs) < 500:
                            await _sleep(stop, POLL_S)
            except Exception as exc:  # noqa: BLE001 - the province is unreachable: keep the local copy, retry
                if is_database_failure(exc):
                    self.database_outage.failed(exc)
                    self.status["last_error"] = self.database_outage.last_error
                else:
                    self.link_outage.failed(exc)
                    self.status.update(connected=False, down_since_us=self.link_outage.since_us,
                                       last_error=self.link_outage.last_error)
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 10.0)


def _ensure_peer(store: Store, node: str, tenant: str) -> None:
    from hutong.federation.ingest import _peer

    with store.write() as tx:
        _peer(tx, node, tenant, "down", store.is_postgres)
