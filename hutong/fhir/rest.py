"""The core FHIR RESTful interactions: their handlers and their rows in the route table.

A handler takes a ``Call`` (the request as a ``FhirRequest``: method, path relative to the FHIR
base, query, headers, parsed body; the matched path parameters; the transaction; the caller) and
returns a ``FhirResult``. ``CORE_INTERACTIONS`` declares each one once (``hutong/fhir/routes.py``);
the HTTP layer, Bundle entries and the CapabilityStatement read that table. ``perform`` runs a
call in the transaction its interaction declares.
"""

from __future__ import annotations

import base64
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from urllib.parse import urlencode

import orjson

from hutong.core.clock import http_date, instant
from hutong.core.errors import FhirError, Issue, bad_request, info_outcome, operation_outcome
from hutong.fhir.patch import patch_function
from hutong.fhir.routes import Call, Interaction, RouteTable
from hutong.store.errors import connection_lost
from hutong.store.store import StoredResource, Tx

_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]+)"?\s*$')
_SINCE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$")


@dataclass
class FhirRequest:
    """One FHIR interaction: ``method`` and ``path`` (relative to the base, e.g. ``Patient/1``)."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: object = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class FhirResult:
    """The outcome of an interaction: status, a body (dict or pre-serialised JSON) and headers."""

    status: int
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stored: StoredResource | None = None
    #: A body that is not FHIR JSON (NDJSON, a Binary's own bytes): a file to stream and its type.
    file: str | None = None
    media_type: str | None = None

    def json_bytes(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)

    def body_dict(self) -> dict | None:
        if self.body is None:
            return None
        if isinstance(self.body, str):
            return orjson.loads(self.body)
        return self.body


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    """The version number in an ETag-style header (``W/"3"``), or None when absent."""
    if value is None or value == "":
        return None
    m = _ETAG.match(value)
    if not m:
        raise bad_request(f"{header} must be a version ETag such as W/\"3\", got {value[:40]!r}")
    return int(m.group(1))


def parse_since(value: str) -> int:
    """``_since`` (a FHIR instant or date) as microseconds since the epoch."""
    from datetime import UTC, datetime

    if not _SINCE.match(value or ""):
        raise bad_request(f"_since must be an instant such as 2024-01-01T00:00:00Z, got {value[:40]!r}", "_since")
    text = value.replace("Z", "+00:00")
    try:
        if "T" not in text:
            dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request(f"_since is not a valid instant: {value[:40]!r}", "_since") from exc
    return int(dt.timestamp() * 1_000_000)


def _prefer_return(req: FhirRequest) -> str:
    prefer = req.header("prefer") or ""
    for part in prefer.split(","):
        part = part.strip()
        if part.startswith("return="):
            return part.split("=", 1)[1].strip().strip('"')
    return "representation"


def resource_result(stored: StoredResource, status: int, req: FhirRequest, base_url: str, *,
                    location: bool = False, outcome_text: str = "") -> FhirResult:
    """A result carrying ``stored`` shaped by the ``Prefer: return=`` header."""
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored.ts_us)}
    if location:
        headers["Location"] = f"{base_url}/{stored.location}"
    else:
        headers["Content-Location"] = f"{base_url}/{stored.location}"
    mode = _prefer_return(req)
    if mode == "minimal":
        return FhirResult(status, None, headers, stored)
    if mode == "OperationOutcome":
        return FhirResult(status, info_outcome(outcome_text or f"{stored.res_type}/{stored.res_id} ok"), headers, stored)
    return FhirResult(status, stored.content, headers, stored)


def _body_resource(req: FhirRequest) -> dict:
    if not isinstance(req.body, dict):
        raise bad_request("the request body must be a FHIR resource (a JSON object)")
    return req.body


def _query_string(query: list[tuple[str, str]]) -> str:
    return urlencode(query)


def _count(req: FhirRequest, settings) -> int:
    for key, value in req.query:
        if key == "_count":
            if not value.isdigit():
                raise bad_request(f"_count must be a non-negative integer, got {value[:20]!r}", "_count")
            return min(int(value), settings.max_count)
    return settings.default_count


def _encode_cursor(s: StoredResource) -> str:
    raw = f"{s.ts_us}|{s.res_type}|{s.res_id}|{s.version_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(value: str) -> tuple[int, str, str, int]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        ts, t, i, v = raw.split("|")
        return int(ts), t, i, int(v)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("invalid paging cursor", "_cursor") from exc


def history_bundle(tx: Tx, req: FhirRequest, base_url: str, res_type: str | None, res_id: str | None) -> dict:
    """A ``history`` Bundle, newest first, with keyset paging (``_cursor``) and ``_since``."""
    settings = tx.store.settings
    count = _count(req, settings)
    since = None
    cursor = None
    types: list[str] | None = None
    for key, value in req.query:
        if key == "_since":
            since = parse_since(value)
        elif key == "_type" and res_type is None:
            types = _history_types(tx, value, types)
        elif key == "_cursor":
            cursor = _decode_cursor(value)
        elif key in ("_count", "_format", "_pretty"):
            continue
        elif key == "_at" or key == "_list":
            raise FhirError(400, "not-supported", f"history parameter {key} is not supported", key)
        else:
            raise bad_request(f"unknown history parameter {key!r}", key)
    rows = tx.history(res_type, res_id, since_us=since, at_or_before=cursor, count=count + 1, types=types)
    more = len(rows) > count
    rows = rows[:count]
    path = "/".join(p for p in (res_type, res_id) if p) + ("/_history" if (res_type or res_id) else "_history")
    self_query = [(k, v) for k, v in req.query]
    links = [{"relation": "self", "url": f"{base_url}/{path}" + (f"?{_query_string(self_query)}" if self_query else "")}]
    if more:
        nxt = [(k, v) for k, v in req.query if k != "_cursor"]
        nxt.append(("_cursor", _cursor_after(rows[-1])))
        links.append({"relation": "next", "url": f"{base_url}/{path}?{_query_string(nxt)}"})
    entries = []
    for s in rows:
        entry: dict = {"fullUrl": f"{base_url}/{s.res_type}/{s.res_id}"}
        if s.content is not None:
            entry["resource"] = orjson.loads(s.content)
        method = s.method or ("DELETE" if s.deleted else "PUT")
        url = s.res_type if method == "POST" else f"{s.res_type}/{s.res_id}"
        entry["request"] = {"method": method, "url": url}
        entry["response"] = {
            "status": "201 Created" if s.version_id == 1 and not s.deleted else ("204 No Content" if s.deleted else "200 OK"),
            "etag": s.etag,
            "lastModified": instant(s.ts_us),
        }
        entries.append(entry)
    total = tx.history_count(res_type, res_id, since_us=since, types=types)
    return {"resourceType": "Bundle", "type": "history", "total": total, "link": links, "entry": entries}


def _history_types(tx: Tx, value: str, so_far: list[str] | None) -> list[str]:
    """The resource types of a system history's ``_type`` (comma-separated, repeatable: the union)."""
    out = list(so_far or [])
    for name in value.split(","):
        name = name.strip()
        if not name or not tx.store.is_known_type(name):
            raise bad_request(f"_type: unknown resource type {name[:64]!r}", "_type")
        if name not in out:
            out.append(name)
    return out


def _cursor_after(last: StoredResource) -> str:
    """A cursor for rows strictly older than ``last`` in (ts, type, id, version) descending order.

    No row sorts between (ts, type, id, v-1) and (ts, type, id, v), so ``<=`` the former is
    exactly "after the last row shown", however many writes happen meanwhile.
    """
    probe = StoredResource(last.res_type, last.res_id, last.version_id - 1, last.ts_us, False, "", None)
    return _encode_cursor(probe)


def validate_operation(store, res_type: str | None, body) -> dict:
    """``$validate``: an OperationOutcome listing every problem, or one informational issue."""
    resource = body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters" and res_type != "Parameters":
        resource = None
        for p in body.get("parameter") or []:
            if isinstance(p, dict) and p.get("name") == "resource":
                resource = p.get("resource")
        if resource is None:
            raise bad_request("Parameters must contain a 'resource' parameter")
    if not isinstance(resource, dict):
        raise bad_request("$validate needs a resource in the body")
    rtype = resource.get("resourceType")
    if res_type and rtype != res_type:
        raise bad_request(f"resourceType {rtype!r} does not match {res_type!r}", "resourceType")
    if not isinstance(rtype, str) or not store.is_known_type(rtype):
        return operation_outcome(Issue("error", "structure", f"unknown resourceType {str(rtype)[:64]!r}", ["resourceType"]))
    issues = store.validator(resource)
    if not issues:
        return info_outcome("validation passed: no errors", "informational")
    return operation_outcome(issues)


# ---------------------------------------------------------------------------------------------- handlers
# One function per core interaction; ``CORE_INTERACTIONS`` below is their row in the route table.


def _capabilities(call: Call) -> FhirResult:
    from hutong.fhir.capability import capability_statement

    return FhirResult(200, capability_statement(call.store, call.base_url, call.routes))


def _search_system(call: Call) -> FhirResult:
    if not call.req.query:
        raise FhirError(404, "not-supported", "GET on the base needs search parameters (or _type)")
    return _search(call.tx, None, call.req, call.base_url, fence=call.fence)


def _history_system(call: Call) -> FhirResult:
    return FhirResult(200, history_bundle(call.tx, call.req, call.base_url, None, None))


def _search_type(call: Call) -> FhirResult:
    return _search(call.tx, call.res_type, call.req, call.base_url, fence=call.fence)


def _search_compartment(call: Call) -> FhirResult:
    return _search(call.tx, call.params["comp"], call.req, call.base_url, compartment=(call.res_type, call.res_id),
                   fence=call.fence)


def _create(call: Call) -> FhirResult:
    req, res_type = call.req, call.res_type
    resource = _body_resource(req)
    if resource.get("resourceType") != res_type:
        raise bad_request(f"resourceType {resource.get('resourceType')!r} does not match {res_type!r}", "resourceType")
    if "id" in resource and req.header("x-hutong-keep-id") is None:
        # FHIR: the server ignores a client id on create.
        resource = {k: v for k, v in resource.items() if k != "id"}
    result = call.tx.create(resource, if_none_exist=req.header("if-none-exist"))
    if result.outcome == "existing":
        return resource_result(result.stored, 200, req, call.base_url)
    _check_write(call, result.stored)
    return resource_result(result.stored, 201, req, call.base_url, location=True,
                           outcome_text=f"created {result.stored.res_type}/{result.stored.res_id}")


def _conditional_update(call: Call) -> FhirResult:
    req = call.req
    if not req.query:
        raise FhirError(405, "not-supported", "PUT needs an id or search criteria")
    result = call.tx.conditional_update(call.res_type, _query_string(req.query), _body_resource(req),
                                        if_match=parse_etag(req.header("if-match")))
    _check_write(call, result.stored)
    return resource_result(result.stored, 201 if result.outcome == "created" else 200, req, call.base_url,
                           location=result.outcome == "created")


def _conditional_delete(call: Call) -> FhirResult:
    req = call.req
    if not req.query:
        raise FhirError(405, "not-supported", "DELETE needs an id or search criteria")
    if call.routes is not None and call.routes.delete_guards.get(call.res_type):
        limit = call.store.settings.conditional_delete_max
        for res_id in call.tx.search_query(call.res_type, _query_string(req.query), limit=limit + 1):
            _guard_delete(call, res_id)
    results = call.tx.conditional_delete(call.res_type, _query_string(req.query),
                                         limit=call.store.settings.conditional_delete_max)
    deleted = sum(r.outcome == "deleted" for r in results)
    if not deleted:
        return FhirResult(204)  # FHIR: no match is not an error
    return FhirResult(200, info_outcome(f"deleted {deleted} {call.res_type}"))


def _conditional_patch(call: Call) -> FhirResult:
    req = call.req
    if not req.query:
        raise FhirError(405, "not-supported", "PATCH needs an id or search criteria")
    matches = call.tx.search_query(call.res_type, _query_string(req.query), limit=2)
    if len(matches) != 1:
        raise FhirError(404 if not matches else 412, "not-found" if not matches else "conflict",
                        f"conditional patch criteria match {len(matches)} {call.res_type}")
    result = call.tx.patch(call.res_type, matches[0], patch_function(req.body, req.header("content-type")),
                           if_match=parse_etag(req.header("if-match")))
    _check_write(call, result.stored)
    return resource_result(result.stored, 200, req, call.base_url)


def _history_type(call: Call) -> FhirResult:
    return FhirResult(200, history_bundle(call.tx, call.req, call.base_url, call.res_type, None))


def _validate_type(call: Call) -> FhirResult:
    return FhirResult(200, validate_operation(call.store, call.res_type, call.req.body))


def _validate_instance(call: Call) -> FhirResult:
    call.tx.read_current(call.res_type, call.res_id)
    return FhirResult(200, validate_operation(call.store, call.res_type, call.req.body))


def _read(call: Call) -> FhirResult:
    req = call.req
    stored = call.tx.read_current(call.res_type, call.res_id)
    inm = req.header("if-none-match")
    if inm and parse_etag(inm, "If-None-Match") == stored.version_id:
        return FhirResult(304, None, {"ETag": stored.etag}, stored)
    result = resource_result(stored, 200, req, call.base_url)
    if req.query:
        summary, elements = summary_options(req.query)
        if (summary or elements) and result.body is not None:
            result.body = call.store.index.summarize(stored.resource, summary, elements)
    return result


def _update(call: Call) -> FhirResult:
    req = call.req
    result = call.tx.update(call.res_type, call.res_id, _body_resource(req), if_match=parse_etag(req.header("if-match")))
    _check_write(call, result.stored)
    return resource_result(result.stored, 201 if result.outcome == "created" else 200, req, call.base_url,
                           location=result.outcome == "created")


def _patch(call: Call) -> FhirResult:
    req = call.req
    result = call.tx.patch(call.res_type, call.res_id, patch_function(req.body, req.header("content-type")),
                           if_match=parse_etag(req.header("if-match")))
    _check_write(call, result.stored)
    return resource_result(result.stored, 200, req, call.base_url)


def _check_write(call: Call, stored: StoredResource | None) -> None:
    """Run the capabilities' write checks on what a create/update/patch stored: an error refuses it
    with 422 (the transaction rolls back, so nothing of the write remains)."""
    checks = call.routes.write_checks.get(call.res_type) if call.routes is not None else None
    if not checks or stored is None or stored.resource is None:
        return
    issues = [i for check in checks for i in check(stored.resource)]
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if errors:
        raise FhirError(422, errors[0].code, f"{call.res_type} breaks a registry rule: {errors[0].diagnostics}",
                        errors[0].expression, issues=errors[:50])


def _guard_delete(call: Call, res_id: str) -> None:
    """Ask the capabilities' delete guards whether ``res_id`` may be deleted (they raise if not)."""
    guards = call.routes.delete_guards.get(call.res_type) if call.routes is not None else None
    if not guards:
        return
    stored = call.tx.read(call.res_type, res_id)
    if stored is None or stored.deleted:
        return
    for guard in guards:
        guard(call.tx, stored)


def _delete(call: Call) -> FhirResult:
    res_type, res_id = call.res_type, call.res_id
    _guard_delete(call, res_id)
    result = call.tx.delete(res_type, res_id, if_match=parse_etag(call.req.header("if-match")))
    headers = {"ETag": result.stored.etag} if result.stored and result.outcome == "deleted" else {}
    return FhirResult(200, info_outcome(
        f"{res_type}/{res_id} deleted" if result.outcome == "deleted" else f"{res_type}/{res_id} was not present"
    ), headers)


def _history_instance(call: Call) -> FhirResult:
    if call.tx.read(call.res_type, call.res_id) is None:
        raise FhirError(404, "not-found", f"{call.res_type}/{call.res_id} is not known")
    return FhirResult(200, history_bundle(call.tx, call.req, call.base_url, call.res_type, call.res_id))


def _vread(call: Call) -> FhirResult:
    stored = call.tx.vread(call.res_type, call.res_id, call.params["vid"])
    return resource_result(stored, 200, call.req, call.base_url)


_SUMMARY_MODES = ("true", "false", "text", "data")


def summary_options(query: list[tuple[str, str]]) -> tuple[str | None, list[str] | None]:
    """``_summary`` and ``_elements`` of a read (other parameters are refused: a read takes no others)."""
    summary, elements = None, None
    for key, value in query:
        if key == "_summary":
            if value not in _SUMMARY_MODES:
                raise bad_request(f"_summary on a read must be true, false, text or data, not {value[:40]!r}",
                                  "_summary")
            summary = value
        elif key == "_elements":
            elements = [e.strip().split(".")[-1] for e in value.split(",") if e.strip()]
        elif key not in ("_format", "_pretty"):
            raise bad_request(f"a read takes only _summary, _elements and _format, not {key[:40]!r}", key)
    if summary and elements:
        raise bad_request("_summary and _elements cannot be combined", "_elements")
    return summary, elements


def _search(tx: Tx, res_type: str | None, req: FhirRequest, base_url: str, compartment=None, fence=None) -> FhirResult:
    tx.flush()
    strict = "handling=strict" in (req.header("prefer") or "").replace(" ", "")
    params = [(k, v) for k, v in req.query if k not in ("_format", "_pretty")]
    if isinstance(req.body, list):
        params.extend(req.body)
    bundle = tx.store.index.search(tx, res_type, params, base_url=base_url, strict=strict, compartment=compartment,
                                   fence=fence)
    return FhirResult(200, bundle)


def _bundle(call: Call) -> FhirResult:
    from hutong.fhir.bundle import receive_bundle

    return FhirResult(200, receive_bundle(call))


def _i(method, pattern, name, handler, permission, tx="read", body="none", summary="", **kw) -> Interaction:
    return Interaction(method, pattern, name, handler, permission, tx=tx, body=body, summary=summary, **kw)


#: The core FHIR RESTful interactions (R4 http.html), one row each. Capabilities add operations.
CORE_INTERACTIONS: list[Interaction] = [
    _i("GET", "metadata", "capabilities", _capabilities, "public", "read-one",
       summary="CapabilityStatement of this server"),
    _i("POST", "", "transaction", _bundle, "bundle", "own", "raw", in_bundle=False,
       summary="Process a transaction or batch Bundle"),
    _i("GET", "", "search-system", _search_system, "*.s", summary="Search across all types (needs parameters)"),
    _i("GET", "_history", "history-system", _history_system, "*.s", summary="History of all resources"),
    _i("GET", "{type}", "search-type", _search_type, "{type}.s", summary="Search a resource type"),
    _i("POST", "{type}/_search", "search-type", _search_type, "{type}.s", body="form",
       summary="Search with a form body"),
    _i("POST", "{type}", "create", _create, "{type}.c", "write", "json",
       summary="Create (conditional with If-None-Exist)"),
    _i("PUT", "{type}", "update", _conditional_update, "{type}.u", "write", "json",
       summary="Conditional update (search criteria in the query)"),
    _i("DELETE", "{type}", "delete", _conditional_delete, "{type}.d", "write",
       summary="Conditional delete (search criteria in the query; every match is deleted)"),
    _i("PATCH", "{type}", "patch", _conditional_patch, "{type}.u", "write", "json",
       summary="Conditional patch (search criteria in the query)"),
    _i("GET", "{type}/_history", "history-type", _history_type, "{type}.s", summary="History of a resource type"),
    _i("POST", "{type}/$validate", "operation", _validate_type, "{type}.r", body="json", operation="validate",
       definition="http://hl7.org/fhir/OperationDefinition/Resource-validate", summary="Validate a resource"),
    _i("GET", "{type}/{id}", "read", _read, "{type}.r", "read-one", summary="Read"),
    _i("PUT", "{type}/{id}", "update", _update, "{type}.u", "write", "json",
       summary="Update, or create with a client id"),
    _i("PATCH", "{type}/{id}", "patch", _patch, "{type}.u", "write", "json",
       summary="Patch with JSON Patch or FHIRPath Patch"),
    _i("DELETE", "{type}/{id}", "delete", _delete, "{type}.d", "write", summary="Delete"),
    _i("GET", "{type}/{id}/_history", "history-instance", _history_instance, "{type}.r",
       summary="History of one resource"),
    _i("GET", "{type}/{id}/_history/{vid}", "vread", _vread, "{type}.r", "read-one", summary="Read one version"),
    _i("POST", "{type}/{id}/$validate", "operation", _validate_instance, "{type}.r", body="json",
       operation="validate", definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
       summary="Validate a resource against an existing one"),
    _i("GET", "{type}/{id}/{comp}", "search-type", _search_compartment, "{comp}.s",
       summary="Compartment search, e.g. Patient/123/Observation"),
]


def open_tx(store, kind: str, tenant: str | None):
    """The transaction an interaction of ``kind`` runs in (a no-op context for ``own``)."""
    if kind == "write":
        return store.write(tenant)
    if kind == "read-one":
        return store.read(snapshot=False)
    if kind == "read":
        return store.read()
    return nullcontext(None)


def perform(call: Call) -> FhirResult:
    """Run ``call`` in the transaction its interaction declares (or in ``call.tx`` when one is given,
    as for Bundle entries, which all share the Bundle's transaction).

    A read that fails because its pooled connection was dead (the database restarted) is run once
    more on a fresh connection; a write is not (its client retries, as 503 tells it to)."""
    if call.tx is not None or call.interaction.tx == "own":
        return call.interaction.handler(call)
    kind = call.interaction.tx
    for attempt in (1, 2):
        try:
            with open_tx(call.store, kind, call.caller.tenant) as tx:
                call.tx = tx
                return call.interaction.handler(call)
        except FhirError as exc:
            if attempt == 2 or kind == "write" or not connection_lost(exc):
                raise
            call.tx = None
    raise AssertionError("unreachable")


def core_routes(store) -> RouteTable:
    """A route table of the core interactions alone (bulk import and tests; a node's table also
    holds its capabilities' operations and its security policy)."""
    return RouteTable(CORE_INTERACTIONS, store.is_known_type)
