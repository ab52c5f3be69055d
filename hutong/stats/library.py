"""ViewDefinitions stored on the node.

ViewDefinition is not an R4 resource type, and the SQL on FHIR IG's R4 mode only defines the
system-level ``$viewdefinition-run``. So a node keeps each definition the way R4 keeps content
from other FHIR versions: as a ``Basic`` resource whose ``code`` is ``ViewDefinition`` (code system
``http://hl7.org/fhir/fhir-types``), with the definition's JSON text in the extension
``VIEW_EXTENSION`` and its canonical ``url`` (when it has one) as an identifier. The resource id is
the view's id: ``viewReference`` may say ``ViewDefinition/<id>`` or ``Basic/<id>``, or give the
canonical URL. Definitions are checked (``hutong.stats.views.View``) before they are stored.
"""

from __future__ import annotations

import orjson

from hutong.core.errors import FhirError, bad_request, not_found
from hutong.core.ids import ID_RE
from hutong.stats.views import View, ViewError

VIEW_EXTENSION = "http://hutong.org/fhir/StructureDefinition/view-definition"
TYPES_SYSTEM = "http://hl7.org/fhir/fhir-types"
URL_SYSTEM = "http://hutong.org/fhir/sid/view-definition-url"


def check_view(definition) -> View:
    """The checked view, or a 400 OperationOutcome naming the fault."""
    if isinstance(definition, dict) and definition.get("resourceType") not in (None, "ViewDefinition"):
        raise bad_request(f"expected a ViewDefinition, not {str(definition.get('resourceType'))[:40]}",
                          "viewResource")
    try:
        return View(definition)
    except ViewError as exc:
        raise FhirError(400, "invalid", str(exc), [exc.where]) from None


def to_basic(definition: dict, view_id: str | None = None) -> dict:
    """The ``Basic`` resource that holds ``definition``."""
    text = orjson.dumps({**definition, "resourceType": "ViewDefinition"}).decode()
    basic = {
        "resourceType": "Basic",
        "code": {"coding": [{"system": TYPES_SYSTEM, "code": "ViewDefinition", "display": "ViewDefinition"}],
                 "text": definition.get("title") or definition.get("name") or "ViewDefinition"},
        "extension": [{"url": VIEW_EXTENSION, "valueString": text}],
    }
    if isinstance(definition.get("url"), str):
        basic["identifier"] = [{"system": URL_SYSTEM, "value": definition["url"]}]
    if view_id:
        basic["id"] = view_id
    return basic


def from_basic(basic: dict) -> dict | None:
    """The ViewDefinition a ``Basic`` resource holds (None when it holds none)."""
    for ext in basic.get("extension", []) or []:
        if ext.get("url") == VIEW_EXTENSION and isinstance(ext.get("valueString"), str):
            definition = orjson.loads(ext["valueString"])
            if basic.get("id"):
                definition["id"] = basic["id"]
            return definition
    return None


def save_view(tx, definition: dict, view_id: str | None = None) -> str:
    """Check and store ``definition`` (create, or a new version of ``view_id``); its id."""
    check_view(definition)
    view_id = view_id or (definition.get("id") if isinstance(definition.get("id"), str) else None)
    if view_id and not ID_RE.fullmatch(view_id):
        raise bad_request(f"view id {view_id[:70]!r} is not a FHIR id")
    basic = to_basic(definition, view_id)
    if view_id:
        return tx.update("Basic", view_id, basic).stored.res_id
    return tx.create(basic).stored.res_id


def load_view(tx, reference: str) -> dict:
    """The stored ViewDefinition named by ``reference`` (``ViewDefinition/<id>``, ``Basic/<id>``, an id,
    or a canonical URL); 404 when there is none."""
    ref = reference.strip()
    view_id = None
    if ref.startswith(("ViewDefinition/", "Basic/")):
        view_id = ref.split("/", 1)[1]
    elif ID_RE.fullmatch(ref):
        view_id = ref
    if view_id is not None:
        stored = tx.read("Basic", view_id)
        if stored is not None and not stored.deleted:
            definition = from_basic(stored.resource)
            if definition is not None:
                return definition
        raise not_found(f"no ViewDefinition {ref[:80]!r} on this node")
    ids = tx.search_ids("Basic", [("identifier", f"{URL_SYSTEM}|{ref}")])
    for rid in ids:
        stored = tx.read("Basic", rid)
        if stored is not None and not stored.deleted:
            definition = from_basic(stored.resource)
            if definition is not None:
                return definition
    raise not_found(f"no ViewDefinition with url {ref[:80]!r} on this node")


def list_views(tx) -> list[dict]:
    """Every stored ViewDefinition (id, name, title, resource)."""
    out = []
    for rid in tx.search_ids("Basic", [("code", f"{TYPES_SYSTEM}|ViewDefinition")]):
        stored = tx.read("Basic", rid)
        if stored is None or stored.deleted:
            continue
        definition = from_basic(stored.resource)
        if definition is not None:
            out.append({"id": rid, "name": definition.get("name"), "title": definition.get("title"),
                        "resource": definition.get("resource"), "url": definition.get("url"),
                        "version_id": stored.version_id})
    return out
