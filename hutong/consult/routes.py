"""HTTP API of the consult capability (``/api/consult/…``): thin wrappers over the services.

Who is calling: a doctor acts as the ``PractitionerRole`` named by the caller's client id
(``PractitionerRole/…``, as the security capability's login will set it), for the caller's
institution (``Organization/<institution>``); a resident as their own Patient (the portal's
``resident_patient``). The FHIR resources themselves (``Task?owner=…&status=…``,
``Communication?part-of=Task/…``) are ordinary and searchable under ``/fhir``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import permit
from hutong.consult import consultation as cs
from hutong.consult import (
    family,
    live,
    prescription,
    queues,
    referral,
    schedule,
    sla,
    stats,
    telemed,
    vocab,
    work,
)
from hutong.consult.service import env_of
from hutong.core.caller import Caller
from hutong.core.errors import FhirError

router = APIRouter(tags=["consult 在线咨询·远程医疗·双向转诊"])


# ---------------------------------------------------------------------------------------------- who
def doctor_of(caller: Caller) -> str:
    """The caller's PractitionerRole reference (403 for a caller who is not a doctor)."""
    cid = caller.client_id or ""
    if cid.startswith("PractitionerRole/") and len(cid) > len("PractitionerRole/"):
        return cid
    raise FhirError(403, "forbidden", "请以医生身份登录 (sign in as a doctor: PractitionerRole)")


def org_of(caller: Caller) -> str:
    if not caller.institution:
        raise FhirError(403, "forbidden", "需要所在机构 (act for an institution)")
    inst = caller.institution
    return inst if inst.startswith("Organization/") else f"Organization/{inst}"


def resident_of(request: Request, caller: Caller) -> str:
    from hutong.share.pages import resident_patient

    return f"Patient/{resident_patient(request, caller)}"


def actors_of(request: Request, caller: Caller) -> set[str]:
    """Every reference the caller may act as (doctor role, institution, own Patient)."""
    out = set()
    cid = caller.client_id or ""
    if cid.startswith(("PractitionerRole/", "Patient/")):
        out.add(cid)
    if caller.institution:
        out.add(org_of(caller))
    pid = request.headers.get("x-hutong-patient") or getattr(request.state, "patient_id", None)
    if pid:
        out.add(f"Patient/{pid}")
    return out


def may_see(request: Request, caller: Caller, row) -> None:
    """Only the two sides of a piece of work (and the coordinator) see it."""
    actors = actors_of(request, caller)
    sides = {row.patient, row.requester, row.owner, row.target_org, row.requester_org}
    if actors & sides:
        return
    if row.owner is None and row.target_org is None and any(a.startswith("PractitionerRole/") for a in actors):
        return  # province-wide free questions: any online doctor may look before taking one
    if not (caller.has_role("operator") or caller.has_role("statistician")):
        raise FhirError(403, "forbidden", "您不是该事项的当事方 (you are not a party to this item)")
    request.app.state.node.authorize(caller, "consult.coordinate", None)  # operators: the coordinator


def _row(request: Request, item: str):
    with request.app.state.store.read() as tx:
        return work.item_row(tx, item)


def _env(request: Request):
    return env_of(request.app.state.node)


# ---------------------------------------------------------------------------------------------- models
class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contentType: str = Field(..., max_length=100)
    data: str = Field(..., max_length=8 * 1024 * 1024, description="base64")


class Question(BaseModel):
    """A resident's question (for themselves, or ``patient`` a dependant they act for)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, max_length=cs.MAX_TEXT)
    kind: Literal["free", "followup"] = "free"
    age: float | None = Field(None, ge=0, le=130)
    sex: vocab.Sex | None = None
    department: str | None = Field(None, max_length=16, pattern=r"^\d{2}(\.\d{2})?$")
    hospital: str | None = Field(None, max_length=80, pattern=r"^Organization/[A-Za-z0-9\-\.]{1,64}$")
    doctor: str | None = Field(None, max_length=90, pattern=r"^PractitionerRole/[A-Za-z0-9\-\.]{1,64}$")
    encounter: str | None = Field(None, max_length=80, pattern=r"^Encounter/[A-Za-z0-9\-\.]{1,64}$")
    patient: str | None = Field(None, max_length=80, pattern=r"^Patient/[A-Za-z0-9\-\.]{1,64}$")
    attachments: list[Attachment] = Field(default_factory=list, max_length=cs.MAX_ATTACHMENTS)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field("", max_length=cs.MAX_TEXT)
    attachments: list[Attachment] = Field(default_factory=list, max_length=cs.MAX_ATTACHMENTS)


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doctor: str = Field(..., pattern=r"^PractitionerRole/[A-Za-z0-9\-\.]{1,64}$")


class Close(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advice: str = Field(..., min_length=1, max_length=cs.MAX_TEXT)
    refer_to: str | None = Field(None, pattern=r"^Organization/[A-Za-z0-9\-\.]{1,64}$")
    appointment: str | None = Field(None, max_length=500)


class Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stars: int = Field(..., ge=1, le=5)
    comment: str = Field("", max_length=500)
    complaint: str = Field("", max_length=2000)


class Drug(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=200)
    dosage: str = Field(..., min_length=1, max_length=500)
    quantity: float | None = Field(None, gt=0, le=10000)
    unit: str | None = Field(None, max_length=20)


class Prescription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drugs: list[Drug] = Field(..., min_length=1, max_length=prescription.MAX_DRUGS)


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: vocab.PrescriptionDecision
    note: str = Field("", max_length=1000)


_REF = r"^[A-Z][A-Za-z]{1,40}/[A-Za-z0-9\-\.]{1,64}$"


class Referral(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: str = Field(..., pattern=r"^Patient/[A-Za-z0-9\-\.]{1,64}$")
    receiver: str = Field(..., pattern=r"^Organization/[A-Za-z0-9\-\.]{1,64}$")
    reason: str = Field(..., min_length=1, max_length=1000)
    direction: vocab.Direction = "up"
    department: str | None = Field(None, max_length=16, pattern=r"^\d{2}(\.\d{2})?$")
    records: list[str] = Field(default_factory=list, max_length=50)
    plan: str | None = Field(None, max_length=2000)


class ReferralAction(BaseModel):
    """What an action needs: ``reason`` (decline: a code; cancel: text), ``note``, ``slot`` or
    ``start`` (book), ``summary`` (complete), ``plan`` (return), ``receiver`` (redirect)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500)
    note: str = Field("", max_length=1000)
    slot: str | None = Field(None, pattern=r"^Slot/[A-Za-z0-9\-\.]{1,64}$")
    start: str | None = Field(None, max_length=40)
    summary: str | None = Field(None, max_length=2000)
    plan: str | None = Field(None, max_length=2000)
    receiver: str | None = Field(None, pattern=r"^Organization/[A-Za-z0-9\-\.]{1,64}$")
    to: str | None = Field(None, pattern=r"^Organization/[A-Za-z0-9\-\.]{1,64}$")


class TeleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: str = Field(..., max_length=200, description="Patient/id or an identifier system|value (patient index)")
    target: str = Field(..., pattern=r"^Organization/[A-Za-z0-9\-\.]{1,64}$")
    kind: vocab.TeleKind
    question: str = Field(..., min_length=1, max_length=4000)
    records: list[str] = Field(default_factory=list, max_length=50)
    department: str | None = Field(None, max_length=16, pattern=r"^\d{2}(\.\d{2})?$")


class TeleSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consultant: str = Field(..., pattern=r"^PractitionerRole/[A-Za-z0-9\-\.]{1,64}$")
    slot: str | None = Field(None, pattern=r"^Slot/[A-Za-z0-9\-\.]{1,64}$")
    start: str | None = Field(None, max_length=40)
    room_link: str = Field(..., max_length=500)


class TeleReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conclusion: str = Field(..., min_length=1, max_length=4000)
    findings: str = Field("", max_length=8000)


class Slots(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str = Field(..., pattern=r"^(PractitionerRole|Organization)/[A-Za-z0-9\-\.]{1,64}$")
    start: str = Field(..., max_length=20, description="YYYY-MM-DDTHH:MM, Asia/Shanghai")
    count: int = Field(..., ge=1, le=200)
    minutes: int = Field(30, ge=5, le=480)


def _atts(items: list[Attachment]):
    return [(a.contentType, a.data) for a in items]


# ---------------------------------------------------------------------------------------------- consultations
@router.post("/api/consult/questions", status_code=201, summary="居民提问（义诊咨询或互联网复诊）")
def ask(body: Question, request: Request, caller: Caller = Depends(permit("consult.ask"))):
    me = resident_of(request, caller)
    return cs.ask_question(_env(request), patient=body.patient or me, asker=me, text=body.text, kind=body.kind,
                           age=body.age, sex=body.sex, department=body.department, hospital=body.hospital,
                           doctor=body.doctor, encounter=body.encounter, attachments=_atts(body.attachments))


@router.get("/api/consult/mine", summary="我的咨询与转诊")
def mine(request: Request, caller: Caller = Depends(permit("consult.ask"))):
    return queues.resident_items(request.app.state.store, resident_of(request, caller))


@router.get("/api/consult/items/{item}", summary="一项咨询/转诊/远程医疗（含时间线）")
def item_view(item: str, request: Request, caller: Caller = Depends(permit("consult.read"))):
    row = _row(request, item)
    may_see(request, caller, row)
    store = request.app.state.store
    if row.kind in ("free", "followup"):
        out = cs.consultation_view(store, item)
        out["prescriptions"] = prescription.prescriptions_of(store, item)
        return out
    if row.kind == "referral":
        return referral.referral_view(store, item)
    return work.row_dict(row) | {"steps": telemed.telemed_steps(store, item)}


@router.post("/api/consult/items/{item}/accept", summary="医生接诊")
def accept(item: str, request: Request, caller: Caller = Depends(permit("consult.answer"))):
    return cs.accept_consultation(_env(request), item, doctor_of(caller))


@router.post("/api/consult/items/{item}/assign", summary="分配给值班医生")
def assign(item: str, body: Assign, request: Request, caller: Caller = Depends(permit("consult.assign"))):
    by = caller.client_id if caller.client_id.startswith("PractitionerRole/") else org_of(caller)
    return cs.assign_consultation(_env(request), item, body.doctor, by=by)


def _sender(request: Request, caller: Caller, row) -> str:
    actors = actors_of(request, caller)
    for candidate in (row.owner, row.requester, row.patient):
        if candidate in actors:
            return candidate
    raise FhirError(403, "forbidden", "只有咨询双方可以发消息 (only the resident and the doctor may write)")


@router.post("/api/consult/items/{item}/messages", status_code=201, summary="发送消息（实时送达对方）")
def post_message(item: str, body: Message, request: Request, caller: Caller = Depends(permit("consult.message"))):
    row = _row(request, item)
    return cs.send_message(_env(request), item, _sender(request, caller, row), body.text,
                           attachments=_atts(body.attachments))


@router.get("/api/consult/items/{item}/messages", summary="消息列表（轮询：after=上次最后一条的序号）")
def get_messages(item: str, request: Request, after: int = Query(0, ge=0, le=2**62),
                 caller: Caller = Depends(permit("consult.message"))):
    row = _row(request, item)
    may_see(request, caller, row)
    return cs.messages(request.app.state.store, item, after)


@router.get("/api/consult/items/{item}/events", summary="实时消息（server-sent events；Last-Event-ID 续传）")
def events(item: str, request: Request, after: int = Query(0, ge=0, le=2**62),
           last_event_id: str | None = Header(None, max_length=20),
           caller: Caller = Depends(permit("consult.message"))):
    row = _row(request, item)
    may_see(request, caller, row)
    start = after
    if last_event_id and last_event_id.isdigit():
        start = max(start, int(last_event_id))
    return live.stream(request, item, start)


@router.post("/api/consult/items/{item}/close", summary="医生结束咨询（建议、转诊或预约建议）")
def close(item: str, body: Close, request: Request, caller: Caller = Depends(permit("consult.answer"))):
    return cs.close_consultation(_env(request), item, doctor_of(caller), body.advice, refer_to=body.refer_to,
                                 appointment=body.appointment)


@router.post("/api/consult/items/{item}/cancel", summary="居民取消未接诊的咨询")
def cancel(item: str, body: Cancel, request: Request, caller: Caller = Depends(permit("consult.ask"))):
    return cs.cancel_consultation(_env(request), item, resident_of(request, caller), body.reason)


@router.post("/api/consult/items/{item}/rating", summary="评价（可附投诉）")
def rate(item: str, body: Rating, request: Request, caller: Caller = Depends(permit("consult.ask"))):
    return cs.rate_consultation(_env(request), item, resident_of(request, caller), body.stars, body.comment,
                                body.complaint)


@router.post("/api/consult/items/{item}/prescriptions", status_code=201, summary="开具电子处方（待药师审核）")
def prescribe(item: str, body: Prescription, request: Request, caller: Caller = Depends(permit("consult.prescribe"))):
    return prescription.issue_prescription(_env(request), item, doctor_of(caller),
                                           [d.model_dump(exclude_none=True) for d in body.drugs])


@router.get("/api/consult/prescriptions", summary="待审核的电子处方（本机构）")
def pending_prescriptions(request: Request, caller: Caller = Depends(permit("consult.prescription.review"))):
    return prescription.pending_reviews(request.app.state.store, org_of(caller))


@router.post("/api/consult/prescriptions/{rx_id}/review", summary="药师审方（通过后处方生效）")
def review(rx_id: str, body: Review, request: Request, caller: Caller = Depends(permit("consult.prescription.review"))):
    return prescription.review_prescription(_env(request), rx_id, doctor_of(caller), body.decision, body.note)


@router.get("/api/consult/desk", summary="医生工作台：待接诊、进行中、已结束")
def desk(request: Request, caller: Caller = Depends(permit("consult.answer"))):
    out = queues.doctor_desk(request.app.state.store, doctor_of(caller))
    doc = out.pop("doctor")
    return {"doctor": {"role": doc.role, "name": doc.name, "org": doc.org, "departments": list(doc.departments)}, **out}


@router.get("/api/consult/queue", summary="科室/医院待接诊队列")
def queue(request: Request, hospital: str | None = Query(None, max_length=80),
          department: str | None = Query(None, max_length=16), caller: Caller = Depends(permit("consult.answer"))):
    return queues.department_queue(request.app.state.store, hospital, department)


@router.get("/api/consult/notices", summary="我的通知（after=上次最后一条的序号）")
def my_notices(request: Request, after: int = Query(0, ge=0, le=2**62), caller: Caller = Depends(permit("consult.read"))):
    store = request.app.state.store
    out = []
    for actor in sorted(actors_of(request, caller)):
        out += work.notices(store, actor, after)
    return sorted(out, key=lambda n: n["id"])


# ---------------------------------------------------------------------------------------------- referrals
@router.post("/api/consult/referrals", status_code=201, summary="发起转诊（上转/下转）")
def refer(body: Referral, request: Request, caller: Caller = Depends(permit("consult.refer"))):
    return referral.refer_patient(_env(request), patient=body.patient, sender=doctor_of(caller),
                                  sender_org=org_of(caller), receiver_org=body.receiver, reason=body.reason,
                                  direction=body.direction, department=body.department, records=body.records,
                                  plan=body.plan)


_ACTIONS = ("accept", "decline", "book", "arrive", "complete", "return", "redirect", "cancel")


@router.post("/api/consult/referrals/{item}/{action}", summary="转诊处理：accept|decline|book|arrive|complete|return|redirect|cancel")
def referral_action(item: str, action: str, body: ReferralAction, request: Request,
                    caller: Caller = Depends(permit("consult.refer"))):
    if action not in _ACTIONS:
        raise FhirError(404, "not-found", "unknown referral action; one of " + ", ".join(_ACTIONS))
    env = _env(request)
    by_org = org_of(caller)
    by = caller.client_id if caller.client_id.startswith("PractitionerRole/") else by_org
    kw = {"by": by, "by_org": by_org}
    if action == "accept":
        return referral.accept_referral(env, item, note=body.note, **kw)
    if action == "decline":
        return referral.decline_referral(env, item, reason=body.reason or "", note=body.note, **kw)
    if action == "book":
        return referral.book_referral(env, item, slot=body.slot, start=body.start, note=body.note, **kw)
    if action == "arrive":
        return referral.mark_arrived(env, item, **kw)
    if action == "complete":
        return referral.complete_referral(env, item, summary=body.summary or "", **kw)
    if action == "return":
        return referral.return_patient(env, item, plan=body.plan or "", to_org=body.to, **kw)
    if action == "redirect":
        if not body.receiver:
            raise FhirError(400, "required", "redirect needs receiver", "receiver")
        return referral.redirect_referral(env, item, receiver_org=body.receiver, note=body.note, **kw)
    return referral.cancel_referral(env, item, reason=body.reason or "", **kw)


@router.get("/api/consult/referrals/inbox", summary="本机构收到的转诊与远程医疗申请")
def referral_inbox(request: Request, closed: bool = False, caller: Caller = Depends(permit("consult.refer"))):
    return queues.inbox(request.app.state.store, org_of(caller), include_closed=closed)


@router.get("/api/consult/referrals/outbox", summary="本机构发出的转诊与远程医疗申请")
def referral_outbox(request: Request, caller: Caller = Depends(permit("consult.refer"))):
    return queues.outbox(request.app.state.store, org_of(caller))


# ---------------------------------------------------------------------------------------------- telemedicine
@router.post("/api/consult/telemedicine", status_code=201, summary="申请远程会诊/影像/心电/门诊（向上级机构）")
def tele_request(body: TeleRequest, request: Request, caller: Caller = Depends(permit("consult.telemed"))):
    return telemed.request_teleconsult(_env(request), requester=doctor_of(caller), patient=body.patient,
                                       target_org=body.target, tele_kind=body.kind, question=body.question,
                                       records=body.records, department=body.department)


@router.post("/api/consult/telemedicine/{item}/schedule", summary="受邀机构排期（号源、会诊医生、视频会议链接）")
def tele_schedule(item: str, body: TeleSchedule, request: Request, caller: Caller = Depends(permit("consult.telemed"))):
    return telemed.schedule_teleconsult(_env(request), item, by_org=org_of(caller), consultant=body.consultant,
                                        slot=body.slot, start=body.start, room_link=body.room_link)


@router.post("/api/consult/telemedicine/{item}/decline", summary="受邀机构拒绝申请")
def tele_decline(item: str, body: Cancel, request: Request, caller: Caller = Depends(permit("consult.telemed"))):
    return telemed.decline_teleconsult(_env(request), item, by_org=org_of(caller), reason=body.reason)


@router.post("/api/consult/telemedicine/{item}/start", summary="记录会诊开始")
def tele_start(item: str, request: Request, caller: Caller = Depends(permit("consult.telemed"))):
    return telemed.start_session(_env(request), item, by=doctor_of(caller))


@router.post("/api/consult/telemedicine/{item}/report", summary="会诊医生出具报告")
def tele_report(item: str, body: TeleReport, request: Request, caller: Caller = Depends(permit("consult.telemed"))):
    return telemed.report_teleconsult(_env(request), item, by=doctor_of(caller), conclusion=body.conclusion,
                                      findings=body.findings)


@router.get("/api/consult/items/{item}/shared", summary="为本次申请共享的记录清单（仅会诊双方）")
def shared_list(item: str, request: Request, caller: Caller = Depends(permit("consult.read"))):
    return telemed.shared_records(request.app.state.store, item, _viewer(request, caller))


@router.get("/api/consult/items/{item}/shared/{res_type}/{res_id}", summary="读取一条共享记录（FHIR JSON）")
def shared_one(item: str, res_type: str, res_id: str, request: Request,
               caller: Caller = Depends(permit("consult.read"))):
    from hutong.api.responses import fhir_response

    resource = telemed.shared_record(_env(request), item, _viewer(request, caller), f"{res_type}/{res_id}")
    return fhir_response(resource)


def _viewer(request: Request, caller: Caller) -> str:
    cid = caller.client_id or ""
    if cid.startswith("PractitionerRole/"):
        return cid
    return org_of(caller)


# ---------------------------------------------------------------------------------------------- schedules, oversight
@router.post("/api/consult/slots", status_code=201, summary="发布号源（Schedule/Slot）")
def publish(body: Slots, request: Request, caller: Caller = Depends(permit("consult.schedule"))):
    return schedule.publish_slots(request.app.state.store, body.actor, body.start, body.count, body.minutes)


@router.get("/api/consult/slots", summary="可预约号源")
def slots(request: Request, actor: str = Query(..., max_length=90, pattern=r"^(PractitionerRole|Organization)/[A-Za-z0-9\-\.]{1,64}$"),
          caller: Caller = Depends(permit("consult.read"))):
    return schedule.free_slots(request.app.state.store, actor)


@router.get("/api/consult/coordinator", summary="全省协调：未完成事项按时长、超时与待转出机构处理")
def coordinator(request: Request, caller: Caller = Depends(permit("consult.coordinate"))):
    return queues.coordinator_view(request.app.state.store)


@router.get("/api/consult/statistics", summary="统计：每医生/科室/医院/日的咨询量、响应时间、超时、评价；转诊；远程医疗")
def statistics(request: Request, hospital: str | None = Query(None, max_length=80),
               caller: Caller = Depends(permit("consult.stats"))):
    return stats.consult_statistics(request.app.state.store, org=hospital)


@router.post("/api/consult/escalate", summary="立即检查超时并升级")
def escalate(request: Request, caller: Caller = Depends(permit("consult.admin"))):
    return {"escalated": sla.escalate_overdue(_env(request))}


# ---------------------------------------------------------------------------------------------- family doctors
class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient: str = Field(..., pattern=r"^Patient/[A-Za-z0-9\-\.]{1,64}$")
    team: list[str] = Field(..., min_length=1, max_length=10)
    programmes: list[Literal["hypertension", "diabetes", "elderly", "copd"]] = Field(default_factory=list,
                                                                                      max_length=4)


@router.post("/api/consult/contracts", status_code=201, summary="家庭医生签约（一年）")
def sign(body: Contract, request: Request, caller: Caller = Depends(permit("consult.contract"))):
    for ref in body.team:
        if not ref.startswith("PractitionerRole/"):
            raise FhirError(400, "invalid", "team members are PractitionerRole references", "team")
    return family.sign_contract(_env(request), patient=body.patient, team=body.team, programmes=body.programmes,
                                by_org=org_of(caller))


@router.get("/api/consult/contracts", summary="本机构签约居民与下次随访")
def contracts(request: Request, caller: Caller = Depends(permit("consult.contract"))):
    return family.contracted_residents(request.app.state.store, org_of(caller))
