"""FHIR RESTful interactions as plain functions, shared by the HTTP routes and by Bundle entries.

``dispatch`` takes a ``FhirRequest`` (method, path relative to the FHIR base, query, headers,
parsed body) and performs it in a given store transaction, returning a ``FhirResult``. The
HTTP layer only parses and formats; bundles call ``dispatch`` once per entry.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

import orjson

from hutong.core.clock import http_date, instant
from hutong.core.errors import FhirError, Issue, bad_request, info_outcome, operation_outcome
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
    for key, value in req.query:
        if key == "_since":
            since = parse_since(value)
        elif key == "_cursor":
            cursor = _decode_cursor(value)
        elif key in ("_count", "_format", "_pretty"):
            continue
        elif key == "_at" or key == "_list":
            raise FhirError(400, "not-supported", f"history parameter {key} is not supported", key)
        else:
            raise bad_request(f"unknown history parameter {key!r}", key)
    rows = tx.history(res_type, res_id, since_us=since, at_or_before=cursor, count=count + 1)
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
    return {"resourceType": "Bundle", "type": "history", "link": links, "entry": entries}


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
    issues = store.validator(resource) if store.validator else []
    if not issues:
        return info_outcome("validation passed: no errors", "informational")
    return operation_outcome(issues)


def dispatch(tx: Tx, req: FhirRequest, base_url: str) -> FhirResult:
    """Perform one FHIR interaction in ``tx``."""
    store = tx.store
    method = req.method.upper()
    path = req.path.strip("/")
    parts = path.split("/") if path else []
    n = len(parts)

    if n == 0:
        if method == "GET" and req.query:
            return _search(tx, None, req, base_url)
        if method == "GET":
            raise FhirError(404, "not-supported", "GET on the base needs search parameters")
        raise FhirError(405, "not-supported", f"{method} is not supported on the base in this context")
    if parts[0] == "_history" and n == 1 and method == "GET":
        return FhirResult(200, history_bundle(tx, req, base_url, None, None))
    if parts[0] == "metadata" and n == 1 and method == "GET":
        from hutong.fhir.capability import capability_statement

        return FhirResult(200, capability_statement(store, base_url))

    res_type = parts[0]
    if res_type.startswith("$"):
        raise FhirError(400, "not-supported", f"operation {res_type[:64]} is not supported at the base")
    store.check_type(res_type)

    if n == 1:
        if method == "GET":
            return _search(tx, res_type, req, base_url)
        if method == "POST":
            resource = _body_resource(req)
            if resource.get("resourceType") != res_type:
                raise bad_request(
                    f"resourceType {resource.get('resourceType')!r} does not match {res_type!r}", "resourceType"
                )
            if "id" in resource and req.header("x-hutong-keep-id") is None:
                # FHIR: the server ignores a client id on create.
                resource = {k: v for k, v in resource.items() if k != "id"}
            result = tx.create(resource, if_none_exist=req.header("if-none-exist"))
            if result.outcome == "existing":
                return resource_result(result.stored, 200, req, base_url)
            return resource_result(result.stored, 201, req, base_url, location=True,
                                   outcome_text=f"created {result.stored.res_type}/{result.stored.res_id}")
        if method == "PUT":
            if not req.query:
                raise FhirError(405, "not-supported", "PUT needs an id or search criteria")
            resource = _body_resource(req)
            result = tx.conditional_update(res_type, _query_string(req.query), resource,
                                           if_match=parse_etag(req.header("if-match")))
            return resource_result(result.stored, 201 if result.outcome == "created" else 200, req, base_url,
                                   location=result.outcome == "created")
        if method == "DELETE":
            if not req.query:
                raise FhirError(405, "not-supported", "DELETE needs an id or search criteria")
            multiple = "delete-multiple" in (req.header("prefer") or "")
            results = tx.conditional_delete(res_type, _query_string(req.query), multiple=multiple)
            return FhirResult(200, info_outcome(f"deleted {sum(r.outcome == 'deleted' for r in results)} {res_type}"))
        if method == "PATCH":
            if not req.query:
                raise FhirError(405, "not-supported", "PATCH needs an id or search criteria")
            matches = tx.search_query(res_type, _query_string(req.query), limit=2)
            if len(matches) != 1:
                raise FhirError(404 if not matches else 412, "not-found" if not matches else "conflict",
                                f"conditional patch criteria match {len(matches)} {res_type}")
            result = tx.patch(res_type, matches[0], req.body, if_match=parse_etag(req.header("if-match")))
            return resource_result(result.stored, 200, req, base_url)
        raise FhirError(405, "not-supported", f"{method} is not supported on a resource type")

    res_id = parts[1]
    if res_id == "_history" and n == 2 and method == "GET":
        return FhirResult(200, history_bundle(tx, req, base_url, res_type, None))
    if res_id == "_search" and n == 2 and method == "POST":
        return _search(tx, res_type, req, base_url)
    if res_id == "$validate" and n == 2 and method == "POST":
        return FhirResult(200, validate_operation(store, res_type, req.body))
    if res_id.startswith("$"):
        raise FhirError(400, "not-supported", f"operation {res_id[:64]} is not supported here")

    if n == 2:
        if method in ("GET", "HEAD"):
            stored = tx.read_current(res_type, res_id)
            inm = req.header("if-none-match")
            if inm and parse_etag(inm, "If-None-Match") == stored.version_id:
                return FhirResult(304, None, {"ETag": stored.etag}, stored)
            return resource_result(stored, 200, req, base_url)
        if method == "PUT":
            resource = _body_resource(req)
            result = tx.update(res_type, res_id, resource, if_match=parse_etag(req.header("if-match")))
            return resource_result(result.stored, 201 if result.outcome == "created" else 200, req, base_url,
                                   location=result.outcome == "created")
        if method == "PATCH":
            result = tx.patch(res_type, res_id, req.body, if_match=parse_etag(req.header("if-match")))
            return resource_result(result.stored, 200, req, base_url)
        if method == "DELETE":
            result = tx.delete(res_type, res_id, if_match=parse_etag(req.header("if-match")))
            headers = {"ETag": result.stored.etag} if result.stored and result.outcome == "deleted" else {}
            return FhirResult(200, info_outcome(
                f"{res_type}/{res_id} deleted" if result.outcome == "deleted" else f"{res_type}/{res_id} was not present"
            ), headers)
        raise FhirError(405, "not-supported", f"{method} is not supported on a resource")

    if parts[2] == "_history":
        if n == 3 and method == "GET":
            tx.store.check_type(res_type)
            found = tx.read(res_type, res_id)
            if found is None:
                raise FhirError(404, "not-found", f"{res_type}/{res_id} is not known")
            return FhirResult(200, history_bundle(tx, req, base_url, res_type, res_id))
        if n == 4 and method in ("GET", "HEAD"):
            stored = tx.vread(res_type, res_id, parts[3])
            return resource_result(stored, 200, req, base_url)
    if n == 3 and parts[2] == "$validate" and method == "POST":
        tx.read_current(res_type, res_id)
        return FhirResult(200, validate_operation(store, res_type, req.body))
    if n == 3 and method == "GET" and store.is_known_type(parts[2]):
        return _search(tx, parts[2], req, base_url, compartment=(res_type, res_id))
    raise FhirError(404, "not-supported", f"no FHIR interaction at {path[:120]!r} for {method}")


def _search(tx: Tx, res_type: str | None, req: FhirRequest, base_url: str, compartment=None) -> FhirResult:
    index = tx.store.index
    if index is None:
        raise FhirError(501, "not-supported", "search is not available on this node")
    tx.flush()
    strict = "handling=strict" in (req.header("prefer") or "").replace(" ", "")
    params = [(k, v) for k, v in req.query if k not in ("_format", "_pretty")]
    if isinstance(req.body, list):
        params.extend(req.body)
    bundle = index.search(tx, res_type, params, base_url=base_url, strict=strict, compartment=compartment)
    return FhirResult(200, bundle)
