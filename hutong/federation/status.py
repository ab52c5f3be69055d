"""What the province (or a city) shows about its links: each peer's position, lag and conflicts."""

from __future__ import annotations

from sqlalchemy import func, select

from hutong.core.clock import instant, now_us
from hutong.federation.tables import federation_conflict, federation_peer
from hutong.store import Store


def _lag(row, now: int) -> dict:
    behind = max(0, row.head_seq - row.last_seq) if row.head_seq else 0
    # Time lag: how far the newest change applied here trails the newest the origin has reported.
    # Zero when caught up; while changes are pending, at least the age of the newest applied one.
    if behind == 0:
        lag_s = 0.0
    else:
        lag_s = max(0.0, (max(row.head_origin_us, row.last_origin_us) - row.last_origin_us) / 1e6,
                    (now - row.last_applied_us) / 1e6 if row.last_applied_us else 0.0)
    return {"events_behind": behind, "lag_seconds": round(lag_s, 3)}


def federation_status(store: Store, *, tenant: str | None = None) -> dict:
    """Every peer (optionally only one tenant's), with its lag and open conflicts."""
    p, c = federation_peer.c, federation_conflict.c
    now = now_us()
    with store.read() as tx:
        stmt = select(federation_peer).order_by(p.tenant, p.node_id)
        if tenant is not None:
            stmt = stmt.where(p.tenant == tenant)
        peers = tx.conn.execute(stmt).all()
        cstmt = select(c.tenant, func.count()).where(c.status == "open").group_by(c.tenant)
        open_conflicts = dict(tx.conn.execute(cstmt).all())
    out = []
    for row in peers:
        out.append({
            "node": row.node_id, "tenant": row.tenant, "direction": row.direction,
            "applied_through": row.last_seq, "origin_head": row.head_seq,
            **_lag(row, now),
            "last_contact": instant(row.last_contact_us) if row.last_contact_us else None,
            "applied": row.applied, "duplicates_dropped": row.duplicates, "gaps": row.gaps,
            "conflicts": row.conflicts, "open_conflicts": int(open_conflicts.get(row.tenant, 0)),
        })
    return {"peers": out, "generated": instant(now)}
