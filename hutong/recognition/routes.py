"""HTTP for recognition (thin): CDS Hooks discovery, services and feedback; the results query."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.fhir.body import decode_json
from hutong.recognition import cdshooks, hl7v2
from hutong.recognition.mllp import MllpListener

router = APIRouter(tags=["recognition 检查检验结果互认"])
_SERVICE_ID = Path(..., max_length=64, pattern=r"^[A-Za-z0-9\-\.]{1,64}$")
_JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


@router.get("/cds-services", summary="CDS Hooks 服务发现 (discovery)")
def discovery(caller: Caller = Depends(permit(PUBLIC))):
    return cdshooks.discovery()


@router.post("/cds-services/{service_id}", summary="CDS Hooks：开立检查检验时的互认提示卡片 (order-select / order-sign)",
             openapi_extra=_JSON_BODY)
async def call_service(request: Request, service_id: str = _SERVICE_ID,
                       caller: Caller = Depends(permit("recognition.hook"))):
    body = decode_json(await request.body(), request.headers.get("content-type"))
    store = request.app.state.node.store
    return JSONResponse(await run_in_threadpool(cdshooks.answer, store, service_id, body, caller))


@router.post("/cds-services/{service_id}/feedback", summary="CDS Hooks 反馈：采纳或不予互认（含理由）",
             openapi_extra=_JSON_BODY)
async def service_feedback(request: Request, service_id: str = _SERVICE_ID,
                           caller: Caller = Depends(permit("recognition.feedback"))):
    body = decode_json(await request.body(), request.headers.get("content-type"))
    store = request.app.state.node.store
    await run_in_threadpool(cdshooks.feedback, store, service_id, body, caller)
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
