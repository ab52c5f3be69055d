"""HTTP interfaces of the master patient index: PIXm ``$ihe-pix``, ``Patient/$match`` (ITI-119) and the
review / merge API under ``/api/mpi``. PDQm (ITI-78) is ordinary Patient search, answered by the search engine."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from hutong.api.caller import Caller, get_caller
from hutong.core.errors import FhirError
from hutong.mpi import service
from hutong.mpi.model import MATCH_GRADE_URL

router = APIRouter()
FHIR_JSON = "application/fhir+json"


def startup(app) -> None:
    """Register the linker on the change log (runs after each commit and every second)."""
    app.state.store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})


def _fhir(body: dict, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except Exception as exc:  # noqa: BLE001 - any parse failure is the client's
        raise FhirError(400, "structure", "请求体不是 JSON / body is not JSON") from exc
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "请求体须为 JSON 对象 / body must be a JSON object")
    return body


def _pix_params(values: dict[str, list[str]]) -> Response:
    src = (values.get("sourceIdentifier") or [""])[0]
    if not src:
        raise FhirError(400, "required", "缺少 sourceIdentifier / sourceIdentifier is required", ["sourceIdentifier"])
    system, _, value = src.rpartition("|")
    if not value:
        raise FhirError(400, "invalid", "sourceIdentifier 须为 system|value", ["sourceIdentifier"])
    targets = [t for v in values.get("targetSystem") or [] for t in v.split(",") if t]
    return system, value, targets


@router.get("/fhir/Patient/$ihe-pix", operation_id="ihe_pix_get", summary="PIXm identifier cross-reference (ITI-83)")
@router.post("/fhir/Patient/$ihe-pix", operation_id="ihe_pix_post", summary="PIXm identifier cross-reference (ITI-83)")
async def ihe_pix(request: Request, caller: Caller = Depends(get_caller)) -> Response:
    """PIXm (ITI-83): identifiers of the same person in other institutions' records."""
    values: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        values.setdefault(k, []).append(v)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            body = await _json(request)
            for p in body.get("parameter") or []:
                val = p.get("valueString") or p.get("valueUri") or p.get("valueToken")
                if val is None and isinstance(p.get("valueIdentifier"), dict):
                    vi = p["valueIdentifier"]
                    val = f"{vi.get('system', '')}|{vi.get('value', '')}"
                if p.get("name") and val:
                    values.setdefault(p["name"], []).append(val)
        else:
            form = await request.form()
            for k, v in form.multi_items():
                values.setdefault(k, []).append(str(v))
    system, value, targets = _pix_params(values)
    store = request.app.state.store
    found = service.pix(store, system, value, targets)
    params = []
    for rec in found:
        for ident in rec["identifiers"]:
            params.append({"name": "targetIdentifier", "valueIdentifier": ident})
        params.append({"name": "targetId", "valueReference": {"reference": rec["targetId"]}})
    return _fhir({"resourceType": "Parameters", "parameter": params})


@router.post("/fhir/Patient/$match")
async def patient_match(request: Request, caller: Caller = Depends(get_caller)) -> Response:
    """ITI-119 / FHIR ``$match``: scored, graded candidates for a Patient resource."""
    body = await _json(request)
    patient, count, only_certain = None, 10, False
    if body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or []:
            if p.get("name") == "resource":
                patient = p.get("resource")
            elif p.get("name") == "count":
                count = int(p.get("valueInteger") or 10)
            elif p.get("name") == "onlyCertainMatches":
                only_certain = bool(p.get("valueBoolean"))
    elif body.get("resourceType") == "Patient":
        patient = body
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FhirError(400, "required", "须提供 Patient 资源参数 resource / a Patient 'resource' parameter is required",
                        ["Parameters.parameter"])
    count = max(1, min(count, 100))
    found = service.match(request.app.state.store, patient, count=count, only_certain=only_certain)
    entries = [{
        "fullUrl": f"Patient/{m['patient_id']}",
        "resource": m["resource"],
        "search": {"mode": "match", "score": m["score"],
                   "extension": [{"url": MATCH_GRADE_URL, "valueCode": m["grade"]}]},
    } for m in found]
    return _fhir({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


@router.get("/api/mpi/review")
def review_list(request: Request, status: str = "open", limit: int = 100, caller: Caller = Depends(get_caller)):
    """待审核队列 / review queue (probable and possible matches)."""
    return {"items": service.review_list(request.app.state.store, status, max(1, min(limit, 1000)))}


@router.get("/api/mpi/review/{review_id}")
def review_get(review_id: str, request: Request, caller: Caller = Depends(get_caller)):
    """Both records side by side, with the evidence per field."""
    return service.review_get(request.app.state.store, review_id)


@router.post("/api/mpi/review/{review_id}/{decision}")
def review_decide(review_id: str, decision: str, request: Request, caller: Caller = Depends(get_caller)):
    """``link`` or ``reject`` a review item (audited)."""
    if decision not in ("link", "reject"):
        raise FhirError(404, "not-found", "decision must be link or reject")
    return service.review_decide(request.app.state.store, review_id, decision, who=caller.client_id)


@router.post("/api/mpi/merge")
async def merge(request: Request, caller: Caller = Depends(get_caller)):
    """Merge: ``{"source": "Patient/a", "target": "Patient/b"}`` → a's person joins b's (audited, reversible)."""
    body = await _json(request)
    if not body.get("source") or not body.get("target"):
        raise FhirError(400, "required", "需要 source 和 target / source and target are required")
    return service.merge(request.app.state.store, body["source"], body["target"], who=caller.client_id)


@router.post("/api/mpi/unmerge")
async def unmerge(request: Request, caller: Caller = Depends(get_caller)):
    """Unmerge: ``{"audit": "<merge AuditEvent id>"}`` restores the former persons; ``{"patient": "Patient/a"}``
    splits one record out."""
    body = await _json(request)
    return service.unmerge(request.app.state.store, audit=body.get("audit"), patient=body.get("patient"),
                           who=caller.client_id)


@router.get("/api/mpi/patients/{patient_id}/linked")
def linked(patient_id: str, request: Request, caller: Caller = Depends(get_caller)):
    """The person and every Patient record linked to it."""
    store = request.app.state.store
    return {"person_id": service.person_for_patient(store, patient_id),
            "patients": [p["id"] for p in service.linked_patients(store, patient_id)]}


@router.post("/api/mpi/model/train")
def train(request: Request, caller: Caller = Depends(get_caller)):
    """Refit the online model on the indexed records (EM)."""
    return service.retrain(request.app.state.store)
