"""How the node is assembled: one capability list, one FHIR route table, every route with a permission."""

from __future__ import annotations

import ast
from pathlib import Path

from starlette.routing import Mount

from hutong.api.app import CAPABILITIES, create_app
from hutong.api.caller import PUBLIC, route_permission

REPO = Path(__file__).resolve().parents[2]


def _app(store):
    return create_app(store=store)


def test_every_capability_route_declares_a_permission(store):
    app = _app(store)
    api = app.node.services["fastapi"]
    missing = []
    for route in api.routes:
        if isinstance(route, Mount) or not hasattr(route, "dependant"):
            continue
        if route_permission(route) is None:
            missing.append(f"{sorted(route.methods)} {route.path}")
    assert not missing, f"routes without Depends(permit(...)): {missing}"


def test_every_route_table_row_and_plain_route_declares_a_permission(store):
    app = _app(store)
    assert all(i.permission for i in app.node.routes.interactions)
    for cap in CAPABILITIES:
        for route in cap.plain:
            assert route.permission, route.path


def test_capability_permissions_are_declared_by_their_capability(store):
    """A capability's own permission names (``card.verify``) are listed in its ``permissions``."""
    app = _app(store)
    declared = {p for cap in CAPABILITIES for p in cap.permissions}
    used = set()
    api = app.node.services["fastapi"]
    for route in api.routes:
        perm = route_permission(route) if hasattr(route, "dependant") else None
        if perm and perm != PUBLIC:
            used.add(perm)
    used |= {r.permission for cap in CAPABILITIES for r in cap.plain}
    used |= {i.permission for i in app.node.routes.interactions if "." in i.permission
             and not i.permission.split(".")[0][:1].isupper() and not i.permission.startswith(("*", "{"))}
    assert used <= declared, f"permissions used but not declared by any capability: {sorted(used - declared)}"


def test_capabilities_plug_in_only_through_the_list():
    """No module discovers capabilities by name: no importlib on hutong modules outside tests.
    (The card's SMS sender is an operator's own plug-in named in configuration, not a capability.)"""
    offenders = []
    for path in (REPO / "hutong").rglob("*.py"):
        if path.relative_to(REPO).as_posix() == "hutong/card/sender.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("import_module", "find_spec"):
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Constant) and not str(arg.value).startswith("hutong")):
                    offenders.append(str(path.relative_to(REPO)))
    assert not offenders, offenders


def test_store_does_not_import_fhir_or_search():
    for path in (REPO / "hutong" / "store").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith(("hutong.fhir", "hutong.search", "hutong.api")), (path.name, name)


def test_one_route_table_answers_bundle_entries_too(fhir, server_store):
    """A Bundle entry is routed by the same table as HTTP: an operation row works inside a batch."""
    fhir.post("/Patient", json={"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": "b1"}]})
    server_store.run_consumers()
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/$ihe-pix?sourceIdentifier=urn:t|b1"}},
        {"request": {"method": "GET", "url": "Patient?identifier=urn:t|b1"}},
        {"request": {"method": "GET", "url": "Patient/$no-such"}},
    ]}
    out = fhir.post("", json=bundle).json()
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("200") and statuses[2] == "404"
