"""FHIR REST routes: thin wrappers that parse the HTTP request and call ``hutong.fhir.rest.dispatch``."""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import Caller, get_caller
from hutong.api.responses import fhir_response
from hutong.core.errors import FhirError, bad_request
from hutong.fhir.bundle import process_bundle
from hutong.fhir.rest import FhirRequest, dispatch

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json", "text/json")
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def base_url(request: Request) -> str:
    """The FHIR base URL as the client sees it."""
    return str(request.base_url).rstrip("/") + "/fhir"


async def _parse_body(request: Request):
    return _decode_body(await request.body(), request.headers.get("content-type"))


def _decode_body(raw: bytes, content_type: str | None):
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        try:
            return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request("the form body is not valid") from exc
    if not raw.strip():
        return None
    if ctype and not ctype.endswith("json"):
        raise FhirError(415, "not-supported", f"unsupported content type {ctype[:60]!r}: use application/fhir+json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "structure", f"the body is not valid JSON: {exc}") from exc


def _fhir_request(request: Request, path: str, body) -> FhirRequest:
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = [(k, v) for k, v in request.query_params.multi_items()]
    return FhirRequest(request.method, path, query, headers, body)


async def handle(request: Request, path: str, caller: Caller):
    """Run one FHIR interaction at ``path`` (relative to /fhir) in the right kind of transaction."""
    store = request.app.state.store
    body = await _parse_body(request) if request.method in ("POST", "PUT", "PATCH") else None
    req = _fhir_request(request, path, body)
    base = base_url(request)
    is_search_post = request.method == "POST" and path.endswith("/_search")
    is_validate = "$validate" in path

    def run():
        if request.method in _WRITE_METHODS and not is_search_post and not is_validate:
            with store.write(caller.tenant) as tx:
                return dispatch(tx, req, base)
        # A read by id or version is one statement: no snapshot needed.
        single = request.method in ("GET", "HEAD") and not request.query_params and (
            path.count("/") == 1 or "/_history/" in path)
        with store.read(snapshot=not single) as tx:
            return dispatch(tx, req, base)

    result = await run_in_threadpool(run)
    if request.method == "HEAD":
        return fhir_response(None, result.status, result.headers)
    return fhir_response(result.json_bytes() if result.body is not None else None, result.status, result.headers)


@router.get("/metadata", summary="CapabilityStatement of this server")
async def metadata(request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, "metadata", caller)


@router.post("", summary="Process a transaction or batch Bundle")
@router.post("/", include_in_schema=False, operation_id="bundle_slash")
async def bundle(request: Request, caller: Caller = Depends(get_caller)):
    raw = await request.body()
    store = request.app.state.store
    base = base_url(request)
    representation = "return=representation" in (request.headers.get("prefer") or "")
    result = await run_in_threadpool(_one_bundle_at_a_time, raw, request.headers.get("content-type"), store, base,
                                     caller.tenant, representation)
    return fhir_response(result, 200)


#: One Bundle at a time per worker process. Two in one process only share its GIL, and a thread that
#: holds the database write lock then waits for the GIL on every row it inserts (the other thread's
#: pure-Python validation and indexing keep it), so the lock is held far longer; worker processes
#: overlap one Bundle's preparation with another's database work instead.
_BUNDLE_GATE = threading.Lock()


def _one_bundle_at_a_time(raw: bytes, content_type: str | None, store, base: str, tenant, representation: bool):
    # The body is parsed inside the gate too: waiting Bundles stay compact bytes, not parsed trees.
    with _BUNDLE_GATE:
        try:
            body = _decode_body(raw, content_type)
            if not isinstance(body, dict):
                raise bad_request("POST to the base needs a Bundle resource")
            return process_bundle(store, body, base, tenant, representation)
        finally:
            _release_memory()


def _release_memory() -> None:
    """Hand the heap freed by a large Bundle back to the operating system (glibc keeps it in its
    arenas otherwise, and a worker's RSS would ratchet up to its largest Bundle and stay there)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _find_malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _find_malloc_trim()


@router.get("/_history", summary="History of all resources")
async def history_system(request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, "_history", caller)


@router.get("/{res_type}/_history", summary="History of a resource type")
async def history_type(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/_history", caller)


@router.get("/{res_type}/{res_id}/_history", summary="History of one resource")
async def history_instance(res_type: str, res_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}/_history", caller)


@router.get("/{res_type}/{res_id}/_history/{version_id}", summary="Read one version (vread)")
@router.head("/{res_type}/{res_id}/_history/{version_id}", include_in_schema=False)
async def vread(res_type: str, res_id: str, version_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}/_history/{version_id}", caller)


@router.post("/{res_type}/$validate", summary="Validate a resource ($validate)")
async def validate_type(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/$validate", caller)


@router.post("/{res_type}/{res_id}/$validate", summary="Validate a resource against an existing one ($validate)")
async def validate_instance(res_type: str, res_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}/$validate", caller)


@router.post("/{res_type}/_search", summary="Search with a form body")
async def search_post(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/_search", caller)


@router.get("/{res_type}", summary="Search a resource type")
async def search_type(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, res_type, caller)


@router.post("/{res_type}", summary="Create (conditional with If-None-Exist)")
async def create(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, res_type, caller)


@router.put("/{res_type}", summary="Conditional update (search criteria in the query)")
async def conditional_update(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, res_type, caller)


@router.delete("/{res_type}", summary="Conditional delete (search criteria in the query)")
async def conditional_delete(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, res_type, caller)


@router.patch("/{res_type}", summary="Conditional patch (search criteria in the query)")
async def conditional_patch(res_type: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, res_type, caller)


@router.get("/{res_type}/{res_id}", summary="Read")
@router.head("/{res_type}/{res_id}", include_in_schema=False)
async def read(res_type: str, res_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}", caller)


@router.put("/{res_type}/{res_id}", summary="Update, or create with a client id")
async def update(res_type: str, res_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}", caller)


@router.patch("/{res_type}/{res_id}", summary="Patch with JSON Patch")
async def patch(res_type: str, res_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}", caller)


@router.delete("/{res_type}/{res_id}", summary="Delete")
async def delete(res_type: str, res_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}", caller)


@router.get("/{res_type}/{res_id}/{comp_type}", summary="Compartment search, e.g. Patient/123/Observation")
async def compartment(res_type: str, res_id: str, comp_type: str, request: Request,
                      caller: Caller = Depends(get_caller)):
    return await handle(request, f"{res_type}/{res_id}/{comp_type}", caller)
