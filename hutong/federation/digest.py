"""Counts and checksums of a tenant's current resources, to check that two nodes hold the same data.

A resource's digest is the SHA-256 of its JSON with sorted keys and without ``meta.versionId`` and
``meta.lastUpdated`` (each node numbers and stamps its own versions); a type's checksum is the
SHA-256 over its resources' ``type/id digest`` lines in id order, and the tenant's over the types'.
Each type also carries ``versions``: the sum of the resources' version numbers, deleted ones included.
Every version an origin makes becomes exactly one version at a receiver, so equal ``versions`` means
no change was lost or applied twice on the way (a repeat would add a version, a loss skip one).
Reading every current resource of a tenant, it is an audit tool (the federation test and
benchmark, an operator's check after a restore), not something to poll.
"""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy import func, select

from hutong.store import Store
from hutong.store.schema import resource


def resource_digest(content: str) -> str:
    doc = orjson.loads(content)
    meta = doc.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            doc["meta"] = meta
        else:
            doc.pop("meta")
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def tenant_digest(store: Store, tenant: str, types: set[str] | None = None) -> dict:
    """``{"tenant", "total", "versions", "sha256", "types": {type: {"count", "sha256", "versions"}}}``:
    counts and checksums of current resources, and version sums of every resource (deleted too)."""
    r = resource.c
    stmt = (select(r.res_type, r.res_id, r.content)
            .where(r.tenant == tenant, r.deleted.is_(False)).order_by(r.res_type, r.res_id))
    vstmt = (select(r.res_type, func.count(), func.sum(r.version_id)).where(r.tenant == tenant)
             .group_by(r.res_type))
    if types:
        stmt = stmt.where(r.res_type.in_(sorted(types)))
        vstmt = vstmt.where(r.res_type.in_(sorted(types)))
    per_type: dict[str, tuple[int, object]] = {}
    with store.read() as tx:
        versions = {t: int(v or 0) for t, _n, v in tx.conn.execute(vstmt)}
        for res_type, res_id, content in tx.conn.execute(stmt.execution_options(yield_per=2000)):
            count, h = per_type.get(res_type, (0, None))
            if h is None:
                h = hashlib.sha256()
            h.update(f"{res_type}/{res_id} {resource_digest(content)}\n".encode())
            per_type[res_type] = (count + 1, h)
    empty = hashlib.sha256().hexdigest()
    out = {t: {"count": per_type[t][0] if t in per_type else 0,
               "sha256": per_type[t][1].hexdigest() if t in per_type else empty,
               "versions": versions.get(t, 0)}
           for t in sorted(set(per_type) | set(versions))}
    total = hashlib.sha256("".join(f"{t} {v['count']} {v['sha256']} {v['versions']}\n"
                                   for t, v in out.items()).encode())
    return {"tenant": tenant, "total": sum(v["count"] for v in out.values()),
            "versions": sum(v["versions"] for v in out.values()), "sha256": total.hexdigest(), "types": out}
