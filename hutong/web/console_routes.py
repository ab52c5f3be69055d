"""The operations console's pages: overview and platform health, institutions and their data flows, the
patient index's review queue (link, reject, undo, with the AuditEvent shown), health-card administration."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from hutong.api.caller import permit
from hutong.card import service as card_service
from hutong.card.codec import is_card_id
from hutong.core.caller import Caller
from hutong.core.clock import local_time
from hutong.core.errors import FhirError
from hutong.mpi import service as mpi
from hutong.web import console
from hutong.web.charts import bar_chart, chart, jilin_map, line_chart
from hutong.web.i18n import N_
from hutong.web.i18n import gettext as _
from hutong.web.render import redirect, render

router = APIRouter(tags=["web 页面"])

STATUS_NAMES = {"connected": N_("正常"), "quiet": N_("近期无数据"), "silent": N_("已中断"), "never": N_("从未接入")}
STATUS_BADGE = {"connected": "ok", "quiet": "warn", "silent": "high", "never": "neutral"}
GENDERS = {"male": N_("男"), "female": N_("女"), "other": N_("其他"), "unknown": N_("未知")}
CARD_STATUS = {"active": N_("正常"), "frozen": N_("已冻结"), "revoked": N_("已注销")}


def _store(request: Request):
    return request.app.state.store


def _who(caller: Caller) -> str:
    return caller.client_id + (f"@{caller.institution}" if caller.institution else "")


def _require_operator(caller: Caller) -> None:
    if not caller.has_role("operator"):
        raise FhirError(403, "forbidden", "需要运营人员权限 (operator role required)")


def _badge(text: str, kind: str) -> Markup:
    return Markup('<span class="badge badge-{}">{}</span>').format(kind, text)


def _link(href: str, text: str) -> Markup:
    return Markup('<a href="{}">{}</a>').format(href, text)


# ---------------------------------------------------------------------------------------------- overview
@router.get("/console/health", response_class=HTMLResponse, summary="Console: platform health")
def health_page(request: Request, caller: Caller = Depends(permit("web.console"))):
    store = _store(request)
    health = console.platform_health(store)
    activity = console.institution_activity(store)
    days = console.day_range(14)
    per_day = [sum(a.per_day.get(d, 0) for a in activity) for d in days]
    by_status: dict[str, int] = {}
    for a in activity:
        by_status[a.status] = by_status.get(a.status, 0) + 1
    open_reviews = len(mpi.review_list(store, "open", limit=1000))
    charts = {
        "flow": chart(line_chart([d[5:] for d in days], {_("接收的数据变更"): per_day}, area=True),
                      label=_("近14天每日接收数据量"), height=260),
        "types": chart(bar_chart([t for t, _n in health["by_type"][:10]], {_("资源数"): [n for _t, n in health["by_type"][:10]]},
                                 horizontal=True), label=_("资源类型（前10）"), height=300),
    }
    consumers = [{"name": c["name"], "position": c["position"], "lag": c["lag"],
                  "_class": "row-high" if c["lag"] > 1000 else ""} for c in health["consumers"]]
    return render(request, "web/console/health.html", {
        "health": health, "charts": charts, "by_status": by_status, "open_reviews": open_reviews,
        "consumers": consumers, "status_names": {k: _(v) for k, v in STATUS_NAMES.items()},
    }, audience="console", title=_("平台运行状态"))


# ---------------------------------------------------------------------------------------------- institutions
@router.get("/console/institutions", response_class=HTMLResponse, summary="Console: institutions and data flows")
def institutions_page(request: Request, caller: Caller = Depends(permit("web.console")), status: str = ""):
    store = _store(request)
    activity = console.institution_activity(store)
    days = console.day_range(14)
    shown = [a for a in activity if not status or a.status == status]
    top = [a for a in activity if a.total][:5]
    by_city: dict[str, int] = {}
    for a in activity:
        if a.city:
            by_city[a.city] = by_city.get(a.city, 0) + a.total
    charts = [chart(bar_chart([d[5:] for d in days], {a.name: [a.per_day.get(d, 0) for d in days] for a in top},
                              stacked=True), label=_("数据量最大的机构（近14天每日）"), height=300)]
    if by_city:
        charts.append(chart(jilin_map(by_city, name=_("近14天数据量")), label=_("各市数据量（近14天）"), height=360,
                            map_name="jilin"))
    rows = [{
        "name": a.name, "id": a.org_id, "city": a.city,
        "status": _badge(_(STATUS_NAMES[a.status]), STATUS_BADGE[a.status]),
        "last": local_time(a.last_us) if a.last_us else "–", "total": a.total,
        "today": a.per_day.get(days[-1], 0),
    } for a in shown[:500]]
    return render(request, "web/console/institutions.html", {
        "rows": rows, "charts": charts, "status": status, "count": len(shown),
        "status_options": [(k, _(v)) for k, v in STATUS_NAMES.items()],
    }, audience="console", title=_("机构接入"))


# ---------------------------------------------------------------------------------------------- patient index
def _patient_facts(store, pid: str | None, resource: dict | None) -> dict:
    if resource is None:
        return {"id": pid, "missing": True}
    names = [n.get("text") or (n.get("family") or "") + "".join(n.get("given") or []) for n in resource.get("name") or []]
    idents = [f"{(i.get('system') or '').rsplit(':', 1)[-1]}: {i.get('value')}" for i in resource.get("identifier") or []]
    phones = [t.get("value") for t in resource.get("telecom") or [] if t.get("system") == "phone"]
    addrs = [a.get("text") or "".join([a.get("city") or "", a.get("district") or "", *(a.get("line") or [])])
             for a in resource.get("address") or []]
    org = ((resource.get("managingOrganization") or {}).get("reference") or "").split("/")[-1]
    org_name = org
    if org:
        o = store.get("Organization", org)
        org_name = (o or {}).get("name") or org
    return {"id": pid, "missing": False, "name": "、".join(names), "gender": _(GENDERS[resource["gender"]]) if resource.get("gender") in GENDERS else "",
            "birth": resource.get("birthDate") or "", "identifiers": "；".join(idents), "phone": "、".join(phones),
            "address": "；".join(addrs), "institution": org_name, "source": (resource.get("meta") or {}).get("source")}


FIELDS = [("name", N_("姓名")), ("gender", N_("性别")), ("birth", N_("出生日期")), ("identifiers", N_("标识")),
          ("phone", N_("电话")), ("address", N_("地址")), ("institution", N_("机构"))]


@router.get("/console/mpi", response_class=HTMLResponse, summary="Console: the patient index's review queue")
def mpi_queue(request: Request, caller: Caller = Depends(permit("mpi.review")), status: str = "open"):
    if status not in ("open", "linked", "rejected"):
        raise FhirError(400, "invalid", "status must be open, linked or rejected", "status")
    store = _store(request)
    items = mpi.review_list(store, status, limit=200)
    rows = []
    for it in items:
        left, right = store.get("Patient", it["patient_id"]), store.get("Patient", it["candidate_id"])
        rows.append({
            "pair": _link(f"/console/mpi/{it['id']}", f"{_patient_facts(store, it['patient_id'], left).get('name') or it['patient_id']}"
                          f" ⇄ {_patient_facts(store, it['candidate_id'], right).get('name') or it['candidate_id']}"),
            "score": f"{it['score']:.3f}", "grade": it["grade"], "created": local_time(it["created_us"]),
        })
    return render(request, "web/console/mpi_queue.html", {"rows": rows, "status": status}, audience="console",
                  title=_("主索引审核"))


@router.get("/console/mpi/{review_id}", response_class=HTMLResponse, summary="Console: compare two records")
def mpi_review(review_id: str, request: Request, caller: Caller = Depends(permit("mpi.review")), audit: str = ""):
    store = _store(request)
    item = mpi.review_get(store, review_id)
    left = _patient_facts(store, item["left"]["patient_id"], item["left"]["resource"])
    right = _patient_facts(store, item["right"]["patient_id"], item["right"]["resource"])
    rows = []
    for key, label in FIELDS:
        a, b = left.get(key) or "", right.get(key) or ""
        rows.append({"field": _(label), "left": a, "right": b, "_class": "diff" if a != b else ""})
    evidence = []
    for ev in item["evidence"] if isinstance(item["evidence"], list) else []:
        if isinstance(ev, dict):
            evidence.append({"feature": ev.get("feature") or ev.get("field") or "", "level": ev.get("level", ""),
                             "weight": f"{ev.get('weight', ev.get('log2_bf', 0)):+.2f}"
                             if isinstance(ev.get("weight", ev.get("log2_bf")), (int, float)) else ""})
    audit_event = None
    if audit:
        ev = store.get("AuditEvent", audit)
        if ev is not None:
            detail = ""
            for ent in ev.get("entity") or []:
                for d in ent.get("detail") or []:
                    if d.get("type") == "mpi-change":
                        detail = d.get("valueString") or ""
            audit_event = {"id": audit, "action": ((ev.get("subtype") or [{}])[0]).get("code"),
                           "recorded": ev.get("recorded"), "who": ((ev.get("agent") or [{}])[0].get("who") or {}).get("display"),
                           "entities": [e["what"]["reference"] for e in ev.get("entity") or [] if e.get("what")],
                           "detail": _pretty(detail)}
    return render(request, "web/console/mpi_review.html", {
        "item": item, "left": left, "right": right, "rows": rows, "evidence": evidence, "audit": audit_event,
    }, audience="console", title=_("比对两条患者记录"))


def _pretty(text: str) -> str:
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


@router.post("/console/mpi/{review_id}/decide", summary="Console: link or reject a review item")
def mpi_decide(review_id: str, request: Request, decision: str = Form(...),
               caller: Caller = Depends(permit("mpi.review"))):
    if decision not in ("link", "reject"):
        raise FhirError(400, "invalid", "decision must be link or reject", "decision")
    store = _store(request)
    result = mpi.review_decide(store, review_id, decision, who=_who(caller))
    console.forget_cache()
    msg = N_("已合并为同一人，审计事件 %(audit)s") if decision == "link" else N_("已确认不是同一人，审计事件 %(audit)s")
    return redirect(f"/console/mpi/{review_id}?audit={result['audit']}", msg, request=request, audit=result["audit"])


@router.post("/console/mpi/unmerge", summary="Console: undo a merge (by its AuditEvent)")
def mpi_unmerge(request: Request, audit: str = Form(..., max_length=64), review_id: str = Form("", max_length=64),
                caller: Caller = Depends(permit("mpi.merge"))):
    store = _store(request)
    result = mpi.unmerge(store, audit=audit, who=_who(caller))
    target = f"/console/mpi/{review_id}?audit={result['audit']}" if review_id else "/console/mpi?status=linked"
    return redirect(target, N_("已撤销合并，审计事件 %(audit)s"), request=request, audit=result["audit"])


# ---------------------------------------------------------------------------------------------- health cards
@router.get("/console/cards", response_class=HTMLResponse, summary="Console: health-card administration")
def cards_page(request: Request, caller: Caller = Depends(permit("card.stats")), card: str = ""):
    if card:
        card = card.strip()
        if not is_card_id(card):
            return render(request, "web/console/cards.html", _card_stats(request) | {"card_error": _("健康卡号格式不正确"),
                                                                                  "card": card},
                          audience="console", title=_("健康卡管理"), status=400)
        return redirect(f"/console/cards/{card}")
    return render(request, "web/console/cards.html", _card_stats(request) | {"card_error": None, "card": ""},
                  audience="console", title=_("健康卡管理"))


def _card_stats(request: Request) -> dict:
    store = _store(request)
    days = console.day_range(14)
    rows = card_service.scans_per_institution_per_day(store, since=days[0], until=days[-1])
    refusals = card_service.refusals_by_reason(store, since=days[0], until=days[-1])
    names = {}
    per_inst: dict[str, dict[str, int]] = {}
    for r in rows:
        per_inst.setdefault(r["institution"], {})[r["day"]] = r["scans"]
    for inst in per_inst:
        o = store.get("Organization", inst)
        names[inst] = (o or {}).get("name") or inst
    top = sorted(per_inst, key=lambda i: -sum(per_inst[i].values()))[:6]
    charts = [chart(bar_chart([d[5:] for d in days], {names[i]: [per_inst[i].get(d, 0) for d in days] for i in top},
                              stacked=True), label=_("各机构每日扫码次数（近14天）"), height=300)]
    table = [{"day": r["day"], "institution": names.get(r["institution"], r["institution"]), "scans": r["scans"],
              "accepted": r["accepted"], "refused": r["refused"]} for r in reversed(rows[-300:])]
    return {"charts": charts, "table": table, "refusals": refusals,
            "totals": {"scans": sum(r["scans"] for r in rows), "refused": sum(r["refused"] for r in rows)}}


@router.get("/console/cards/{card_id}", response_class=HTMLResponse, summary="Console: one health card")
def card_page(card_id: str, request: Request, caller: Caller = Depends(permit("card.read"))):
    store = _store(request)
    card = card_service.get_card(store, card_id)
    patient = store.get("Patient", card["patient"].split("/", 1)[1]) or {}
    from hutong.card import identity

    name = identity.display_name(patient)
    rid = identity.best_resident_id([patient])
    from hutong.china.ids import mask_name, mask_resident_id

    return render(request, "web/console/card.html", {
        "card": card, "status_name": _(CARD_STATUS.get(card["status"], card["status"])),
        "holder": {"name": mask_name(name) if name else "", "rid": mask_resident_id(rid) if rid else ""},
        "dependants": card_service.dependants(store, card_id), "issued": None,
    }, audience="console", title=_("健康卡") + " " + card_id)


@router.post("/console/cards/{card_id}/status", summary="Console: freeze, unfreeze or revoke a card")
def card_status(card_id: str, request: Request, status: str = Form(...), reason: str = Form("", max_length=200),
                caller: Caller = Depends(permit("card.status"))):
    _require_operator(caller)
    card_service.set_status(_store(request), card_id, status, reason or None, actor=_who(caller))
    msg = {"frozen": N_("健康卡已冻结"), "active": N_("健康卡已解冻"), "revoked": N_("健康卡已注销")}.get(status, N_("已保存"))
    return redirect(f"/console/cards/{card_id}", msg, request=request)


@router.post("/console/cards/{card_id}/reissue", response_class=HTMLResponse, summary="Console: re-issue a card")
def card_reissue(card_id: str, request: Request, caller: Caller = Depends(permit("card.issue"))):
    _require_operator(caller)
    store = _store(request)
    new, token = card_service.reissue_card(store, card_id, issued_by=_who(caller))
    # The holder link carries the new token once; it is shown here and never stored in clear.
    return render(request, "web/console/card.html", {
        "card": new, "status_name": _(CARD_STATUS.get(new["status"], new["status"])), "holder": {"name": "", "rid": ""},
        "dependants": [], "issued": {"old": card_id, "link": f"{new['page']}#t={token}"},
    }, audience="console", title=_("健康卡") + " " + new["card_id"])

