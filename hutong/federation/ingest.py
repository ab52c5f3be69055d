"""Applying another node's changes here: a city's data at the province, the province's registry at a city.

``apply_envelopes`` runs one write transaction that applies a batch of envelopes and moves each
origin node's position (``federation_peer.last_seq``) with them, so a batch is applied exactly once
whatever is repeated by the transport (HTTPS retries, a JetStream repeat after the duplicate
window). Resources are stored under the **origin's tenant**, with their content as the origin
served it (``meta.source`` included); only ``meta.versionId``/``lastUpdated`` are this node's.
References are not re-checked: the origin checked them, and a partial type selection ("summaries
only") may leave some pointing at resources that stay at the origin.

**The conflict rule** (docs/federation.md). Every resource has one owner: the node that created
it (its origin). A type flows one way only (cities up, the province down), so only a replica
changed locally, or two nodes using the same id, can conflict:

1. *local-change-overwritten*: the replica's current version is not the one ingest last wrote (it
   was changed here). The origin's version is applied (the owner wins); the local version stays in
   the resource's history and is recorded in ``federation_conflict`` with its content.
2. *id-collision*: the type and id exist here and are not a replica of this origin (made here, or
   owned by another node). The local resource stays; the incoming version is recorded in
   ``federation_conflict`` with its content (resolution ``kept-local``), as are its later versions,
   until an operator resolves it.

Nothing is dropped silently: every conflict is a row, counted per peer and shown by the status API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import case, insert, select, update

from hutong.core.clock import now_us
from hutong.federation.envelope import Envelope
from hutong.federation.tables import (
    federation_conflict,
    federation_peer,
    federation_replica,
    federation_stream_position,
)
from hutong.store import Store


@dataclass
class ApplyResult:
    """What one batch did."""

    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    conflicts: int = 0
    skipped: int = 0  # types this node does not accept from that direction
    refused: int = 0  # envelopes breaking a rule of the link (with ``strict=False``)
    through: dict[str, int] = field(default_factory=dict)  # node -> last seq applied

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class IngestRefused(ValueError):
    """The batch breaks a rule of the link (a node writing another node's tenant, or the receiver's own)."""


def _peer(tx, node: str, tenant: str, direction: str, lock: bool):
    p = federation_peer.c
    stmt = select(federation_peer).where(p.node_id == node)
    if lock:
        stmt = stmt.with_for_update()
    row = tx.conn.execute(stmt).first()
    if row is None:
        tx.conn.execute(insert(federation_peer).values(
            node_id=node, tenant=tenant, direction=direction, last_seq=0, last_origin_us=0, last_applied_us=0,
            head_seq=0, head_origin_us=0, last_contact_us=0, applied=0, duplicates=0, gaps=0, conflicts=0,
            stream_seq=0))
        row = tx.conn.execute(select(federation_peer).where(p.node_id == node)).first()
    return row


def peer_position(store: Store, node: str) -> int:
    """The last seq of ``node`` applied here (0 when never heard of)."""
    p = federation_peer.c
    with store.read() as tx:
        return int(tx.conn.execute(select(p.last_seq).where(p.node_id == node)).scalar() or 0)


def stream_position(store: Store, name: str) -> int:
    c = federation_stream_position.c
    with store.read() as tx:
        return int(tx.conn.execute(select(c.stream_seq).where(c.name == name)).scalar() or 0)


def _set_stream_position(tx, name: str, seq: int) -> None:
    c = federation_stream_position.c
    if tx.conn.execute(update(federation_stream_position).where(c.name == name).values(stream_seq=seq)).rowcount == 0:
        tx.conn.execute(insert(federation_stream_position).values(name=name, stream_seq=seq))


def apply_envelopes(store: Store, envelopes: list[Envelope], *, direction: str, accept: frozenset[str],
                    heads: dict[str, tuple[int, int]] | None = None, stream: tuple[str, int] | None = None,
                    expect_tenant: str | None = None, strict: bool = True,
                    scanned: dict[str, int] | None = None) -> ApplyResult:
    """Apply ``envelopes`` (each node's in its seq order) in one transaction; see the module docstring.

    ``accept``: resource types taken from this direction (others only move the position);
    ``heads``: node → (head seq, head commit time) the origin reported, for the lag;
    ``stream``: (name, stream sequence) to record with the batch (a JetStream follower);
    ``expect_tenant``: every envelope must be of this tenant (the HTTPS caller's);
    ``scanned``: node → how far the origin's selection has read its change log, this batch included.
    Events up to there that are not in this or an earlier batch are not for this node (other types,
    other tenants, echoes), so the node's position moves past them: ``events_behind`` is then 0 when
    caught up, not the count of the origin's events that never flow here.
    Raises ``IngestRefused`` (nothing applied) when an envelope breaks a rule of the link, or with
    ``strict=False`` (a shared stream, where one bad sender must not stop the others) skips and
    counts it."""
    own_tenant = store.settings.default_tenant
    result = ApplyResult()
    kept = []
    for env in envelopes:
        problem = None
        if expect_tenant is not None and env.tenant != expect_tenant:
            problem = f"envelope of tenant {env.tenant!r} from a caller of tenant {expect_tenant!r}"
        elif direction == "up" and env.tenant == own_tenant:
            problem = f"a city may not write the province's own tenant {own_tenant!r}"
        if problem is None:
            kept.append(env)
        elif strict:
            raise IngestRefused(problem)
        else:
            result.refused += 1
    envelopes = kept
    now = now_us()
    with store.write() as tx:
        tx.check_references = False
        peers: dict[str, object] = {}
        state: dict[str, dict] = {}
        for env in envelopes:
            if env.node not in peers:
                peers[env.node] = _peer(tx, env.node, env.tenant, direction, store.is_postgres)
                row = peers[env.node]
                state[env.node] = {"last_seq": row.last_seq, "last_origin_us": row.last_origin_us, "applied": 0,
                                   "duplicates": 0, "gaps": 0, "conflicts": 0}
            if peers[env.node].tenant != env.tenant:
                if strict:
                    raise IngestRefused(f"node {env.node[:12]} is registered for tenant "
                                        f"{peers[env.node].tenant!r}, not {env.tenant!r}")
                result.refused += 1
                continue
            st = state[env.node]
            if env.seq <= st["last_seq"]:
                st["duplicates"] += 1
                result.duplicates += 1
                continue
            if env.prev and env.prev > st["last_seq"]:
                st["gaps"] += 1
                result.gaps += 1
            st["last_seq"], st["last_origin_us"] = env.seq, env.ts_us
            if env.res_type not in accept or not store.is_known_type(env.res_type):
                result.skipped += 1
                continue
            conflicts = _apply_one(tx, env, now)
            st["applied"] += 1
            st["conflicts"] += conflicts
            result.applied += 1
            result.conflicts += conflicts
        p = federation_peer.c
        for node, through in (scanned or {}).items():
            if node in state:
                st = state[node]
                st["last_seq"] = max(st["last_seq"], int(through))
        for node, st in state.items():
            values = {"last_seq": st["last_seq"], "last_origin_us": st["last_origin_us"], "last_applied_us": now,
                      "last_contact_us": now, "applied": p.applied + st["applied"],
                      "duplicates": p.duplicates + st["duplicates"], "gaps": p.gaps + st["gaps"],
                      "conflicts": p.conflicts + st["conflicts"]}
            if heads and node in heads:
                # A head reported before the last envelopes were sent may be older than them.
                head_seq, head_us = heads[node]
                values["head_seq"] = max(head_seq, st["last_seq"])
                values["head_origin_us"] = max(head_us, st["last_origin_us"])
            tx.conn.execute(update(federation_peer).where(p.node_id == node).values(**values))
            result.through[node] = st["last_seq"]
        for node, (head_seq, head_us) in (heads or {}).items():
            if node not in state:  # a heartbeat: nothing new, the origin's head and the contact time
                values = {"head_seq": head_seq, "head_origin_us": head_us, "last_contact_us": now}
                if scanned and node in scanned:
                    through = int(scanned[node])
                    values["last_seq"] = case((p.last_seq < through, through), else_=p.last_seq)
                tx.conn.execute(update(federation_peer).where(p.node_id == node).values(**values))
                if scanned and node in scanned:
                    result.through[node] = int(tx.conn.execute(
                        select(p.last_seq).where(p.node_id == node)).scalar() or 0)
        if stream is not None:
            _set_stream_position(tx, stream[0], stream[1])
    return result


def _conflict(tx, env: Envelope, kind: str, resolution: str, now: int, *, local_version: int | None,
              local_tenant: str | None, content: str | None) -> None:
    tx.conn.execute(insert(federation_conflict).values(
        detected_us=now, kind=kind, tenant=env.tenant, res_type=env.res_type, res_id=env.res_id,
        origin_node=env.node, origin_seq=env.seq, origin_version=env.version_id, local_version=local_version,
        local_tenant=local_tenant, resolution=resolution, content=content, status="open"))


def _apply_one(tx, env: Envelope, now: int) -> int:
    """Apply one envelope; returns the number of conflicts it raised (0 or 1)."""
    r = federation_replica.c
    key = (r.res_type == env.res_type) & (r.res_id == env.res_id)
    replica = tx.conn.execute(select(federation_replica).where(key)).first()
    current = tx.read(env.res_type, env.res_id, for_update=True)
    live = current is not None and not current.deleted
    conflicts = 0
    if live and (replica is None or replica.origin_node != env.node):
        _conflict(tx, env, "id-collision", "kept-local", now, local_version=current.version_id,
                  local_tenant=current.tenant, content=env.resource)
        return 1
    if replica is not None and replica.origin_node == env.node and current is not None \
            and current.version_id != replica.local_version:
        _conflict(tx, env, "local-change-overwritten", "origin-applied", now, local_version=current.version_id,
                  local_tenant=current.tenant, content=current.content)
        conflicts = 1
    saved_tenant = tx.tenant
    tx.tenant = env.tenant
    try:
        if env.op == "delete":
            outcome = tx.delete(env.res_type, env.res_id)
        else:
            outcome = tx.update(env.res_type, env.res_id, orjson.loads(env.resource))
    finally:
        tx.tenant = saved_tenant
    stored = outcome.stored
    local_version = stored.version_id if stored is not None else 0
    values = {"origin_node": env.node, "origin_tenant": env.tenant, "origin_seq": env.seq,
              "origin_version": env.version_id, "origin_us": env.ts_us, "local_version": local_version,
              "applied_us": now}
    if replica is None:
        tx.conn.execute(insert(federation_replica).values(res_type=env.res_type, res_id=env.res_id, **values))
    else:
        tx.conn.execute(update(federation_replica).where(key).values(**values))
    return conflicts


def replica_versions(store: Store, keys: list[tuple[str, str]], conn=None) -> dict[tuple[str, str], int]:
    """For (type, id) keys: the local version that federation ingest wrote (to skip echoing it back)."""
    if not keys:
        return {}
    r = federation_replica.c
    out: dict[tuple[str, str], int] = {}
    by_type: dict[str, list[str]] = {}
    for t, i in keys:
        by_type.setdefault(t, []).append(i)

    def run(c):
        for t, ids in by_type.items():
            for k in range(0, len(ids), 500):
                for row in c.execute(select(r.res_type, r.res_id, r.local_version)
                                     .where(r.res_type == t, r.res_id.in_(ids[k:k + 500]))):
                    out[(row[0], row[1])] = row[2]

    if conn is not None:
        run(conn)
    else:
        with store.read() as tx:
            run(tx.conn)
    return out
