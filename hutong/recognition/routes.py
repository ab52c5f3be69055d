"""HTTP for recognition (thin): CDS Hooks discovery, services and feedback; the results query."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.fhir.body import decode_json
from hutong.recognition import cdshooks

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


def startup(node) -> None:
    """Nothing to start yet."""


def shutdown(node) -> None:
    """Nothing to stop yet."""
