"""The CapabilityStatement, generated from what this node really supports."""

from __future__ import annotations

from hutong import FHIR_VERSION, __version__

_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create"]

#: Operations each capability adds: (name, definition canonical, resource type or None for system level).
EXTRA_OPERATIONS: list[tuple[str, str, str | None]] = [
    ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate", None),
]


def register_operation(name: str, definition: str, res_type: str | None = None) -> None:
    """Capabilities call this to announce an operation in the CapabilityStatement."""
    entry = (name, definition, res_type)
    if entry not in EXTRA_OPERATIONS:
        EXTRA_OPERATIONS.append(entry)


def capability_statement(store, base_url: str) -> dict:
    """A CapabilityStatement listing types, interactions, search parameters and operations."""
    index = store.index
    supported = index.supported_params() if index is not None else {}
    resources = []
    for res_type in sorted(store.known_types()):
        interactions = list(_INTERACTIONS)
        if index is not None:
            interactions.append("search-type")
        entry: dict = {
            "type": res_type,
            "interaction": [{"code": code} for code in interactions],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": index is not None,
            "conditionalRead": "not-match",
            "conditionalUpdate": index is not None,
            "conditionalDelete": "multiple" if index is not None else "not-supported",
            "referencePolicy": ["literal", "logical", "enforced", "local"],
        }
        params = supported.get(res_type) or []
        if params:
            entry["searchParam"] = [
                {k: v for k, v in p.items() if k in ("name", "definition", "type", "documentation")} for p in params
            ]
        ops = [
            {"name": name, "definition": definition}
            for name, definition, rtype in EXTRA_OPERATIONS
            if rtype == res_type
        ]
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    system_interactions = [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}]
    if index is not None:
        system_interactions.append({"code": "search-system"})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "Hutong",
        "kind": "instance",
        "software": {"name": "Hutong (互通)", "version": __version__},
        "implementation": {"description": "Hutong regional health information platform", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": system_interactions,
                "operation": [
                    {"name": name, "definition": definition}
                    for name, definition, rtype in EXTRA_OPERATIONS
                    if rtype is None
                ],
            }
        ],
    }
