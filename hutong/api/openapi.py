"""The OpenAPI paths of the FHIR API, generated from the route table.

The FHIR API is not routed by FastAPI, so FastAPI cannot describe it; this module writes one
OpenAPI operation per interaction in the table (the same table that answers the requests), so
``/docs`` and schemathesis cover exactly what the node serves.
"""

from __future__ import annotations

from hutong.fhir.routes import Interaction

_PARAMS = {
    "{type}": ("type", "A FHIR resource type, e.g. Patient", "Patient"),
    "{comp}": ("comp", "The resource type searched inside the compartment, e.g. Observation", "Observation"),
    "{id}": ("id", "A resource id ([A-Za-z0-9-.]{1,64})", "example"),
    "{vid}": ("vid", "A version id", "1"),
    "{name}": ("name", "A name such as an export file name", "Patient.ndjson"),
}

_FHIR_JSON = {"application/fhir+json": {"schema": {"type": "object"}}}
_OUTCOME = {"description": "OperationOutcome", "content": _FHIR_JSON}


def _path(item: Interaction) -> str:
    out = []
    for seg in item.segments:
        out.append("{" + _PARAMS[seg][0] + "}" if seg in _PARAMS else seg)
    return "/fhir" + ("/" + "/".join(out) if out else "")


def _operation(item: Interaction) -> dict:
    params = []
    for seg in item.segments:
        if seg in _PARAMS:
            name, doc, example = _PARAMS[seg]
            schema = {"type": "string", "pattern": r"^[A-Za-z0-9\-\.]{1,64}$"} if name in ("id", "vid", "name") else {
                "type": "string", "pattern": "^[A-Z][A-Za-z]{1,63}$"}
            params.append({"name": name, "in": "path", "required": True, "description": doc, "schema": schema,
                           "example": example})
    op: dict = {
        "tags": [f"FHIR R4 ({item.capability})" if item.capability != "fhir" else "FHIR R4"],
        "summary": item.summary or item.name,
        "operationId": f"fhir_{item.method.lower()}_{_path(item)[6:].replace('/', '_').replace('$', 'op_')}"
                       .replace("{", "").replace("}", "").rstrip("_") or "fhir_base",
        "description": f"FHIR interaction `{item.name}`; permission `{item.permission}`.",
        "parameters": params,
        "responses": {
            "200": {"description": "FHIR resource or Bundle", "content": _FHIR_JSON},
            "400": _OUTCOME, "401": _OUTCOME, "403": _OUTCOME, "404": _OUTCOME,
        },
    }
    if item.body in ("json", "raw"):
        op["requestBody"] = {"required": False, "content": {
            "application/fhir+json": {"schema": {"type": "object"}},
        }}
    elif item.body == "form":
        op["requestBody"] = {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        }}
    return op


def fhir_paths(interactions: list[Interaction]) -> dict:
    """OpenAPI ``paths`` for the FHIR interactions."""
    paths: dict[str, dict] = {}
    for item in interactions:
        paths.setdefault(_path(item), {})[item.method.lower()] = _operation(item)
    return paths
