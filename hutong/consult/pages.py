"""Pages: the resident's (ask, follow, rate: mobile first, 360 px), the doctor's desk and
conversation, the referral inbox/outbox per institution, the province coordinator's view.

Forms post and redirect (they work without JavaScript); ``consult.js`` adds live messages
(server-sent events, falling back to polling) on conversation pages.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from hutong.api.caller import permit
from hutong.consult import consultation as cs
from hutong.consult import prescription, queues, referral, stats, telemed, vocab, work
from hutong.consult.routes import _env, _row, actors_of, doctor_of, may_see, org_of, resident_of
from hutong.core.caller import Caller
from hutong.core.clock import local_time
from hutong.core.errors import FhirError
from hutong.triage.departments import departments
from hutong.web import add_assets
from hutong.web.i18n import N_
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, redirect, render

router = APIRouter(tags=["consult 页面"])
_HERE = Path(__file__).resolve().parent
add_templates("consult", _HERE / "templates")
add_assets("consult", _HERE / "static")

MAX_UPLOAD = cs.MAX_ATTACHMENT_BYTES


def _dept_options() -> list[tuple[str, str]]:
    wanted = ("03.01", "03.02", "03.03", "03.04", "03.07", "04", "05", "07", "10", "11", "12", "13", "16", "50", "02")
    d = departments()
    return [(c, d[c].common) for c in wanted if c in d]


def _minutes(seconds: int) -> str:
    if seconds < 3600:
        return _("%(n)s 分钟", n=max(0, seconds // 60))
    if seconds < 86400:
        return _("%(n)s 小时", n=seconds // 3600)
    return _("%(n)s 天", n=seconds // 86400)


def _decorate(rows: list[dict]) -> list[dict]:
    for r in rows:
        r["waited"] = _minutes(r["waited_s"])
        r["when"] = local_time(_us(r["created"]))
    return rows


def _us(instant_text: str) -> int:
    from datetime import datetime

    from hutong.core.clock import to_us

    return to_us(datetime.fromisoformat(instant_text))


async def _uploads(files: list[UploadFile] | None) -> list[tuple[str, bytes]]:
    out = []
    for f in files or ():
        if not f.filename:
            continue
        data = await f.read(MAX_UPLOAD + 1)
        if data:
            out.append((f.content_type or "", data))
    return out


def _messages_view(store, item: str, me: set[str]) -> list[dict]:
    msgs = cs.messages(store, item)
    for m in msgs:
        m["mine"] = m["sender"] in me
        m["when"] = local_time(m["ts_us"], "%H:%M")
    return msgs


# ---------------------------------------------------------------------------------------------- resident
@router.get("/portal/consult", response_class=HTMLResponse, summary="居民：我的在线咨询")
def resident_home(request: Request, caller: Caller = Depends(permit("consult.ask"))):
    me = resident_of(request, caller)
    items = _decorate(queues.resident_items(request.app.state.store, me))
    return render(request, "consult/resident_home.html", {"items": items}, audience="resident", title=_("在线咨询"))


@router.get("/portal/consult/ask", response_class=HTMLResponse, summary="居民：提问")
def ask_page(request: Request, caller: Caller = Depends(permit("consult.ask"))):
    resident_of(request, caller)
    return render(request, "consult/ask.html", {"departments": _dept_options(), "errors": [], "form": {}},
                  audience="resident", title=_("问医生"))


@router.post("/portal/consult/ask", summary="居民：提交问题")
async def ask_post(request: Request, caller: Caller = Depends(permit("consult.ask")),
                   text: str = Form("", max_length=cs.MAX_TEXT), kind: str = Form("free", max_length=10),
                   age: str = Form("", max_length=5), sex: str = Form("", max_length=10),
                   department: str = Form("", max_length=16), hospital: str = Form("", max_length=80),
                   photos: list[UploadFile] | None = File(None)):
    import asyncio

    me = resident_of(request, caller)
    form = {"text": text, "kind": kind, "age": age, "sex": sex, "department": department}
    try:
        age_value = float(age) if age.strip() else None
        if kind not in ("free", "followup"):
            raise FhirError(400, "invalid", _("请选择咨询类型"))
        if sex and sex not in ("male", "female"):
            raise FhirError(400, "invalid", _("请选择性别"))
        files = await _uploads(photos)
        asked = await asyncio.to_thread(
            cs.ask_question, _env(request), patient=me, text=text, kind=kind, age=age_value, sex=sex or None,
            department=department or None, hospital=hospital or None, attachments=files)
    except ValueError:
        return _ask_again(request, form, [_("年龄请填写数字")])
    except FhirError as err:
        if err.status >= 500:
            raise
        return _ask_again(request, form, [err.diagnostics])
    if asked["urgent"]:
        return redirect(f"/portal/consult/{asked['id']}", N_("紧急：请立即拨打 120 或前往最近的急诊科！"), "error",
                        request=request)
    return redirect(f"/portal/consult/{asked['id']}", N_("已提交，%(expect)s"), request=request, expect=asked["advice"])


def _ask_again(request, form, errors):
    return render(request, "consult/ask.html", {"departments": _dept_options(), "errors": errors, "form": form},
                  audience="resident", title=_("问医生"), status=422)


@router.get("/portal/consult/{item}", response_class=HTMLResponse, summary="居民：一次咨询（实时消息）")
def resident_item(item: str, request: Request, caller: Caller = Depends(permit("consult.ask"))):
    me = resident_of(request, caller)
    row = _row(request, item)
    if me not in (row.patient, row.requester):
        raise FhirError(404, "not-found", _("咨询不存在"))
    store = request.app.state.store
    view = cs.consultation_view(store, item)
    return render(request, "consult/resident_item.html", {
        "v": view, "messages": _messages_view(store, item, {me}), "me": me,
        "rx": prescription.prescriptions_of(store, item), "expect": _minutes(max(0, view["waited_s"])),
        "due_local": local_time(_us(view["due"])) if view.get("due") else None,
    }, audience="resident", title=_("咨询详情"))


@router.post("/portal/consult/{item}/messages", summary="居民：发消息")
async def resident_message(item: str, request: Request, caller: Caller = Depends(permit("consult.ask")),
                           text: str = Form("", max_length=cs.MAX_TEXT), photos: list[UploadFile] | None = File(None)):
    import asyncio

    me = resident_of(request, caller)
    files = await _uploads(photos)
    await asyncio.to_thread(cs.send_message, _env(request), item, me, text, attachments=files)
    return redirect(f"/portal/consult/{item}#composer")


@router.post("/portal/consult/{item}/rate", summary="居民：评价")
def resident_rate(item: str, request: Request, caller: Caller = Depends(permit("consult.ask")),
                  stars: int = Form(..., ge=1, le=5), comment: str = Form("", max_length=500),
                  complaint: str = Form("", max_length=2000)):
    cs.rate_consultation(_env(request), item, resident_of(request, caller), stars, comment, complaint)
    return redirect(f"/portal/consult/{item}", N_("感谢您的评价"), request=request)


@router.post("/portal/consult/{item}/cancel", summary="居民：取消咨询")
def resident_cancel(item: str, request: Request, caller: Caller = Depends(permit("consult.ask"))):
    cs.cancel_consultation(_env(request), item, resident_of(request, caller), "居民取消")
    return redirect("/portal/consult", N_("咨询已取消"), request=request)


# ---------------------------------------------------------------------------------------------- doctor
@router.get("/workstation/consult", response_class=HTMLResponse, summary="医生：在线咨询工作台")
def desk_page(request: Request, caller: Caller = Depends(permit("consult.answer"))):
    desk = queues.doctor_desk(request.app.state.store, doctor_of(caller))
    rows = {}
    for key in ("waiting", "in_progress", "closed"):
        rows[key] = [{"title": Markup('<a href="/workstation/consult/{}">{}</a>').format(i["id"], i["title"]),
                      "kind": _(i["kind_label"]), "when": i["when"], "waited": i["waited"],
                      "flag": _("紧急") if i["urgent"] else (_("已超时") if i["breached"] else ""),
                      "_class": "row-high" if i["urgent"] else ""} for i in _decorate(desk[key])]
    return render(request, "consult/desk.html", {"doctor": desk["doctor"], "rows": rows}, audience="doctor",
                  title=_("在线咨询工作台"))


@router.get("/workstation/consult/{item}", response_class=HTMLResponse, summary="医生：一次咨询")
def doctor_item(item: str, request: Request, caller: Caller = Depends(permit("consult.answer"))):
    me = doctor_of(caller)
    row = _row(request, item)
    may_see(request, caller, row)
    store = request.app.state.store
    view = cs.consultation_view(store, item)
    patient = store.get("Patient", row.patient.split("/", 1)[1]) or {}
    name = ((patient.get("name") or [{}])[0].get("text")) or ""
    return render(request, "consult/doctor_item.html", {
        "v": view, "messages": _messages_view(store, item, {me}), "me": me, "mine": row.owner == me,
        "rx": prescription.prescriptions_of(store, item), "patient_name": name,
        "patient_gender": patient.get("gender", ""), "patient_birth": patient.get("birthDate", ""),
    }, audience="doctor", title=_("在线咨询"))


@router.post("/workstation/consult/{item}/accept", summary="医生：接诊")
def doctor_accept(item: str, request: Request, caller: Caller = Depends(permit("consult.answer"))):
    cs.accept_consultation(_env(request), item, doctor_of(caller))
    return redirect(f"/workstation/consult/{item}", N_("已接诊"), request=request)


@router.post("/workstation/consult/{item}/messages", summary="医生：回复")
def doctor_message(item: str, request: Request, caller: Caller = Depends(permit("consult.answer")),
                   text: str = Form("", max_length=cs.MAX_TEXT)):
    cs.send_message(_env(request), item, doctor_of(caller), text)
    return redirect(f"/workstation/consult/{item}#composer")


@router.post("/workstation/consult/{item}/close", summary="医生：结束咨询")
def doctor_close(item: str, request: Request, caller: Caller = Depends(permit("consult.answer")),
                 advice: str = Form(..., max_length=cs.MAX_TEXT), appointment: str = Form("", max_length=500),
                 refer_to: str = Form("", max_length=80)):
    cs.close_consultation(_env(request), item, doctor_of(caller), advice, appointment=appointment or None,
                          refer_to=refer_to or None)
    return redirect("/workstation/consult", N_("咨询已结束"), request=request)


@router.post("/workstation/consult/{item}/prescribe", summary="医生：开具电子处方")
def doctor_prescribe(item: str, request: Request, caller: Caller = Depends(permit("consult.prescribe")),
                     name: str = Form(..., max_length=200), dosage: str = Form(..., max_length=500),
                     quantity: str = Form("", max_length=10), unit: str = Form("", max_length=20)):
    drug = {"name": name, "dosage": dosage, "unit": unit or None}
    if quantity.strip():
        drug["quantity"] = quantity.strip()
    prescription.issue_prescription(_env(request), item, doctor_of(caller), [drug])
    return redirect(f"/workstation/consult/{item}", N_("处方已提交药师审核"), request=request)


@router.get("/workstation/referrals", response_class=HTMLResponse, summary="机构：转诊与远程医疗收件箱/发件箱")
def referrals_page(request: Request, caller: Caller = Depends(permit("consult.refer"))):
    org = org_of(caller)
    store = request.app.state.store
    def rows(items):
        return [{"title": Markup('<a href="/workstation/referrals/{}">{}</a>').format(i["id"], i["title"]),
                 "kind": _(i["kind_label"]), "status": _(i["status_label"]), "when": i["when"], "waited": i["waited"],
                 "_class": "row-high" if i["overdue"] or i["status"] in ("declined", "no-slot") else ""}
                for i in _decorate(items)]

    return render(request, "consult/referrals.html", {
        "inbox": queues.inbox(store, org), "outbox": queues.outbox(store, org), "org": org, "rows": rows,
    }, audience="doctor", title=_("转诊与远程医疗"))


@router.get("/workstation/referrals/{item}", response_class=HTMLResponse, summary="机构：一项转诊")
def referral_page(item: str, request: Request, caller: Caller = Depends(permit("consult.refer"))):
    row = _row(request, item)
    may_see(request, caller, row)
    store = request.app.state.store
    org = org_of(caller)
    if row.kind == "referral":
        v = referral.referral_view(store, item)
    else:
        v = work.row_dict(row) | {"steps": telemed.telemed_steps(store, item), "org_names": {}, "outputs": [],
                                  "shared": telemed.shared_records(store, item, _viewer(caller, org)),
                                  "reason_text": row.title, "status_reason": None}
    for s in v["steps"]:
        s["when"] = local_time(s["ts_us"])
    return render(request, "consult/referral.html", {
        "v": v, "receiver": org == row.target_org, "sender": org == row.requester_org,
        "reasons": [(k, zh) for k, (zh, _en) in vocab.DECLINE_REASONS.items()],
    }, audience="doctor", title=v["kind_label"])


def _viewer(caller: Caller, org: str) -> str:
    return caller.client_id if caller.client_id.startswith("PractitionerRole/") else org


@router.post("/workstation/referrals/{item}/{action}", summary="机构：处理转诊")
def referral_post(item: str, action: str, request: Request, caller: Caller = Depends(permit("consult.refer")),
                  reason: str = Form("", max_length=500), note: str = Form("", max_length=1000),
                  start: str = Form("", max_length=40), summary: str = Form("", max_length=2000),
                  plan: str = Form("", max_length=2000), receiver: str = Form("", max_length=80)):
    env = _env(request)
    by_org = org_of(caller)
    kw = {"by": _viewer(caller, by_org), "by_org": by_org}
    if action == "accept":
        referral.accept_referral(env, item, note=note, **kw)
    elif action == "decline":
        referral.decline_referral(env, item, reason=reason, note=note, **kw)
    elif action == "book":
        referral.book_referral(env, item, start=start or None, note=note, **kw)
    elif action == "arrive":
        referral.mark_arrived(env, item, **kw)
    elif action == "complete":
        referral.complete_referral(env, item, summary=summary, **kw)
    elif action == "return":
        referral.return_patient(env, item, plan=plan, **kw)
    elif action == "redirect":
        referral.redirect_referral(env, item, receiver_org=receiver, note=note, **kw)
    elif action == "cancel":
        referral.cancel_referral(env, item, reason=reason or note, **kw)
    else:
        raise FhirError(404, "not-found", "unknown action")
    return redirect(f"/workstation/referrals/{item}", N_("已更新"), request=request)


# ---------------------------------------------------------------------------------------------- coordinator
@router.get("/console/consult", response_class=HTMLResponse, summary="全省协调：未完成事项与统计")
def coordinator_page(request: Request, caller: Caller = Depends(permit("consult.coordinate"))):
    store = request.app.state.store
    view = queues.coordinator_view(store)
    _decorate(view["overdue"])
    _decorate(view["awaiting_sender"])
    figures = stats.consult_statistics(store)
    rows = [{"kind": vocab.KINDS[k][0], **{b: n for b, n in buckets.items()}} for k, buckets in view["by_age"].items()]
    return render(request, "consult/coordinator.html", {"v": view, "age_rows": rows, "s": figures,
                                                        "buckets": [b for b, _s in queues.AGE_BUCKETS]},
                  audience="console", title=_("咨询与转诊监管"))


__all__ = ["router", "actors_of"]
