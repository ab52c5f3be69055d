"""HTTP interfaces of the master patient index.

FHIR operations (rows of the route table): PIXm ``$ihe-pix`` (ITI-83) and ``Patient/$match``
(ITI-119). PDQm (ITI-78) is ordinary Patient search, answered by the search engine. The review and
merge API lives under ``/api/mpi``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError, bad_request
from hutong.fhir.body import decode_body, media_type
from hutong.fhir.rest import FhirResult
from hutong.fhir.routes import Call, Interaction
from hutong.mpi import service
from hutong.mpi.model import MATCH_GRADE_URL

router = APIRouter(tags=["patient index 主索引"])


def _pix_params(values: dict[str, list[str]]) -> tuple[str, str, list[str]]:
    src = (values.get("sourceIdentifier") or [""])[0]
    if not src:
        raise FhirError(400, "required", "缺少 sourceIdentifier / sourceIdentifier is required", ["sourceIdentifier"])
    system, _, value = src.rpartition("|")
    if not value:
        raise FhirError(400, "invalid", "sourceIdentifier 须为 system|value", ["sourceIdentifier"])
    targets = [t for v in values.get("targetSystem") or [] for t in v.split(",") if t]
    return system, value, targets


def _parameters_values(body) -> dict[str, list[str]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad_request("须为 Parameters 资源 / the body must be a Parameters resource")
    values: dict[str, list[str]] = {}
    for p in body.get("parameter") or []:
        if not isinstance(p, dict):
            continue
        val = p.get("valueString") or p.get("valueUri") or p.get("valueToken")
        if val is None and isinstance(p.get("valueIdentifier"), dict):
            vi = p["valueIdentifier"]
            val = f"{vi.get('system', '')}|{vi.get('value', '')}"
        if isinstance(p.get("name"), str) and isinstance(val, str):
            values.setdefault(p["name"], []).append(val)
    return values


def ihe_pix(call: Call) -> FhirResult:
    """PIXm (ITI-83): identifiers of the same person in other institutions' records."""
    values: dict[str, list[str]] = {}
    for k, v in call.req.query:
        values.setdefault(k, []).append(v)
    if call.req.method == "POST":
        ctype = call.req.header("content-type")
        body = decode_body(call.req.body, ctype)
        if media_type(ctype) == "application/x-www-form-urlencoded":
            for k, v in body or []:
                values.setdefault(k, []).append(v)
        elif body is not None:
            for k, vs in _parameters_values(body).items():
                values.setdefault(k, []).extend(vs)
    system, value, targets = _pix_params(values)
    found = service.pix(call.store, system, value, targets)
    params = []
    for rec in found:
        for ident in rec["identifiers"]:
            params.append({"name": "targetIdentifier", "valueIdentifier": ident})
        params.append({"name": "targetId", "valueReference": {"reference": rec["targetId"]}})
    return FhirResult(200, {"resourceType": "Parameters", "parameter": params})


def patient_match(call: Call) -> FhirResult:
    """ITI-119 / FHIR ``$match``: scored, graded candidates for a Patient resource."""
    body = call.req.body
    if not isinstance(body, dict):
        raise bad_request("请求体须为 JSON 对象 / the body must be a Parameters or Patient resource")
    patient, count, only_certain = None, 10, False
    if body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or []:
            if not isinstance(p, dict):
                continue
            if p.get("name") == "resource":
                patient = p.get("resource")
            elif p.get("name") == "count":
                if not isinstance(p.get("valueInteger"), int):
                    raise bad_request("count 须为整数 / count must be a valueInteger", "Parameters.parameter")
                count = p["valueInteger"]
            elif p.get("name") == "onlyCertainMatches":
                only_certain = p.get("valueBoolean") is True
    elif body.get("resourceType") == "Patient":
        patient = body
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise FhirError(400, "required", "须提供 Patient 资源参数 resource / a Patient 'resource' parameter is required",
                        ["Parameters.parameter"])
    count = max(1, min(count, 100))
    found = service.match(call.store, patient, count=count, only_certain=only_certain)
    entries = [{
        "fullUrl": f"{call.base_url}/Patient/{m['patient_id']}",
        "resource": m["resource"],
        "search": {"mode": "match", "score": m["score"],
                   "extension": [{"url": MATCH_GRADE_URL, "valueCode": m["grade"]}]},
    } for m in found]
    return FhirResult(200, {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


_PIX = "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"
_MATCH = "http://hl7.org/fhir/OperationDefinition/Patient-match"

FHIR_INTERACTIONS = [
    Interaction("GET", "Patient/$ihe-pix", "operation", ihe_pix, "Patient.s", operation="ihe-pix", definition=_PIX,
                summary="PIXm identifier cross-reference (ITI-83)", capability="mpi"),
    Interaction("POST", "Patient/$ihe-pix", "operation", ihe_pix, "Patient.s", body="raw", operation="ihe-pix",
                definition=_PIX, summary="PIXm identifier cross-reference (ITI-83), parameters in the body",
                capability="mpi"),
    Interaction("POST", "Patient/$match", "operation", patient_match, "Patient.s", body="json", operation="match",
                definition=_MATCH, summary="Scored, graded patient matches (ITI-119 / $match)", capability="mpi"),
]


@router.get("/api/mpi/review", summary="待审核队列 / review queue (probable and possible matches)")
def review_list(request: Request, status: Literal["open", "linked", "rejected", "all"] = "open",
                limit: int = Query(100, ge=1, le=1000), caller: Caller = Depends(permit("mpi.review"))):
    return {"items": service.review_list(request.app.state.store, status, limit)}


@router.get("/api/mpi/review/{review_id}", summary="Both records of a review item side by side, with the evidence")
def review_get(review_id: str, request: Request, caller: Caller = Depends(permit("mpi.review"))):
    return service.review_get(request.app.state.store, review_id)


@router.post("/api/mpi/review/{review_id}/{decision}", summary="Link or reject a review item (audited)")
def review_decide(review_id: str, decision: Literal["link", "reject"], request: Request,
                  caller: Caller = Depends(permit("mpi.review"))):
    return service.review_decide(request.app.state.store, review_id, decision, who=caller.client_id)


@router.post("/api/mpi/merge", summary='Merge: {"source": "Patient/a", "target": "Patient/b"} (audited, reversible)')
async def merge(request: Request, caller: Caller = Depends(permit("mpi.merge"))):
    body = await request_json(request)
    if not isinstance(body.get("source"), str) or not isinstance(body.get("target"), str):
        raise FhirError(400, "required", "需要 source 和 target / source and target are required")
    return service.merge(request.app.state.store, body["source"], body["target"], who=caller.client_id)


@router.post("/api/mpi/unmerge", summary='Unmerge: {"audit": "<merge AuditEvent id>"} or {"patient": "Patient/a"}')
async def unmerge(request: Request, caller: Caller = Depends(permit("mpi.merge"))):
    body = await request_json(request)
    return service.unmerge(request.app.state.store, audit=body.get("audit"), patient=body.get("patient"),
                           who=caller.client_id)


@router.get("/api/mpi/patients/{patient_id}/linked", summary="The person and every Patient record linked to it")
def linked(patient_id: str, request: Request, caller: Caller = Depends(permit("mpi.read"))):
    store = request.app.state.store
    if store.get("Patient", patient_id) is None:
        raise FhirError(404, "not-found", f"Patient/{patient_id[:64]} 不存在 / is not known")
    return {"person_id": service.person_for_patient(store, patient_id),
            "patients": [p["id"] for p in service.linked_patients(store, patient_id)]}


@router.post("/api/mpi/model/train", summary="Refit the online model on the indexed records (EM)")
def train(request: Request, caller: Caller = Depends(permit("mpi.admin"))):
    return service.retrain(request.app.state.store)


async def request_json(request: Request) -> dict:
    """A capability route's JSON object body, decoded like every other body."""
    from hutong.fhir.body import decode_json

    body = decode_json(await request.body(), request.headers.get("content-type"))
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "请求体须为 JSON 对象 / body must be a JSON object")
    return body
