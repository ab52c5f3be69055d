"""HTTP API of report interpretation and of critical values."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.errors import bad_request
from hutong.fhir.body import decode_json, media_type
from hutong.reportread import critical, report
from hutong.reportread.interpret import Person
from hutong.reportread.vocab import AlertStatus

router = APIRouter(tags=["report reading 报告解读"])
_HL7_TYPES = ("x-application/hl7-v2+er7", "application/hl7-v2", "text/plain")
_BODY_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "description": "A FHIR Bundle (DiagnosticReport + Observations [+ Patient]), a DiagnosticReport with "
                       "contained Observations, or {\"report\": \"DiagnosticReport/{id}\", \"sex\"?, \"age\"?}.",
        "type": "object"}},
        **{m: {"schema": {"type": "string", "description": "An HL7 v2 ORU^R01 / OUL^R22 message (ER7; MSH-18 names "
                                                         "the character set: UTF-8 or GB18030)."}} for m in _HL7_TYPES[:2]}}}}


class InterpretAnswer(BaseModel):
    items: list[dict]
    summary: str
    patient: dict | None = None
    report: str | None = None


def _person(body: dict) -> Person | None:
    sex, age = body.get("sex"), body.get("age")
    if sex is not None and sex not in ("male", "female"):
        raise bad_request("sex 须为 male 或 female / sex must be male or female", "sex")
    if age is not None and (not isinstance(age, (int, float)) or isinstance(age, bool) or not 0 <= age <= 130):
        raise bad_request("age 须为 0~130 的数字 / age must be a number from 0 to 130", "age")
    return Person(sex, float(age)) if (sex or age is not None) else None


@router.post("/api/report/interpret", response_model=InterpretAnswer, response_model_exclude_none=True,
             summary="检验报告解读：每项结果的换算值、参考区间及来源、高低标记和通俗解释", openapi_extra=_BODY_DOC)
async def interpret(request: Request, caller: Caller = Depends(permit("reportread.interpret"))):
    node = request.app.state.node
    raw = await request.body()
    ctype = request.headers.get("content-type")
    if media_type(ctype) in _HL7_TYPES or raw.lstrip()[:4] == b"MSH|":
        # an HL7 v2 ORU^R01 / OUL^R22: mapped as the lab results the platform receives are
        return report.interpret(report.from_hl7v2(raw.lstrip()), critical.critical_table(node.settings))
    body = decode_json(raw, ctype)
    if not isinstance(body, dict):
        raise bad_request("请求体须为 JSON 对象 / the body must be a JSON object")
    table = critical.critical_table(node.settings)
    kind = body.get("resourceType")
    if kind == "Bundle":
        return report.interpret(report.from_bundle(body), table)
    if kind == "DiagnosticReport":
        return report.interpret(report.from_report(body), table)
    if kind is not None:
        raise bad_request(f"不支持的资源类型 {str(kind)[:40]} / send a Bundle or a DiagnosticReport", "resourceType")
    extra = set(body) - {"report", "sex", "age"}
    if extra:
        raise bad_request(f"未知字段 {sorted(extra)[0][:40]} / unknown field", sorted(extra)[0][:40])
    person = _person(body)
    ref = body.get("report")
    if isinstance(ref, dict) and ref.get("resourceType") in ("Bundle", "DiagnosticReport"):
        rep = report.from_bundle(ref) if ref["resourceType"] == "Bundle" else report.from_report(ref)
        return report.interpret(rep, table, person)
    if not isinstance(ref, str):
        raise bad_request("report 须为 \"DiagnosticReport/{id}\" / report must be a reference", "report")
    node.authorize(caller, "DiagnosticReport.r", None)
    store = node.store

    def run():
        with store.read() as tx:
            return report.from_store(tx, ref)

    from starlette.concurrency import run_in_threadpool

    rep = await run_in_threadpool(run)
    return report.interpret(rep, table, person)


class Ack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str | None = Field(None, max_length=80, pattern=r"^(PractitionerRole|Practitioner)/[A-Za-z0-9\-\.]{1,64}$",
                           description="确认人（PractitionerRole/… 或 Practitioner/…）")
    note: str | None = Field(None, max_length=500)


@router.get("/api/report/critical", summary="危急值提醒列表（医生工作台）")
def alerts(request: Request, doctor: str | None = Query(None, max_length=80),
           institution: str | None = Query(None, max_length=80), patient: str | None = Query(None, max_length=80),
           status: AlertStatus | None = None, limit: int = Query(100, ge=1, le=1000),
           caller: Caller = Depends(permit("reportread.critical.read"))):
    return critical.list_alerts(request.app.state.store, doctor=doctor, institution=institution, status=status,
                                patient=patient, limit=limit)


@router.post("/api/report/critical/{alert_id}/ack", summary="确认危急值")
def acknowledge(alert_id: str, body: Ack, request: Request,
                caller: Caller = Depends(permit("reportread.critical.ack"))):
    if len(alert_id) > 64:
        raise bad_request("alert id too long")
    return critical.acknowledge(request.app.state.store, alert_id, body.by, body.note)


@router.post("/api/report/critical/escalate", summary="立即升级所有超时未确认的危急值")
def escalate(request: Request, caller: Caller = Depends(permit("reportread.critical.admin"))):
    return {"escalated": critical.escalate_overdue(request.app.state.store)}


@router.get("/api/report/critical/stats", summary="危急值统计：数量、及时确认率、确认用时")
def stats(request: Request, institution: str | None = Query(None, max_length=80),
          caller: Caller = Depends(permit("reportread.critical.read"))):
    return critical.statistics(request.app.state.store, institution)


def startup(node) -> None:
    """Load the critical-value table (a bad institution table fails the start, not a request) and
    start the escalation loop when the node runs background workers."""
    critical.critical_table(node.settings)
    seconds = int(node.settings.reportread_escalation_seconds)
    if node.settings.workers and seconds > 0:
        loop = critical.EscalationLoop(node.store, seconds)
        loop.start()
        node.services["reportread.escalation"] = loop


def shutdown(node) -> None:
    loop = node.services.pop("reportread.escalation", None)
    if loop is not None:
        loop.stop()


