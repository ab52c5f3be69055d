"""HTTP for recognition (thin): CDS Hooks discovery, services and feedback; the results query."""

from __future__ import annotations

from typing import Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import ANONYMOUS, Caller
from hutong.core.clock import instant
from hutong.core.errors import FhirError, bad_request
from hutong.fhir.body import decode_json
from hutong.recognition import cdsauth, cdshooks, hl7v2, savings
from hutong.recognition.mllp import MllpListener
from hutong.recognition.service import recognisable_results, resolve_patient
from hutong.recognition.tables import recognition_hl7_rejected
from hutong.search.values import date_range
from hutong.stats.excel import XLSX

router = APIRouter(tags=["recognition 检查检验结果互认"])
_SERVICE_ID = Path(..., max_length=64, pattern=r"^[A-Za-z0-9\-\.]{1,64}$")
_JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


def cds_permit(permission: str):
    """``permit(permission)`` for a platform caller, or a CDS client's own signed JWT.

    CDS Hooks clients send ``Authorization: Bearer <JWT signed by the client>`` (CDS Hooks 2.0
    §Trusting CDS Clients): not a platform access token, so the platform refuses it with 401. Such a
    request goes on as anonymous here and ``_cds_caller`` must then verify the JWT (it is required)."""
    platform = permit(permission)

    async def dependency(request: Request) -> Caller:
        try:
            return await platform(request)
        except FhirError as exc:
            auth = (request.headers.get("authorization") or "").lower()
            if exc.status != 401 or not auth.startswith("bearer "):
                raise
            request.state.cds_jwt_only = True
            return ANONYMOUS

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


def _cds_caller(request: Request, node, path: str, caller: Caller, *, defer_jti: bool = False):
    """The verified CDS client (JWT) or, where none is required and none was sent, the node's caller.
    With ``defer_jti``: ``(caller, replay)``, the token's jti to record in the answer's transaction."""
    bases = {str(request.base_url).rstrip("/")}
    if node.settings.public_url:
        bases.add(node.settings.public_url.rstrip("/"))
    # feedback tokens may name the feedback URL or the service's own
    paths = {path, path.removesuffix("/feedback")}
    urls = {f"{b}/cds-services/{p}" for b in bases for p in paths}
    jwt_only = bool(getattr(request.state, "cds_jwt_only", False))
    authorization = request.headers.get("authorization")
    if not jwt_only and caller.auth == "token" and not node.settings.recognition_cds_require_jwt:
        authorization = None  # a platform access token already proved the caller
    require = jwt_only or bool(node.settings.recognition_cds_require_jwt)
    if defer_jti:
        return cdsauth.verify(node.store, authorization, urls, caller, require=require)
    return cdsauth.authorize(node.store, authorization, urls, caller, require=require)


def _hook(request: Request, node, service_id: str, caller: Caller, body) -> dict:
    # one thread-pool hop for the client check and the answer
    caller, replay = _cds_caller(request, node, service_id, caller, defer_jti=True)
    return cdshooks.answer(node.store, service_id, body, caller, replay=replay)


@router.get("/cds-services", summary="CDS Hooks 服务发现 (discovery)")
def discovery(caller: Caller = Depends(permit(PUBLIC))):
    return cdshooks.discovery()


@router.post("/cds-services/{service_id}", summary="CDS Hooks：开立检查检验时的互认提示卡片 (order-select / order-sign)",
             openapi_extra=_JSON_BODY)
async def call_service(request: Request, service_id: str = _SERVICE_ID,
                       caller: Caller = Depends(cds_permit("recognition.hook"))):
    body = decode_json(await request.body(), request.headers.get("content-type"))
    node = request.app.state.node
    answer = await run_in_threadpool(_hook, request, node, service_id, caller, body)
    return Response(orjson.dumps(answer), media_type="application/json")


@router.post("/cds-services/{service_id}/feedback", summary="CDS Hooks 反馈：采纳或不予互认（含理由）",
             openapi_extra=_JSON_BODY)
async def service_feedback(request: Request, service_id: str = _SERVICE_ID,
                           caller: Caller = Depends(cds_permit("recognition.feedback"))):
    body = decode_json(await request.body(), request.headers.get("content-type"))
    node = request.app.state.node
    caller = await run_in_threadpool(_cds_caller, request, node, f"{service_id}/feedback", caller)
    await run_in_threadpool(cdshooks.feedback, node.store, service_id, body, caller)
    return Response(status_code=200)


HL7_MEDIA = "x-application/hl7-v2+er7"
_HL7_BODY = {"requestBody": {"required": True, "content": {HL7_MEDIA: {"schema": {
    "type": "string", "description": "一条 HL7 v2 ORU^R01 / OUL^R22 报文（ER7，MSH-18 指明字符集）"}}}}}


@router.post("/api/hl7v2", summary="接收 HL7 v2 检验结果（ORU^R01、OUL^R22），应答 ACK（AA 200，AE/AR 400）",
             openapi_extra=_HL7_BODY, response_class=Response,
             responses={200: {"content": {HL7_MEDIA: {}}}, 400: {"content": {HL7_MEDIA: {}}}})
async def receive_hl7v2(request: Request, caller: Caller = Depends(permit("recognition.hl7v2"))):
    raw = await request.body()
    store = request.app.state.node.store
    out = await run_in_threadpool(hl7v2.receive, store, raw, via="http", tenant=caller.tenant)
    return Response(out.ack_bytes, status_code=200 if out.code == "AA" else 400,
                    media_type=f"{HL7_MEDIA}; charset={out.encoding}")


def _period(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    lo = hi = None
    if since:
        r = date_range(since)
        if r is None:
            raise bad_request("since 须为日期 / since must be a date", "since")
        lo = r[0]
    if until:
        r = date_range(until)
        if r is None:
            raise bad_request("until 须为日期 / until must be a date", "until")
        hi = r[1] + 1
    return lo, hi


@router.get("/api/recognition/stats", summary="互认统计：互认率、避免重复检查数、节省费用、不予互认理由、从未采纳的医生")
def stats(request: Request, by: Literal["institution", "item", "department", "month", "category", "practitioner"] = "institution",
          since: str | None = Query(None, max_length=40), until: str | None = Query(None, max_length=40),
          min_offers: int = Query(3, ge=1, le=10000),
          caller: Caller = Depends(permit("recognition.stats.read"))):
    lo, hi = _period(since, until)
    with request.app.state.node.store.read() as tx:
        return savings.report(tx, by=by, since_us=lo, until_us=hi, min_offers=min_offers)


@router.get("/api/recognition/stats.xlsx", summary="互认统计 Excel 导出", response_class=Response,
            responses={200: {"content": {XLSX: {}}}})
def stats_excel(request: Request, since: str | None = Query(None, max_length=40),
                until: str | None = Query(None, max_length=40),
                caller: Caller = Depends(permit("recognition.stats.read"))):
    lo, hi = _period(since, until)
    with request.app.state.node.store.read() as tx:
        data = savings.excel(tx, since_us=lo, until_us=hi)
    return Response(data, media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="recognition-savings.xlsx"'})


class ResultsQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: str = Field(..., pattern=r"^Patient/[A-Za-z0-9\-\.]{1,64}$", description="平台上的患者 Patient/{id}")
    codes: list[str] = Field(..., min_length=1, max_length=50, description="医嘱项目编码 system|code")
    institution: str | None = Field(None, pattern=r"^[A-Za-z0-9\-\.]{1,64}$", description="开单机构（默认为调用方机构）")


@router.post("/api/recognition/results", summary="查询某患者对某医嘱项目的可互认结果（HR）")
def results(body: ResultsQuestion, request: Request, caller: Caller = Depends(permit("recognition.results"))):
    for c in body.codes:
        if "|" not in c or len(c) > 320:
            raise bad_request("codes 须为 system|code / codes are system|code", "codes")
    institution = body.institution or caller.institution
    with request.app.state.node.store.read() as tx:
        pids = resolve_patient(tx, body.patient.split("/", 1)[1], None, None)
        offers = recognisable_results(tx, pids, body.codes, institution)
    return {"results": [{"item": o.item.key, "title": o.item.title, "mark": "HR", "result": o.reference,
                         "institution": f"Organization/{o.institution.id}", "institutionName": o.institution.name,
                         "effective": instant(o.effective_us), "validUntil": instant(o.expires_us),
                         "summary": o.summary} for o in offers]}


@router.get("/api/recognition/hl7v2/rejected", summary="被拒收的 HL7 v2 报文（供运维复核）")
def rejected(request: Request, limit: int = Query(50, ge=1, le=500),
             caller: Caller = Depends(permit("recognition.hl7v2.review"))):
    t = recognition_hl7_rejected.c
    with request.app.state.node.store.read() as tx:
        rows = tx.conn.execute(select(t.id, t.ts_us, t.via, t.control_id, t.sender, t.code, t.error)
                               .order_by(t.ts_us.desc()).limit(limit)).all()
    return {"rejected": [{"id": r.id, "at": instant(r.ts_us), "via": r.via, "controlId": r.control_id,
                          "sender": r.sender, "code": r.code, "error": r.error} for r in rows]}


def startup(node) -> None:
    """Start the MLLP listener when a port is configured (``HUTONG_MLLP_PORT`` / ``--mllp-port``)."""
    port = int(getattr(node.settings, "mllp_port", 0) or 0)
    if port > 0:
        listener = MllpListener(node.store, node.settings.host, port)
        if listener.start():
            node.services["recognition.mllp"] = listener


def shutdown(node) -> None:
    listener = node.services.pop("recognition.mllp", None)
    if listener is not None:
        listener.stop()
