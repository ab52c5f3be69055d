"""Pages: the open epidemic dashboard (疫情实时查: aggregates only, small counts suppressed), the
officials' dashboard with the review queue, and the report-card form for reporting doctors."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from hutong.api.caller import PUBLIC, permit
from hutong.china import divisions as dv
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.epidemic import cards, counts, vocab
from hutong.epidemic.tables import epidemic_card as EC
from hutong.web.charts import chart, jilin_map, line_chart
from hutong.web.i18n import N_, use_locale
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, redirect, render, request_locale

router = APIRouter(tags=["epidemic 传染病直报与疫情"])
add_templates("epidemic", Path(__file__).resolve().parent / "templates")


def _name(code: str) -> str:
    return dv.division_name(code) or code


@router.get("/epidemic", response_class=HTMLResponse, summary="疫情实时查（公开页面，仅汇总）")
def public_page(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    threshold = request.app.state.settings.epidemic_min_cell
    with request.app.state.store.read() as tx:
        view = counts.public_view(counts.dashboard(tx.conn), threshold)
    with use_locale(request_locale(request)):
        small = _("少于%(n)s", n=threshold)
        fmt = lambda v: small if v is None else v  # noqa: E731
        rows = [{"city": _name(c), "new": fmt(v["new"]), "confirmed": fmt(v["confirmed"]),
                 "visits": fmt(v["visits_today"])} for c, v in sorted(view["cities"].items())]
        map_values = {_name(c): v["confirmed"] for c, v in view["cities"].items()}
        ctx = {
            "view": view, "rows": rows, "small": small, "fmt": fmt,
            "map": chart(jilin_map(map_values, name=_("累计确诊")), label=_("各市累计确诊"), height=380, map_name="jilin"),
            "trend": chart(line_chart(list(view["trend"]), {_("新增确诊"): list(view["trend"].values())}),
                           label=_("近7日新增确诊"), height=260),
        }
        title = _("疫情实时查")
    return render(request, "epidemic/public.html", ctx, audience="public", title=title,
                  headers={"Refresh": "60"})


@router.get("/console/epidemic", response_class=HTMLResponse, summary="疫情监测（授权角色：按市、区县，审核队列）")
def console_page(request: Request, caller: Caller = Depends(permit("epidemic.dashboard"))):
    store = request.app.state.store
    with store.read() as tx:
        d = counts.dashboard(tx.conn)
        late = cards.late_reports(tx.conn)
        pending = tx.conn.execute(select(EC).where(EC.c.status == "pending").order_by(EC.c.reported_us).limit(100)).all()
    with use_locale(request_locale(request)):
        cities = [{"code": c, "name": _name(c), **v} for c, v in sorted(d["cities"].items())]
        counties = [{"code": c, "name": f"{_name(c[:4])} · {_name(c)}", **v} for c, v in sorted(d["counties"].items())]
        queue = [{"id": r.card_id, "disease": vocab.DISEASES[r.disease].name if r.disease in vocab.DISEASES else r.disease,
                  "county": _name(r.county), "late": r.late, "institution": r.institution} for r in pending]
        ctx = {
            "d": d, "late": late, "cities": cities, "counties": counties, "queue": queue,
            "map": chart(jilin_map({c["name"]: c["confirmed"] for c in cities}, name=_("累计确诊")),
                         label=_("各市累计确诊"), height=360, map_name="jilin"),
            "trend": chart(line_chart(list(d["trend"]), {_("新增确诊"): list(d["trend"].values()),
                                                         _("发热门诊就诊"): list(d["visit_trend"].values())}),
                           label=_("近7日趋势"), height=260),
        }
        title = _("疫情监测")
    return render(request, "epidemic/console.html", ctx, audience="console", title=title)


@router.post("/console/epidemic/review/{card_id}", summary="审核报告卡（表单）")
def console_review(card_id: str, request: Request, caller: Caller = Depends(permit("epidemic.review")),
                   action: str = Form(..., max_length=16), reason: str = Form("", max_length=200)):
    cards.review(request.app.state.store, card_id, action, caller=caller, reason=reason)
    return redirect("/console/epidemic", N_("报告卡已处理"), request=request)


_FIELDS = ("disease", "classification", "patient_name", "sex", "birth_date", "resident_id", "phone", "onset_date",
           "diagnosis_time", "death_date", "address_division", "address_text", "institution", "doctor", "note")


def _form_page(request: Request, values: dict, issues: list, status: int = 200):
    with use_locale(request_locale(request)):
        ctx = {
            "v": values, "issues": issues,
            "diseases": [(d.code, f"{vocab.CLASS_NAMES[d.klass]} · {d.name}") for d in vocab.DISEASES.values()],
            "classifications": [(k, _(v)) for k, v in CLASSIFICATION_LABELS.items()],
            "sexes": [("male", _("男")), ("female", _("女")), ("unknown", _("未知"))],
            "extra_fields": vocab.EXTRA_FIELDS, "extra_labels": EXTRA_LABELS,
        }
        title = _("传染病报告卡")
    return render(request, "epidemic/report.html", ctx, audience="doctor", title=title, status=status)


CLASSIFICATION_LABELS = {"suspected": N_("疑似病例"), "clinical": N_("临床诊断病例"), "confirmed": N_("确诊病例"),
                         "carrier": N_("病原携带者")}
EXTRA_LABELS = {"hepatitis_type": N_("肝炎分型"), "syphilis_stage": N_("梅毒分期"), "tb_lab": N_("肺结核病原学"),
                "malaria_species": N_("疟疾虫种"), "anthrax_type": N_("炭疽分型")}


@router.get("/epidemic/report", response_class=HTMLResponse, summary="传染病报告卡（填报页面）")
def report_form(request: Request, caller: Caller = Depends(permit("epidemic.report"))):
    return _form_page(request, {"institution": (caller.institution or "").removeprefix("Organization/")}, [])


@router.post("/epidemic/report", response_class=HTMLResponse, summary="提交传染病报告卡（表单）")
async def report_submit(request: Request, caller: Caller = Depends(permit("epidemic.report"))):
    form = await request.form()
    values = {k: str(form.get(k, ""))[:500].strip() for k in _FIELDS}
    extra = {k: str(form.get(f"extra_{k}", "")).strip() for k in vocab.EXTRA_FIELDS if str(form.get(f"extra_{k}", "")).strip()}
    values["extra"] = extra
    try:
        result = cards.submit(request.app.state.store, cards.CardInput(**values), caller=caller)
    except FhirError as exc:
        if exc.status in (400, 403, 422):
            issues = [i.diagnostics for i in exc.issues] if exc.issues else [exc.diagnostics]
            return _form_page(request, values, issues, status=422 if exc.status == 422 else exc.status)
        raise
    msg = N_("报告卡已提交，编号 %(id)s") if result["status"] != "duplicate" else N_("报告卡已提交，编号 %(id)s（与已有报告卡重复，已关联）")
    return redirect("/epidemic/report", msg, request=request, id=result["id"])
