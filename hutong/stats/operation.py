"""``POST /fhir/$viewdefinition-run`` (SQL on FHIR v2, R4 mode: system level).

Input: a ``Parameters`` resource with ``viewResource`` (the ViewDefinition inline) or
``viewReference`` (a stored one, ``hutong.stats.library``), and optionally ``_format`` (json,
ndjson, csv, parquet; also taken from the query string or ``Accept``), ``header`` (CSV header row,
default true), ``patient`` and ``group`` (0..*, keep those patients' compartments), ``_since``
(resources updated at or after an instant), ``_limit`` (rows) and ``resource`` (0..*: run over
these resources instead of the store's). Output: the rows in the format asked for.
"""

from __future__ import annotations

import time
from pathlib import Path

from hutong.core.errors import FhirError, bad_request
from hutong.core.ids import ID_RE
from hutong.fhir.rest import FhirResult, parse_since
from hutong.fhir.routes import Call, Interaction
from hutong.stats import library, run
from hutong.stats.views import ViewError

OPERATION = "viewdefinition-run"
DEFINITION = "http://sql-on-fhir.org/OperationDefinition/$viewdefinition-run"
MAX_LIMIT = 10_000_000
PARQUET_KEEP_S = 600  # Parquet answers are files; older ones are removed at the next run


def _value(param: dict, *kinds: str):
    for kind in kinds:
        if f"value{kind}" in param:
            return param[f"value{kind}"]
    return None


def _patient_id(param: dict) -> str:
    value = _value(param, "Reference", "String", "Id")
    if isinstance(value, dict):
        value = value.get("reference")
    if not isinstance(value, str):
        raise bad_request("patient needs a Reference or an id", "patient")
    pid = value.removeprefix("Patient/")
    if not ID_RE.fullmatch(pid):
        raise bad_request(f"patient {value[:70]!r} is not a Patient reference", "patient")
    return pid


def parse_parameters(body, query: list[tuple[str, str]], accept: str | None) -> dict:
    """The operation's inputs from the ``Parameters`` body and the query string."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("the body must be a Parameters resource")
    out: dict = {"view": None, "reference": None, "format": None, "header": True, "patients": [],
                 "groups": [], "since": None, "limit": None, "resources": None}
    for i, p in enumerate(body.get("parameter", []) or []):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise bad_request("each parameter needs a name", f"Parameters.parameter[{i}]")
        name = p["name"]
        if name == "viewResource":
            if not isinstance(p.get("resource"), dict):
                raise bad_request("viewResource needs a resource (the ViewDefinition)", "viewResource")
            out["view"] = p["resource"]
        elif name == "viewReference":
            ref = _value(p, "Reference", "Canonical", "Uri", "String")
            if isinstance(ref, dict):
                ref = ref.get("reference")
            if not isinstance(ref, str) or not ref:
                raise bad_request("viewReference needs a Reference", "viewReference")
            out["reference"] = ref
        elif name == "_format":
            out["format"] = _value(p, "Code", "String")
        elif name == "header":
            value = _value(p, "Boolean")
            if not isinstance(value, bool):
                raise bad_request("header needs valueBoolean", "header")
            out["header"] = value
        elif name == "patient":
            out["patients"].append(_patient_id(p))
        elif name == "group":
            value = _value(p, "Reference", "String", "Id")
            if isinstance(value, dict):
                value = value.get("reference")
            gid = value.removeprefix("Group/") if isinstance(value, str) else ""
            if not ID_RE.fullmatch(gid):
                raise bad_request("group needs a Group reference", "group")
            out["groups"].append(gid)
        elif name == "_since":
            value = _value(p, "Instant", "DateTime", "String")
            if not isinstance(value, str):
                raise bad_request("_since needs valueInstant", "_since")
            out["since"] = parse_since(value)
        elif name == "_limit":
            value = _value(p, "Integer", "PositiveInt")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT:
                raise bad_request(f"_limit must be an integer from 1 to {MAX_LIMIT}", "_limit")
            out["limit"] = value
        elif name == "resource":
            if not isinstance(p.get("resource"), dict):
                raise bad_request("resource needs a resource", "resource")
            out["resources"] = (out["resources"] or []) + [p["resource"]]
        else:
            raise bad_request(f"unknown parameter {name[:40]!r} for $viewdefinition-run", name[:40])
    for key, value in query:
        if key == "_format" and out["format"] is None:
            out["format"] = value
        elif key == "_limit" and out["limit"] is None:
            if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
                raise bad_request(f"_limit must be an integer from 1 to {MAX_LIMIT}", "_limit")
            out["limit"] = int(value)
        elif key == "_since" and out["since"] is None:
            out["since"] = parse_since(value)
    if out["format"] is None and accept:
        first = accept.split(",")[0].split(";")[0].strip().lower()
        if first in run.FORMATS and first not in ("application/fhir+json", "application/json"):
            out["format"] = first
    if (out["view"] is None) == (out["reference"] is None):
        raise bad_request("give exactly one of viewResource and viewReference")
    return out


def _parquet_dir(call: Call) -> str:
    path = Path(call.store.settings.data_dir) / "stats" / "run"
    path.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - PARQUET_KEEP_S
    for old in path.glob("view-*.parquet"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass
    return str(path)


def view_tenant(call: Call) -> str | None:
    """The tenant whose rows the caller may see: None (all) for the province's own tenant and callers
    without one, else the caller's tenant (a city's statistician sees the rows written in the city
    and its counties)."""
    tenant = getattr(call.caller, "tenant", None)
    if not tenant or tenant == call.store.settings.default_tenant:
        return None
    return tenant


def run_view(call: Call) -> FhirResult:
    """The handler of ``POST /fhir/$viewdefinition-run``."""
    params = parse_parameters(call.req.body, call.req.query, call.req.header("accept"))
    fmt = run.parse_format(params["format"])
    definition = params["view"] if params["view"] is not None else library.load_view(call.tx, params["reference"])
    view = library.check_view(definition)
    patients = None
    if params["patients"] or params["groups"]:
        patients = set(params["patients"])
        for gid in params["groups"]:
            patients |= run.group_patients(call.tx, gid)
    rows = run.view_rows(call.tx, view, resources=params["resources"], patients=patients,
                         since_us=params["since"], limit=params["limit"], tenant=view_tenant(call))
    try:
        if fmt == "parquet":
            path = run.write_parquet(view, rows, _parquet_dir(call))
            return FhirResult(200, file=path, media_type=run.MEDIA_TYPES[fmt],
                              headers={"Content-Disposition": f'attachment; filename="{view.name or "view"}.parquet"'})
        text = run.write_text(view, rows, fmt, header=params["header"])
    except ViewError as exc:
        raise FhirError(422, "processing", str(exc), [exc.where]) from None
    return FhirResult(200, text, media_type=run.MEDIA_TYPES[fmt])


FHIR_INTERACTIONS = [
    Interaction("POST", f"${OPERATION}", "operation", run_view, "stats.view.run", tx="read", body="json",
                operation=OPERATION, definition=DEFINITION, in_bundle=False, formats=frozenset(run.FORMATS),
                summary="SQL on FHIR v2: run a ViewDefinition (inline or stored) over the store's resources "
                        "as json, ndjson, csv or parquet", capability="stats"),
]
