"""Audit retention: events older than ``HUTONG_AUDIT_RETENTION_DAYS`` (183 by default: 网络安全法
Article 21 asks for at least six months) are purged from the front of the chain, and the chain stays
verifiable.

A purge first verifies the whole chain (a purge never hides tampering: a broken chain is not cut),
then records a **cut**: the sequence number and hash of the last purged event, how many events were
purged and when, signed (JWS, ES256) with the node's signing key; then deletes the events up to it.
``verify`` continues the chain from the newest cut: the first remaining event's ``prev_hash`` must be
the cut's hash, and the cut's signature must verify with the node key it names (retired keys
included, so rotation does not orphan old cuts). Removing further events at the front leaves no
signed cut to continue from, and is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy import delete, func, insert, select

from hutong.core.clock import now_us
from hutong.security.keys import ALG, NodeKeys
from hutong.security.tables import audit_anchor, audit_cut, audit_event, security_node_key

log = logging.getLogger("hutong.security.audit")

DAY_US = 86_400_000_000
#: Events deleted per statement (each batch in its own transaction: a purge never holds the write lock long).
PURGE_BATCH = 5000


@dataclass
class Purge:
    purged: int
    cut_seq: int | None = None
    refused: str = ""

    def text(self) -> str:
        if self.refused:
            return f"audit purge refused: {self.refused}"
        if not self.purged:
            return "audit purge: nothing older than the retention period"
        return f"audit purge: {self.purged} events removed up to event {self.cut_seq} (signed cut recorded)"


def sign_cut(keys: NodeKeys, seq: int, digest: str, ts_us: int, purged: int) -> str:
    """The compact JWS of a cut (the node's signing key; ``kid`` in the header)."""
    key = keys.signing()
    payload = orjson.dumps({"seq": seq, "hash": digest, "ts_us": ts_us, "purged": purged}, option=orjson.OPT_SORT_KEYS)
    return jws.serialize_compact({"alg": ALG, "kid": key.kid}, payload, key, algorithms=[ALG])


def check_cut(conn, row) -> str:
    """'' when the cut's signature verifies and says what its columns say; else the problem."""
    try:
        compact = jws.extract_compact(row.signature.encode())
        kid = compact.headers().get("kid")
        public = conn.execute(select(security_node_key.c.public_jwk).where(security_node_key.c.kid == kid)).scalar()
        if public is None:
            return "the cut is signed with a key this node does not have"
        key = ECKey.import_key(orjson.loads(public))
        claims = orjson.loads(jws.deserialize_compact(row.signature, key, algorithms=[ALG]).payload)
    except (JoseError, ValueError, TypeError, orjson.JSONDecodeError):
        return "the cut's signature does not verify"
    if (claims.get("seq"), claims.get("hash"), claims.get("purged")) != (row.seq, row.hash, row.purged):
        return "the cut's columns differ from what was signed"
    return ""


def purge(store, retention_days: int, *, now: int | None = None, keys: NodeKeys | None = None) -> Purge:
    """Remove events older than ``retention_days`` from the front of the chain, leaving a signed cut."""
    from hutong.security.audit import verify

    if retention_days <= 0:
        return Purge(0, refused="retention must be at least one day")
    cutoff = (now if now is not None else now_us()) - retention_days * DAY_US
    with store.read() as tx:
        first = tx.conn.execute(select(func.min(audit_event.c.seq))).scalar()
        # the last event of the old prefix: events are appended in time order, so every event up to it
        # is older than the cutoff (an event recorded with a clock step backwards stops the cut early)
        newer = tx.conn.execute(select(func.min(audit_event.c.seq)).where(audit_event.c.ts_us >= cutoff)).scalar()
        last = tx.conn.execute(select(func.max(audit_event.c.seq))).scalar()
    if first is None:
        return Purge(0)
    cut = (newer - 1) if newer is not None else last
    if cut < first:
        return Purge(0)
    checked = verify(store)
    if not checked.ok:
        return Purge(0, refused=checked.text())
    with store.read() as tx:
        digest = tx.conn.execute(select(audit_event.c.hash).where(audit_event.c.seq == cut)).scalar()
    purged = cut - first + 1
    ts = now_us()
    signature = sign_cut(keys or NodeKeys(store), cut, digest, ts, purged)
    with store.write() as tx:
        tx.conn.execute(insert(audit_cut).values(seq=cut, hash=digest, ts_us=ts, purged=purged, signature=signature))
    start = first
    while start <= cut:
        end = min(cut, start + PURGE_BATCH - 1)
        with store.write() as tx:
            tx.conn.execute(delete(audit_event).where(audit_event.c.seq >= start, audit_event.c.seq <= end))
            tx.conn.execute(delete(audit_anchor).where(audit_anchor.c.seq >= start, audit_anchor.c.seq < end))
        start = end + 1
    log.info("audit purge: %d events up to %d removed (retention %d days)", purged, cut, retention_days)
    return Purge(purged, cut)


class RetentionJob:
    """Purges once a day in a running node (and once shortly after start-up)."""

    def __init__(self, store, settings, keys: NodeKeys):
        from hutong.core.periodic import Periodic

        self.store, self.days, self.keys = store, int(getattr(settings, "audit_retention_days", 183)), keys
        self._first = True
        self._periodic = Periodic("hutong-audit-retention", 60.0, self._tick, log, "audit retention purge")
        self._next = 0

    def start(self) -> None:
        if self.days > 0:
            self._periodic.start()

    def stop(self) -> None:
        if self.days > 0:
            self._periodic.stop()

    def _tick(self) -> None:
        now = now_us()
        if now < self._next:
            return
        self._next = now + DAY_US
        result = purge(self.store, self.days, keys=self.keys)
        if result.refused:
            log.error(result.text())
