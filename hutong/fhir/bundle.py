"""Transaction and batch Bundles.

A ``transaction`` runs in one database transaction: all entries commit or none do. Entries are
processed in the order the specification gives (DELETE, POST, PUT/PATCH, GET/HEAD), ``urn:uuid:``
full URLs are given ids before any resource is written so references between entries resolve,
and conditional references (``Patient?identifier=…``) are resolved by search. A failing entry
aborts the transaction with an OperationOutcome that names the entry.

A ``batch`` runs each entry in its own transaction and reports each entry's outcome.
"""

from __future__ import annotations

import copy
import threading
from contextlib import nullcontext
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from hutong.core.caller import Caller
from hutong.core.clock import now_us
from hutong.core.errors import FhirError, Issue, bad_request, operation_outcome
from hutong.core.ids import new_id as new_id_
from hutong.core.memory import release_memory
from hutong.fhir.rest import FhirRequest, FhirResult, core_routes, perform, resource_result
from hutong.fhir.routes import Call, RouteTable
from hutong.store.errors import translate
from hutong.store.records import Prepared, StoredResource
from hutong.store.references import CONDITIONAL_REF, reference_objects, reference_path
from hutong.store.store import Store
from hutong.store.tx import Tx

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content", 304: "304 Not Modified"}


def _status_line(status: int) -> str:
    return _STATUS_TEXT.get(status, str(status))


def _entry_error(index: int, exc: FhirError) -> FhirError:
    """Re-raise ``exc`` naming the bundle entry that caused it."""
    issues = []
    for issue in exc.issues:
        expression = [f"Bundle.entry[{index}].resource" + (e[e.index("."):] if "." in e else "") for e in issue.expression]
        if not expression:
            expression = [f"Bundle.entry[{index}]"]
        issues.append(Issue(issue.severity, issue.code, f"Bundle.entry[{index}]: {issue.diagnostics}", expression,
                            details_code=issue.details_code))
    return FhirError(exc.status, exc.code, issues[0].diagnostics, issues=issues)


def _split_url(url: str, base_url: str) -> tuple[str, list[tuple[str, str]]]:
    if base_url and url.startswith(base_url):
        url = url[len(base_url):]
    parts = urlsplit(url)
    if parts.scheme:
        raise bad_request(f"entry request url {url[:120]!r} is not on this server")
    try:
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:
        raise bad_request(f"invalid query in {url[:120]!r}") from exc
    return parts.path.strip("/"), query


#: Entries of a transaction answer by their own shape; Prefer applies to the whole response.
_PLAIN_POST = FhirRequest("POST", "")


def _entry_headers(req: dict) -> dict[str, str]:
    """The HTTP headers a Bundle ``entry.request`` stands for."""
    return {header: req[key] for key, header in (("ifMatch", "if-match"), ("ifNoneExist", "if-none-exist"),
                                                 ("ifNoneMatch", "if-none-match")) if req.get(key)}


def _check_bundle(bundle) -> list[dict]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise bad_request("POST to the base needs a Bundle", "resourceType")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise bad_request("Bundle.entry must be an array", "Bundle.entry")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad_request(f"Bundle.entry[{i}] must be an object", f"Bundle.entry[{i}]")
        req = entry.get("request")
        if not isinstance(req, dict) or not isinstance(req.get("method"), str) or not isinstance(req.get("url"), str):
            raise bad_request(f"Bundle.entry[{i}].request needs method and url", f"Bundle.entry[{i}].request")
        if req["method"].upper() not in _ORDER:
            raise bad_request(f"Bundle.entry[{i}].request.method {req['method'][:10]!r} is not supported",
                              f"Bundle.entry[{i}].request.method")
        if "resource" in entry and not isinstance(entry["resource"], dict):
            raise bad_request(f"Bundle.entry[{i}].resource must be an object", f"Bundle.entry[{i}].resource")
    return entries


@dataclass
class Entries:
    """What every entry of one Bundle shares: the route table, the caller and the base URL."""

    store: Store
    routes: RouteTable
    caller: Caller
    base_url: str

    def run(self, tx: Tx, index: int, method: str, path: str, query, headers: dict, body) -> FhirResult:
        """Perform one entry through the route table, authorised like the same request over HTTP."""
        interaction, params = self.routes.match(method, path)
        if not interaction.in_bundle:
            raise bad_request(f"{method} {path or '/'} is not allowed inside a Bundle")
        call = Call(interaction, params, FhirRequest(method, path, query, headers, body), self.store, self.caller,
                    self.base_url, tx, self.routes)
        self.routes.check(call)
        return perform(call)


def _entries(store: Store, base_url: str, routes: RouteTable | None, caller: Caller | None) -> Entries:
    return Entries(store, routes or core_routes(store), caller or Caller(), base_url)


def process_bundle(store: Store, bundle: dict, base_url: str, *, routes: RouteTable | None = None,
                   caller: Caller | None = None, representation: bool = False) -> dict:
    """Process a transaction or batch Bundle and return the response Bundle."""
    kind = bundle.get("type") if isinstance(bundle, dict) else None
    if kind == "transaction":
        return process_transaction(store, bundle, base_url, routes=routes, caller=caller, representation=representation)
    if kind == "batch":
        return process_batch(store, bundle, base_url, routes=routes, caller=caller, representation=representation)
    raise bad_request(f"Bundle.type must be transaction or batch, got {str(kind)[:40]!r}", "Bundle.type")


#: One Bundle at a time per worker process. Two in one process only share its GIL, and a thread that
#: holds the database write lock then waits for the GIL on every row it inserts (the other thread's
#: pure-Python validation and indexing keep it), so the lock is held far longer; worker processes
#: overlap one Bundle's preparation with another's database work instead.
_BUNDLE_GATE = threading.Lock()


def receive_bundle(call: Call) -> dict:
    """``POST /fhir`` with a Bundle: parsed and processed one at a time per process (the body is
    parsed inside the gate too, so waiting Bundles stay compact bytes rather than parsed trees)."""
    from hutong.fhir.body import decode_body

    with _BUNDLE_GATE:
        try:
            body = decode_body(call.req.body, call.req.header("content-type"))
            if not isinstance(body, dict):
                raise bad_request("POST to the base needs a Bundle resource")
            representation = "return=representation" in (call.req.header("prefer") or "")
            return process_bundle(call.store, body, call.base_url, routes=call.routes, caller=call.caller,
                                  representation=representation)
        finally:
            release_memory()




def _entry_response(result: FhirResult, representation: bool, base_url: str) -> dict:
    response: dict = {"status": _status_line(result.status)}
    for header, key in (("Location", "location"), ("Content-Location", "location"), ("ETag", "etag")):
        if header in result.headers and key not in response:
            response[key] = result.headers[header]
    if result.stored is not None:
        response["lastModified"] = result.stored.last_updated
    entry: dict = {"response": response}
    # Written resources are echoed only on request (Prefer: return=representation); reads always are.
    if result.body is not None and (representation or result.stored is None):
        body = result.body_dict()
        if body.get("resourceType") == "OperationOutcome" and result.status >= 400:
            response["outcome"] = body
        else:
            entry["resource"] = body
    if result.stored is not None:
        entry["fullUrl"] = f"{base_url}/{result.stored.res_type}/{result.stored.res_id}"
    return entry


def resolve_conditional_references(tx: Tx, resource: dict, cache: dict[str, str]) -> None:
    """Replace ``Type?criteria`` references with the one matching resource's ``Type/id``."""
    for ref_obj in reference_objects(resource):
        ref = ref_obj["reference"]
        if not CONDITIONAL_REF.match(ref):
            continue
        path = reference_path(resource, ref_obj)
        if ref not in cache:
            res_type, query = ref.split("?", 1)
            if not tx.store.is_known_type(res_type):
                raise bad_request(f"conditional reference {ref[:120]!r} names an unknown type", path)
            matches = tx.search_query(res_type, query, limit=2)
            if not matches:
                raise FhirError(404, "not-found", f"conditional reference {ref[:120]!r} matches no resource", path)
            if len(matches) > 1:
                raise FhirError(412, "multiple-matches", f"conditional reference {ref[:120]!r} matches several resources", path)
            cache[ref] = f"{res_type}/{matches[0]}"
        ref_obj["reference"] = cache[ref]


def process_transaction(store: Store, bundle: dict, base_url: str, *, routes: RouteTable | None = None,
                        caller: Caller | None = None, representation: bool = False) -> dict:
    """All-or-nothing processing of a transaction Bundle.

    What needs no database (the plan, ids for created entries, urn:uuid references, and the
    validation, serialisation and index rows of the resources those entries create) is done
    before the write transaction begins: concurrent transactions then overlap their CPU work
    and hold the write lock only for the database part.
    """
    entries = _check_bundle(bundle)
    ctx = _entries(store, base_url, routes, caller)
    tenant = ctx.caller.tenant
    responses: list[dict | None] = [None] * len(entries)
    plan, id_map, will_exist, searched = _plan_transaction(entries, base_url)
    ts = now_us()
    prepared: dict[int, Prepared] = {}
    unresolved: list[int] = []  # entries with references that only the database can resolve
    for i, entry, path, _query in plan:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        _rewrite_attachment_urls(resource, id_map)
        refs = reference_objects(resource)
        if not _rewrite_references(i, resource, id_map, searched, refs):
            unresolved.append(i)
        elif "_new_id" in entry and "/" not in path:
            try:
                prepared[i] = store.prepare(_new_resource(entry, path), path, entry["_new_id"], 1, ts, refs)
            except FhirError as exc:
                raise _entry_error(i, exc) from None
    with store.write(tenant) as tx:
        tx.will_exist |= will_exist
        # 1. Entries created only if their ifNoneExist search finds nothing. Their criteria are
        # locked first, all of them and in one order, so concurrent Bundles cannot deadlock.
        conditional = sorted({(path.split("/")[0], entry["request"]["ifNoneExist"].split("?", 1)[-1])
                              for _i, entry, path, _q in plan
                              if entry.get("fullUrl") in searched and entry["request"]["method"].upper() == "POST"})
        for res_type, criteria in conditional:
            tx.serialize_criteria(res_type, criteria)
        for i, entry, path, _query in plan:
            full_url = entry.get("fullUrl")
            if full_url not in searched or entry["request"]["method"].upper() != "POST":
                continue
            res_type = path.split("/")[0]
            cond = entry["request"]["ifNoneExist"]
            try:
                matches = tx.search_query(res_type, cond.split("?", 1)[-1], limit=2)
            except FhirError as exc:
                raise _entry_error(i, exc) from None
            if len(matches) > 1:
                raise _entry_error(i, FhirError(412, "multiple-matches", f"ifNoneExist {cond[:120]!r} matches several"))
            if matches:
                id_map[full_url] = f"{res_type}/{matches[0]}"
                entry["_existing"] = matches[0]
            else:
                new = new_id_()
                entry["_new_id"] = new
                id_map[full_url] = f"{res_type}/{new}"
                tx.will_exist.add((res_type, new))
        # 2. References that needed those searches, and conditional references.
        cond_cache: dict[str, str] = {}
        for i in unresolved:
            resource = entries[i]["resource"]
            _rewrite_references(i, resource, id_map, ())
            try:
                resolve_conditional_references(tx, resource, cond_cache)
            except FhirError as exc:
                raise _entry_error(i, exc) from None
        # 3. Perform the entries in the specified order.
        results: list[tuple[int, FhirResult | StoredResource, str]] = []
        for i, entry, path, query in sorted(plan, key=lambda p: (_ORDER[p[1]["request"]["method"].upper()], p[0])):
            req = entry["request"]
            method = req["method"].upper()
            try:
                if method == "POST" and "_existing" in entry:
                    stored = tx.read(path.split("/")[0], entry.pop("_existing"))
                    result = resource_result(stored, 200, _PLAIN_POST, base_url, location=True)
                elif method == "POST" and "_new_id" in entry and "/" not in path:
                    new = entry.pop("_new_id")
                    if i in prepared:
                        created = tx.create(prepared[i].resource, prepared=prepared[i])
                    else:
                        created = tx.create(_new_resource(entry, path), res_id=new, fresh_id=True)
                    result = created.stored  # shaped into a result after commit
                else:
                    headers = _entry_headers(req)
                    body = entry.get("resource")
                    if method == "PATCH" and isinstance(body, dict) and body.get("resourceType") == "Binary":
                        body = _binary_patch(body)
                    result = ctx.run(tx, i, method, path, query, headers, body)
            except FhirError as exc:
                raise _entry_error(i, exc) from None
            results.append((i, result, method))
    # Responses are built after commit: the write lock is not held for work that needs no database.
    for i, result, method in results:
        if isinstance(result, StoredResource):
            result = resource_result(result, 201, _PLAIN_POST, base_url, location=True)
        responses[i] = _entry_response(result, representation or method in ("GET", "HEAD"), base_url)
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}


def _plan_transaction(entries: list[dict], base_url: str):
    """Split entry URLs, refuse two entries on one target, and give created entries their ids.

    Returns the plan ``(index, entry, path, query)``, the fullUrl -> ``Type/id`` map, the
    resources the transaction will create (references to them resolve), and the fullUrls of
    entries whose id depends on an ``ifNoneExist`` search (decided in the transaction).
    """
    id_map: dict[str, str] = {}
    will_exist: set[tuple[str, str]] = set()
    searched: set[str] = set()
    seen_targets: set[str] = set()
    plan: list[tuple[int, dict, str, list[tuple[str, str]]]] = []
    for i, entry in enumerate(entries):
        req = entry["request"]
        method = req["method"].upper()
        try:
            path, query = _split_url(req["url"], base_url)
        except FhirError as exc:
            raise _entry_error(i, exc) from None
        plan.append((i, entry, path, query))
        if method in ("PUT", "DELETE", "PATCH") and not query:
            if path in seen_targets:
                raise _entry_error(i, bad_request(f"{path} appears in more than one entry of the transaction"))
            seen_targets.add(path)
            if method == "PUT" and path.count("/") == 1:
                will_exist.add(tuple(path.split("/", 1)))
        full_url = entry.get("fullUrl")
        if method == "POST" and isinstance(full_url, str) and "resource" in entry:
            res_type = path.split("/")[0]
            if req.get("ifNoneExist"):
                searched.add(full_url)
                continue
            new = new_id_()
            entry["_new_id"] = new
            id_map[full_url] = f"{res_type}/{new}"
            will_exist.add((res_type, new))
        elif method == "PUT" and isinstance(full_url, str) and full_url.startswith("urn:"):
            if "?" not in path and "/" in path:
                id_map[full_url] = path
                will_exist.add(tuple(path.split("/", 1)))
    return plan, id_map, will_exist, searched


def _rewrite_references(index: int, resource: dict, id_map: dict[str, str], searched,
                        refs: list[dict] | None = None) -> bool:
    """Point ``urn:`` references at the ids the transaction assigned. False when some reference
    waits for the database (an ``ifNoneExist`` entry's id, or a conditional reference)."""
    resolved = True
    for ref_obj in reference_objects(resource) if refs is None else refs:
        ref = ref_obj["reference"]
        if ref.startswith("urn:"):
            if ref in id_map:
                ref_obj["reference"] = id_map[ref]
            elif ref in searched:
                resolved = False
            elif ref.startswith("urn:uuid:"):
                raise _entry_error(index, FhirError(
                    400, "not-found", f"reference {ref} names no entry of this transaction",
                    f"{resource.get('resourceType')}.{reference_path(resource, ref_obj)}"))
        elif CONDITIONAL_REF.match(ref):
            resolved = False
    return resolved


_ATTACHMENT_KEYS = frozenset({"contentType", "size", "hash", "title", "creation", "language"})


def _rewrite_attachment_urls(node, id_map: dict[str, str]) -> None:
    """R4 transaction rules: links to other entries are replaced in url elements too, not only in
    Reference.reference; an Attachment's ``url`` naming an entry (MHD: DocumentReference → its Binary)
    becomes that entry's new relative URL."""
    if isinstance(node, dict):
        url = node.get("url")
        if isinstance(url, str) and url.startswith("urn:") and url in id_map and _ATTACHMENT_KEYS & node.keys():
            node["url"] = id_map[url]
        for value in node.values():
            if isinstance(value, (dict, list)):
                _rewrite_attachment_urls(value, id_map)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _rewrite_attachment_urls(value, id_map)


def _new_resource(entry: dict, path: str) -> dict:
    """The resource a POST entry creates, without any client id (the server assigns it)."""
    resource = entry["resource"]
    if resource.get("resourceType") != path:
        raise bad_request(f"resourceType {resource.get('resourceType')!r} does not match {path!r}", "resourceType")
    return {k: v for k, v in resource.items() if k != "id"}


def _binary_patch(binary: dict):
    import base64

    import orjson

    try:
        return orjson.loads(base64.b64decode(binary.get("data") or ""))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise bad_request("PATCH entry Binary.data must hold a base64 JSON Patch") from exc


class _NeedsSavepoints(Exception):
    """A batch entry failed after some of its writes reached the database."""


def process_batch(store: Store, bundle: dict, base_url: str, *, routes: RouteTable | None = None,
                  caller: Caller | None = None, representation: bool = False) -> dict:
    """Each entry succeeds or fails on its own; failures are reported per entry.

    Entries run in one database transaction. A failing entry's buffered writes are dropped
    (they have not reached the database yet), which is all the independence most batches need.
    When a failure comes from the database itself, or after an entry's rows were sent, the
    batch is run again with a savepoint around each entry.
    """
    entries = _check_bundle(bundle)
    ctx = _entries(store, base_url, routes, caller)
    try:
        return _run_batch(ctx, entries, representation, savepoints=False)
    except _NeedsSavepoints:
        pass
    except FhirError as exc:
        if exc.status != 409 or exc.__cause__ is None:  # only a database conflict is worth a rerun
            raise
    return _run_batch(ctx, entries, representation, savepoints=True)


def _run_batch(ctx: Entries, entries, representation, *, savepoints: bool) -> dict:
    responses: list[dict] = []
    base_url = ctx.base_url
    with ctx.store.write(ctx.caller.tenant) as tx:
        for i, entry in enumerate(entries):
            req = entry["request"]
            method = req["method"].upper()
            try:
                with tx.savepoint() if savepoints else nullcontext():
                    mark = tx.mark()
                    try:
                        result = _batch_entry(ctx, tx, i, entry)
                    except FhirError:
                        if not savepoints and not tx.undo_to(mark):
                            raise _NeedsSavepoints() from None
                        raise
                responses.append(_entry_response(result, representation or method in ("GET", "HEAD"), base_url))
            except FhirError as exc:
                err = _entry_error(i, exc)
                responses.append({"response": {"status": str(exc.status), "outcome": operation_outcome(err.issues)}})
            except Exception as exc:  # a database failure of this entry alone (its savepoint rolled back)
                mapped = translate(exc)
                if mapped is None or not savepoints:
                    raise
                err = _entry_error(i, mapped)
                responses.append({"response": {"status": str(mapped.status), "outcome": operation_outcome(err.issues)}})
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}


def _batch_entry(ctx: Entries, tx: Tx, index: int, entry: dict) -> FhirResult:
    req = entry["request"]
    path, query = _split_url(req["url"], ctx.base_url)
    headers = _entry_headers(req)
    body = copy.deepcopy(entry.get("resource"))
    if isinstance(body, dict):
        resolve_conditional_references(tx, body, {})
    return ctx.run(tx, index, req["method"].upper(), path, query, headers, body)


__all__ = ["process_bundle", "process_transaction", "process_batch", "receive_bundle", "Entries"]
