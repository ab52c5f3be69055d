"""HTTP routes of the search capability: system search, ``Patient/$everything`` and Bulk Data ``$export``.

Type and compartment searches (``GET /fhir/{type}``, ``POST /fhir/{type}/_search``,
``GET /fhir/Patient/{id}/Observation``) are routed by the generic FHIR routes to the dispatcher
(``hutong.fhir.rest``), which calls ``SearchIndex.search``; this router adds ``GET /fhir?…`` (through the same
dispatcher) and the operations the dispatcher does not know.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import false, func, select, tuple_
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import Caller, get_caller
from hutong.core.clock import instant_now
from hutong.core.errors import FhirError, Issue, operation_outcome
from hutong.search.index import decode_cursor, encode_cursor
from hutong.search.params import registry
from hutong.search.query import bad, parse_date
from hutong.search.tables import sp_reference
from hutong.store.schema import resource as R

log = logging.getLogger(__name__)
router = APIRouter(tags=["FHIR R4 search"])
FHIR_JSON = "application/fhir+json; charset=utf-8"

try:  # announce the operations in the CapabilityStatement
    from hutong.fhir.capability import register_operation

    register_operation("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything", "Patient")
    register_operation("export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export", "Patient")
    register_operation("export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export", "Group")
except ImportError:  # pragma: no cover
    pass


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _since(value: str | None, name: str = "_since") -> int | None:
    if not value:
        return None
    return parse_date(value, name)[0]


def _types(value: str | None) -> list[str] | None:
    if not value:
        return None
    reg = registry()
    types = [t.strip() for t in value.split(",") if t.strip()]
    for t in types:
        if not reg.is_type(t):
            raise bad(f"_type: unknown resource type {t!r}", "_type")
    return types


def compartment_pairs(comp_type: str = "Patient") -> list[tuple[str, str]]:
    """``(resource type, reference parameter)`` pairs that put a resource into the compartment."""
    reg = registry()
    comp = reg.compartments[comp_type]
    return sorted({(t, c) for t, ps in comp.items() for p in ps for c in reg.store_codes(t, p)})


def compartment_filter(comp_type: str, ids: list[str] | None, types: list[str] | None):
    """Condition on ``resource`` rows: in the compartment of ``comp_type`` ``ids`` (all when ``None``)."""
    t = sp_reference
    pairs = [pt for pt in compartment_pairs(comp_type) if types is None or pt[0] in types]
    conds = []
    if pairs:
        sub = select(t.c.res_type, t.c.res_id).where(
            t.c.target_type == comp_type, tuple_(t.c.res_type, t.c.param).in_(pairs)
        )
        if ids is not None:
            sub = sub.where(t.c.target_id.in_(ids))
        conds.append(tuple_(R.c.res_type, R.c.res_id).in_(sub))
    if types is None or comp_type in types:
        self_cond = R.c.res_type == comp_type
        if ids is not None:
            self_cond = self_cond & R.c.res_id.in_(ids)
        conds.append(self_cond)
    if not conds:
        return false()
    from sqlalchemy import or_

    return or_(*conds)


# ---------------------------------------------------------------------------------------- system search
@router.get("/fhir", summary="Search across all types (system search; needs parameters or _type)")
@router.get("/fhir/", include_in_schema=False)
async def system_search(request: Request, caller: Caller = Depends(get_caller)):
    if not request.query_params:
        raise FhirError(404, "not-supported", "GET on the base needs search parameters (or _type)")
    from hutong.api.fhir_routes import handle

    return await handle(request, "", caller)


# ---------------------------------------------------------------------------------------- $everything
def everything(tx, patient_id: str | None, query: dict[str, str], base_url: str, settings) -> dict:
    """Patient/$everything as a searchset Bundle paged by a keyset cursor over (type, id)."""
    if patient_id is not None and tx.read("Patient", patient_id) is None:
        raise FhirError(404, "not-found", f"Patient/{patient_id} is not known")
    try:
        count = min(int(query.get("_count") or getattr(settings, "default_count", 50)), getattr(settings, "max_count", 1000))
    except ValueError:
        raise bad("_count must be an integer", "_count") from None
    since = _since(query.get("_since"))
    types = _types(query.get("_type"))
    cursor = query.get("_cursor")
    last = None
    if cursor:
        (last_type, last_id), _b = decode_cursor(cursor, 2)
        last = (last_type, last_id)
    if patient_id is not None:
        rows, more = _everything_one(tx.conn, patient_id, types, since, last, count)
    else:
        conds = [R.c.deleted == false(), compartment_filter("Patient", None, types)]
        if since is not None:
            conds.append(R.c.ts_us >= since)
        if last:
            conds.append(tuple_(R.c.res_type, R.c.res_id) > tuple_(*last))
        stmt = (select(R.c.res_type, R.c.res_id, R.c.content).where(*conds)
                .order_by(R.c.res_type, R.c.res_id).limit(count + 1))
        rows = tx.conn.execute(stmt).all()
        more = len(rows) > count
        rows = rows[:count]
    path = f"/Patient/{patient_id}/$everything" if patient_id else "/Patient/$everything"
    keep = [(k, v) for k, v in query.items() if k != "_cursor"]

    def link(c: str | None) -> str:
        q = keep + ([("_cursor", c)] if c else [])
        return base_url + path + ("?" + urlencode(q, quote_via=quote, safe=":|,/$") if q else "")

    bundle: dict = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant_now()},
        "type": "searchset",
    }
    if not cursor and not more:
        bundle["total"] = len(rows)
    links = [{"relation": "self", "url": link(cursor)}]
    if more and rows:
        links.append({"relation": "next", "url": link(encode_cursor([rows[-1][0], rows[-1][1]], False))})
    bundle["link"] = links
    if rows:
        bundle["entry"] = [
            {"fullUrl": f"{base_url}/{t}/{i}", "resource": orjson.loads(c), "search": {"mode": "match"}}
            for t, i, c in rows
        ]
    return bundle


def _everything_one(conn, patient_id: str, types, since, last, count: int):
    """One patient's compartment from the reverse reference index (one range scan), paged by (type, id)."""
    pairs = set(compartment_pairs("Patient"))
    t = sp_reference
    stmt = select(t.c.res_type, t.c.res_id, t.c.param).where(t.c.target_type == "Patient", t.c.target_id == patient_id)
    keys = {(rt, rid) for rt, rid, p in conn.execute(stmt) if (rt, p) in pairs}
    keys.add(("Patient", patient_id))
    ordered = sorted(k for k in keys if (types is None or k[0] in types) and (last is None or k > last))
    rows: list = []
    step = max(1, min(count + 1, 500))
    for i in range(0, len(ordered), step):
        chunk = ordered[i : i + step]
        by_type: dict[str, list[str]] = {}
        for rt, rid in chunk:
            by_type.setdefault(rt, []).append(rid)
        found = {}
        for rt, ids in by_type.items():
            conds = [R.c.res_type == rt, R.c.res_id.in_(ids), R.c.deleted == false()]
            if since is not None:
                conds.append(R.c.ts_us >= since)
            for a, b, c in conn.execute(select(R.c.res_type, R.c.res_id, R.c.content).where(*conds)):
                found[(a, b)] = (a, b, c)
        rows.extend(found[k] for k in chunk if k in found)
        if len(rows) > count:
            break
    return rows[:count], len(rows) > count


@router.get("/fhir/Patient/$everything", summary="All patients' records ($everything)")
async def everything_all(request: Request, caller: Caller = Depends(get_caller)):
    return await _everything(request, None)


@router.get("/fhir/Patient/{patient_id}/$everything", summary="One patient's whole record ($everything)")
async def everything_one(patient_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return await _everything(request, patient_id)


async def _everything(request: Request, patient_id: str | None):
    store = request.app.state.store
    query = dict(request.query_params)

    def run():
        with store.read() as tx:
            return everything(tx, patient_id, query, _base(request), store.settings)

    return _json(await run_in_threadpool(run))


# ---------------------------------------------------------------------------------------- $export
class ExportJob:
    """One asynchronous Bulk Data export writing NDJSON files under ``data_dir/exports/<id>``."""

    def __init__(self, store, folder: Path, level: str, group_id: str | None, types, since, request_url: str,
                 base_url: str):
        self.id = uuid.uuid4().hex
        self.store = store
        self.folder = folder / self.id
        self.level = level
        self.group_id = group_id
        self.types = types
        self.since = since
        self.request_url = request_url
        self.base_url = base_url
        self.transaction_time = instant_now()
        self.progress = "queued"
        self.done = False
        self.error: str | None = None
        self.cancelled = False
        self.output: list[dict] = []
        self.thread = threading.Thread(target=self._run, name=f"export-{self.id[:8]}", daemon=True)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.thread.start()

    def _scope(self, tx) -> tuple[list[str], object]:
        reg = registry()
        if self.level == "system":
            types = self.types or sorted(reg.resource_types)
            return types, None
        if self.level == "group":
            group = tx.read("Group", self.group_id)
            if group is None or group.deleted:
                raise FhirError(404, "not-found", f"Group/{self.group_id} is not known")
            members = []
            for m in group.resource.get("member") or []:
                ref = ((m or {}).get("entity") or {}).get("reference") or ""
                if ref.startswith("Patient/"):
                    members.append(ref.split("/", 1)[1])
            ids: list[str] | None = members
        else:
            ids = None
        comp = reg.compartments["Patient"]
        types = [t for t in (self.types or sorted(set(comp) | {"Patient"})) if t in comp or t == "Patient"]
        return types, ids

    def _run(self) -> None:
        try:
            with self.store.read() as tx:
                types, ids = self._scope(tx)
                for n, rtype in enumerate(types):
                    if self.cancelled:
                        return
                    self.progress = f"{n}/{len(types)} types"
                    conds = [R.c.res_type == rtype, R.c.deleted == false()]
                    if self.level != "system":
                        conds.append(compartment_filter("Patient", ids, [rtype]))
                    if self.since is not None:
                        conds.append(R.c.ts_us >= self.since)
                    path = self.folder / f"{rtype}.ndjson"
                    count, last = 0, ""
                    with open(path, "wb") as fh:
                        while not self.cancelled:
                            stmt = (select(R.c.res_id, R.c.content).where(*conds, R.c.res_id > last)
                                    .order_by(R.c.res_id).limit(2000))
                            rows = tx.conn.execute(stmt).all()
                            if not rows:
                                break
                            for _rid, content in rows:
                                fh.write(content.encode() if isinstance(content, str) else content)
                                fh.write(b"\n")
                            count += len(rows)
                            last = rows[-1][0]
                    if count:
                        self.output.append({
                            "type": rtype,
                            "url": f"{self.base_url}/$export-file/{self.id}/{rtype}.ndjson",
                            "count": count,
                        })
                    else:
                        path.unlink(missing_ok=True)
            self.progress = "done"
        except FhirError as exc:
            self.error = exc.diagnostics
        except Exception as exc:  # noqa: BLE001 - report any failure through the status endpoint
            log.exception("export %s failed", self.id)
            self.error = f"export failed: {type(exc).__name__}"
        finally:
            self.done = True

    def manifest(self) -> dict:
        return {
            "transactionTime": self.transaction_time,
            "request": self.request_url,
            "requiresAccessToken": False,
            "output": self.output,
            "error": [],
        }


_JOBS: dict[str, ExportJob] = {}
_JOBS_LOCK = threading.Lock()


def _kickoff(request: Request, level: str, group_id: str | None = None) -> Response:
    store = request.app.state.store
    q = request.query_params
    fmt = q.get("_outputFormat")
    if fmt and fmt not in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        raise bad(f"_outputFormat {fmt[:60]!r} is not supported; use application/fhir+ndjson", "_outputFormat")
    prefer = (request.headers.get("prefer") or "").replace(" ", "").lower()
    if "respond-async" not in prefer:
        raise bad("Bulk Data export needs the header Prefer: respond-async", "Prefer")
    types = _types(q.get("_type"))
    since = _since(q.get("_since"))
    folder = Path(store.settings.data_dir) / "exports"
    job = ExportJob(store, folder, level, group_id, types, since, str(request.url), _base(request))
    if level == "group":
        with store.read() as tx:
            g = tx.read("Group", group_id)
        if g is None or g.deleted:
            raise FhirError(404, "not-found", f"Group/{group_id} is not known")
    with _JOBS_LOCK:
        _JOBS[job.id] = job
    job.start()
    status_url = f"{_base(request)}/$export-status/{job.id}"
    return Response(status_code=202, headers={"Content-Location": status_url})


@router.get("/fhir/$export", summary="Bulk Data export of the whole system (asynchronous)")
async def export_system(request: Request, caller: Caller = Depends(get_caller)):
    return _kickoff(request, "system")


@router.get("/fhir/Patient/$export", summary="Bulk Data export of all patients' compartments")
async def export_patients(request: Request, caller: Caller = Depends(get_caller)):
    return _kickoff(request, "patient")


@router.get("/fhir/Group/{group_id}/$export", summary="Bulk Data export of a group's patients")
async def export_group(group_id: str, request: Request, caller: Caller = Depends(get_caller)):
    return _kickoff(request, "group", group_id)


def _job(job_id: str) -> ExportJob:
    job = _JOBS.get(job_id)
    if job is None:
        raise FhirError(404, "not-found", "unknown or deleted export job")
    return job


@router.get("/fhir/$export-status/{job_id}", summary="Bulk Data export status (202 in progress, 200 manifest)")
async def export_status(job_id: str, request: Request, caller: Caller = Depends(get_caller)):
    job = _job(job_id)
    if not job.done:
        return Response(status_code=202, headers={"X-Progress": job.progress, "Retry-After": "1"})
    if job.error:
        return _json(operation_outcome(Issue("error", "exception", job.error)), 500)
    return Response(orjson.dumps(job.manifest()), media_type="application/json",
                    headers={"Expires": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 86400))})


@router.delete("/fhir/$export-status/{job_id}", summary="Cancel or delete a Bulk Data export")
async def export_cancel(job_id: str, request: Request, caller: Caller = Depends(get_caller)):
    job = _job(job_id)
    job.cancelled = True
    job.thread.join(timeout=10)
    with _JOBS_LOCK:
        _JOBS.pop(job_id, None)
    shutil.rmtree(job.folder, ignore_errors=True)
    return Response(status_code=202)


@router.get("/fhir/$export-file/{job_id}/{name}", summary="Download one NDJSON file of an export")
async def export_file(job_id: str, name: str, request: Request, caller: Caller = Depends(get_caller)):
    job = _job(job_id)
    if not job.done or "/" in name or ".." in name or not name.endswith(".ndjson"):
        raise FhirError(404, "not-found", "no such export file")
    path = job.folder / name
    if not path.exists():
        raise FhirError(404, "not-found", "no such export file")
    return FileResponse(path, media_type="application/fhir+ndjson")


__all__ = ["router", "everything", "compartment_filter", "ExportJob", "func"]
