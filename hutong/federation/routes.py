"""HTTP of the federation: the province's ingest and feed, status and lag, conflicts, digests.

A hosted city's operator (a caller whose tenant is a city's, not the node's own) sees and
administers only their city: ``_visible_tenant`` narrows every listing to the caller's tenant.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select, update

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.clock import instant
from hutong.core.errors import FhirError, bad_request
from hutong.federation.digest import tenant_digest
from hutong.federation.downlink import feed_bytes, feed_page
from hutong.federation.envelope import Envelope
from hutong.federation.identity import node_id
from hutong.federation.ingest import IngestRefused, apply_envelopes, peer_position
from hutong.federation.status import federation_status
from hutong.federation.stream_ingest import accepted_up
from hutong.federation.tables import federation_conflict
from hutong.fhir.body import decode_json

router = APIRouter(tags=["federation 省市一体化"])

_JSON = "application/json"


def _node(request: Request):
    return request.app.state.node


def _config(request: Request):
    config = _node(request).services.get("federation.config")
    if config is None:
        raise FhirError(503, "transient", "the federation capability has not started")
    return config


def _visible_tenant(caller: Caller, settings) -> str | None:
    """None: every tenant (a caller of the node's own tenant, or a system caller without one);
    otherwise only the caller's tenant (a hosted city's operator, a city node)."""
    if caller.tenant is None or caller.tenant == settings.default_tenant:
        return None
    return caller.tenant


def _require_province(config) -> None:
    if config.role != "province":
        raise FhirError(403, "forbidden", f"this node is not a province (federation_role={config.role})")


@router.post("/api/federation/ingest", summary="A city pushes a batch of its changes (province only)")
async def ingest(request: Request, caller: Caller = Depends(permit("federation.ingest"))):
    config = _config(request)
    _require_province(config)
    doc = decode_json(await request.body(), request.headers.get("content-type"))
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise bad_request('the body must be {"node", "tenant", "head", "events": [...]}')
    tenant = doc.get("tenant")
    node = doc.get("node")
    if not isinstance(tenant, str) or not isinstance(node, str) or not node:
        raise bad_request("node and tenant are required")
    if caller.tenant is not None and caller.tenant != tenant:
        raise FhirError(403, "forbidden", f"a caller of tenant {caller.tenant!r} may not push tenant {tenant!r}")
    try:
        envs = [Envelope.parse(e) for e in doc["events"]]
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    if any(e.node != node for e in envs):
        raise bad_request("every envelope must come from the pushing node")
    head = doc.get("head") if isinstance(doc.get("head"), dict) else {}
    try:
        heads = {node: (int(head.get("seq", 0)), int(head.get("ts_us", 0)))}
        scanned = {node: int(doc["through"])} if doc.get("through") is not None else None
    except (TypeError, ValueError) as exc:
        raise bad_request("head.seq, head.ts_us and through must be integers") from exc
    if scanned and scanned[node] > heads[node][0]:
        raise bad_request("through may not be past the reported head")
    store = _node(request).store
    from starlette.concurrency import run_in_threadpool

    if not envs:  # a heartbeat
        from hutong.federation.ingest import _peer

        def beat():
            with store.write() as tx:
                _peer(tx, node, tenant, "up", store.is_postgres)
            return apply_envelopes(store, [], direction="up", accept=frozenset(), heads=heads, scanned=scanned)

        result = await run_in_threadpool(beat)
        result.through[node] = peer_position(store, node)
        return result.as_dict()
    try:
        result = await run_in_threadpool(apply_envelopes, store, envs, direction="up",
                                         accept=accepted_up(store, config), heads=heads, expect_tenant=tenant,
                                         scanned=scanned)
    except IngestRefused as exc:
        raise FhirError(403, "forbidden", str(exc)) from exc
    return result.as_dict()


@router.get("/api/federation/peers/{node}", summary="How far this node has applied another node's changes")
def peer(node: str, request: Request, caller: Caller = Depends(permit("federation.ingest"))):
    if len(node) > 64:
        raise bad_request("node id too long")
    return {"node": node, "last_seq": peer_position(_node(request).store, node)}


@router.get("/api/federation/feed", summary="What the province distributes down (registry, catalog, terminology, forms)")
def feed(request: Request, after: int = Query(0, ge=0), limit: int = Query(500, ge=1, le=2000),
         caller: Caller = Depends(permit("federation.feed"))):
    config = _config(request)
    _require_province(config)
    page = feed_page(_node(request).store, config, after, limit)
    return Response(feed_bytes(page), media_type=_JSON)


@router.get("/api/federation/status", summary="Links, each city's lag, conflicts, the relay")
def status(request: Request, caller: Caller = Depends(permit("federation.status"))):
    node = _node(request)
    config = _config(request)
    tenant = _visible_tenant(caller, node.settings)
    out = federation_status(node.store, tenant=tenant)
    out.update(node=node_id(node.store), role=config.role, tenant=config.tenant)
    if tenant is None:
        for key in ("relay", "uplink", "downlink", "stream_ingest"):
            task = node.services.get(f"federation.{key}")
            if task is not None:
                st = task.status
                out[key] = st.as_dict() if hasattr(st, "as_dict") else dict(st)
        bus = node.services.get("events")
        out["events_mode"] = bus.mode if bus is not None else None
    return out


@router.get("/api/federation/conflicts", summary="Conflicts found while applying other nodes' changes")
def conflicts(request: Request, state: str = Query("open", pattern="^(open|acknowledged|all)$"),
              limit: int = Query(100, ge=1, le=1000), caller: Caller = Depends(permit("federation.status"))):
    node = _node(request)
    tenant = _visible_tenant(caller, node.settings)
    c = federation_conflict.c
    stmt = select(federation_conflict).order_by(c.id.desc()).limit(limit)
    if state != "all":
        stmt = stmt.where(c.status == state)
    if tenant is not None:
        stmt = stmt.where(c.tenant == tenant)
    with node.store.read() as tx:
        rows = tx.conn.execute(stmt).all()
    return {"conflicts": [{
        "id": r.id, "detected": instant(r.detected_us), "kind": r.kind, "tenant": r.tenant,
        "resource": f"{r.res_type}/{r.res_id}", "origin_node": r.origin_node, "origin_seq": r.origin_seq,
        "origin_version": r.origin_version, "local_version": r.local_version, "resolution": r.resolution,
        "status": r.status, "kept_content": r.content is not None} for r in rows]}


@router.post("/api/federation/conflicts/{conflict_id}/acknowledge", summary="Mark a conflict as dealt with")
def acknowledge(conflict_id: int, request: Request, caller: Caller = Depends(permit("federation.admin"))):
    node = _node(request)
    tenant = _visible_tenant(caller, node.settings)
    c = federation_conflict.c
    with node.store.write() as tx:
        stmt = update(federation_conflict).where(c.id == conflict_id).values(status="acknowledged")
        if tenant is not None:
            stmt = stmt.where(c.tenant == tenant)
        if tx.conn.execute(stmt).rowcount == 0:
            raise FhirError(404, "not-found", f"no conflict {conflict_id}")
    return {"id": conflict_id, "status": "acknowledged"}


@router.get("/api/federation/digest", summary="Counts and checksums of a tenant's current resources")
def digest(request: Request, tenant: str = Query(..., min_length=1, max_length=32),
           types: str = Query("", max_length=2000), caller: Caller = Depends(permit("federation.status"))):
    node = _node(request)
    visible = _visible_tenant(caller, node.settings)
    if visible is not None and visible != tenant:
        raise FhirError(403, "forbidden", f"a caller of tenant {visible!r} may not read tenant {tenant!r}")
    wanted = {t for t in types.split(",") if t} or None
    return tenant_digest(node.store, tenant, wanted)
