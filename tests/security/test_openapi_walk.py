"""No credentials, no data: every operation of the OpenAPI document, called without credentials,
answers 401 (or is one of the open routes), never data and never a 5xx. Both backends."""

from __future__ import annotations

import re

import httpx


def public_paths(store) -> set[str]:
    """Paths whose routes declare ``permit(PUBLIC)`` (FastAPI) or ``permission="public"`` (FHIR)."""
    from hutong.api.app import create_app
    from hutong.api.caller import PUBLIC, route_permission

    node = create_app(store=store).node
    out = {"/fhir/" + i.pattern for i in node.routes.interactions if i.permission == PUBLIC}
    api = node.services["fastapi"]
    out |= {r.path for r in all_routes(api.routes) if route_permission(r) == PUBLIC}
    return out


def all_routes(routes) -> list:
    """Every route, looking into included routers (FastAPI ≥ 0.16x keeps them as ``_IncludedRouter``)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out.extend(all_routes(inner.routes))
        elif hasattr(route, "dependant"):
            out.append(route)
    return out


def test_every_route_declares_a_permission(server_store):
    """Like tests/api/test_routes.py, but looking into included routers too."""
    from hutong.api.app import create_app
    from hutong.api.caller import route_permission

    api = create_app(store=server_store).node.services["fastapi"]
    routes = all_routes(api.routes)
    assert len(routes) > 100
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if route_permission(r) is None]
    assert not missing, missing


def test_every_operation_refuses_without_credentials(secure, server_store):
    server_store.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    spec = httpx.get(secure + "/openapi.json").json()
    public = public_paths(server_store)
    checked, open_paths = 0, []
    with httpx.Client(base_url=secure, timeout=60) as c:
        for path, ops in spec["paths"].items():
            for method in ops:
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                url = re.sub(r"\{[^}]+\}", "p1", path)
                r = c.request(method.upper(), url, json={} if method in ("post", "put", "patch") else None,
                              headers={"Accept": "application/json"})
                assert r.status_code < 500, (method, path, r.status_code, r.text[:200])
                if r.status_code == 401:
                    assert r.headers["www-authenticate"].startswith("Bearer")
                    checked += 1
                    continue
                # not refused: must be an open route (public by the list or a declared public page)
                open_paths.append(path)
                assert path in public or r.status_code in (404, 405), (method, path, r.status_code)
    assert checked > 100, checked
