"""The CapabilityStatement, generated from the route table: it declares exactly what the node serves.

Interactions and operations come from ``RouteTable.interactions`` (core and capabilities alike),
search parameters from the search index. ``tests/api/test_capability_statement.py`` sends a request
for every interaction declared here.
"""

from __future__ import annotations

import orjson

from hutong import FHIR_VERSION, __version__

#: Interaction names of the table that are type- or instance-level FHIR interactions.
_TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                      "search-type")
_SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system", "search-system")


def _applies(item, res_type: str) -> bool:
    first = item.segments[0] if item.segments else ""
    return first == "{type}" or first == res_type


def capability_statement(store, base_url: str, routes) -> dict:
    """A CapabilityStatement listing types, interactions, search parameters and operations."""
    supported = store.index.supported_params()
    interactions = routes.interactions
    generic = sorted({i.name for i in interactions if i.name in _TYPE_INTERACTIONS and i.segments[:1] == ("{type}",)},
                     key=_TYPE_INTERACTIONS.index)
    resources = []
    for res_type in sorted(store.known_types()):
        names = list(generic)
        for item in interactions:
            if item.name in _TYPE_INTERACTIONS and item.fixed_type == res_type and item.name not in names:
                names.append(item.name)
        entry: dict = {
            "type": res_type,
            "interaction": [{"code": code} for code in names],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-match",
            "conditionalUpdate": True,
            "conditionalDelete": "multiple",
            "referencePolicy": ["literal", "logical", "enforced", "local"],
        }
        params = supported.get(res_type) or []
        if params:
            entry["searchParam"] = [
                {k: v for k, v in p.items() if k in ("name", "definition", "type", "documentation")} for p in params
            ]
        ops, seen = [], set()
        for item in interactions:
            if item.operation and item.level != "system" and item.operation_type == res_type and item.operation not in seen:
                seen.add(item.operation)
                ops.append({"name": item.operation, "definition": item.definition})
        for item in interactions:  # operations on every type ({type}/$validate)
            if item.operation and item.segments[:1] == ("{type}",) and item.operation not in seen:
                seen.add(item.operation)
                ops.append({"name": item.operation, "definition": item.definition})
        if ops:
            entry["operation"] = ops
        extensions = [ext for item in interactions if item.resource_extensions
                      and (item.operation_type or item.fixed_type) == res_type for ext in item.resource_extensions]
        if extensions:
            entry = {"extension": list({orjson.dumps(e): e for e in extensions}.values()), **entry}
        resources.append(entry)
    system = []
    for item in interactions:
        if item.name in _SYSTEM_INTERACTIONS and item.level == "system":
            codes = ("transaction", "batch") if item.name == "transaction" else (item.name,)
            system.extend({"code": c} for c in codes if {"code": c} not in system)
    system_ops, seen = [], set()
    for item in interactions:
        if item.operation and item.level == "system" and item.operation not in seen:
            seen.add(item.operation)
            system_ops.append({"name": item.operation, "definition": item.definition})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-01",
        "publisher": "Hutong",
        "kind": "instance",
        "software": {"name": "Hutong (互通)", "version": __version__},
        "implementation": {"description": "Hutong regional health information platform", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{"mode": "server", "resource": resources, "interaction": system, "operation": system_ops}],
    }
