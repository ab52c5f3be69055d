"""HTTP for the assessment: the API a city platform pulls its institutions' figures from, the Excel
exports, and the console pages (province overview, one page per institution). Thin: parse, call
``report``, format through ``views``."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.clock import local_time, now_us
from hutong.core.errors import FhirError
from hutong.quality import levels, metrics, operations, pdf, report, views
from hutong.stats.excel import XLSX, workbook
from hutong.web.charts import bar_chart, chart, jilin_map, line_chart
from hutong.web.i18n import gettext as _
from hutong.web.i18n import use_locale
from hutong.web.render import add_templates, render, request_locale

add_templates("quality", Path(__file__).resolve().parent / "templates")

router = APIRouter(tags=["quality 互联互通测评"])

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
LEVEL_BADGE = {None: "neutral", "1": "low", "2": "low", "3": "warn", "4B": "warn", "4A": "ok", "5B": "ok", "5A": "ok"}


def localized(route):
    """Run a route in the caller's language (``?lang=``, the cookie, ``Accept-Language``): labels in
    the API's JSON and in Excel follow it as the pages do."""

    @functools.wraps(route)
    def wrapper(*args, **kwargs):
        with use_locale(request_locale(kwargs["request"])):
            return route(*args, **kwargs)

    return wrapper


def _store(request: Request):
    return request.app.state.store


def _day(day: str | None) -> str | None:
    if day in (None, ""):
        return None
    if not _DAY.match(day):
        raise FhirError(400, "invalid", "day must be YYYY-MM-DD", "day")
    from datetime import date
    try:
        date.fromisoformat(day)
    except ValueError as exc:
        raise FhirError(400, "invalid", f"day {day!r} is not a calendar day", "day") from exc
    return day


def _days(days: int) -> int:
    if not 1 <= days <= 366:
        raise FhirError(400, "invalid", "days must be between 1 and 366", "days")
    return days


def _report(request: Request, org: str, day: str | None, days: int) -> report.InstitutionReport:
    if not re.match(r"^[A-Za-z0-9\-.]{1,64}$", org):
        raise FhirError(400, "invalid", "institution id must match [A-Za-z0-9-.]{1,64}", "id")
    rep = report.institution_report(_store(request), org, day=_day(day), days=_days(days))
    if rep is None:
        raise FhirError(404, "not-found", f"institution {org} is neither registered nor has it sent data")
    return rep


def _overview(request: Request, day, days, platform, city) -> list[report.InstitutionReport]:
    return report.province_overview(_store(request), day=_day(day), days=_days(days),
                                    platform=platform or None, city=city or None)


def _xlsx(data: bytes, filename: str) -> Response:
    return Response(data, media_type=XLSX, headers={
        "Content-Disposition": f"attachment; filename=\"quality.xlsx\"; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "no-store"})


# ------------------------------------------------------------------------------------------ API
@router.get("/api/quality/levels", summary="The maturity-level rules (estimate from observed data)")
@localized
def level_rules(request: Request, caller: Caller = Depends(permit("quality.read"))):
    return {"levels": [{"code": lv.code, "name": views.level_name(lv), "requirements": [
        {"indicator": r.indicator, "op": r.op, "threshold": r.threshold, "text": views.requirement_text(r)}
        for r in lv.requirements]} for lv in levels.LEVELS],
        "rules": [{"id": r.id, "resourceType": r.res_type, "element": r.element, "group": r.group,
                   "zh": r.zh, "en": r.en} for r in views.rules.RULES]}


@router.get("/api/quality/institutions", summary="Every institution's estimated level and scores, ranked")
@localized
def institutions_api(request: Request, caller: Caller = Depends(permit("quality.read")),
                     day: str | None = None, days: int = report.WINDOW_DAYS,
                     platform: str | None = Query(None, description="a city platform's code (e.g. 2201)"),
                     city: str | None = None):
    reps = _overview(request, day, days, platform, city)
    first, last = (reps[0].days[0], reps[0].day) if reps else (None, _day(day) or report.default_day())
    return JSONResponse({"window": {"first": first, "last": last, "days": days},
                         "institutions": [views.overview_row(i, r) for i, r in enumerate(reps, start=1)]})


@router.get("/api/quality/institutions.xlsx", summary="The province ranking as an Excel workbook")
@localized
def institutions_xlsx(request: Request, caller: Caller = Depends(permit("quality.export")),
                      day: str | None = None, days: int = report.WINDOW_DAYS,
                      platform: str | None = None, city: str | None = None):
    reps = _overview(request, day, days, platform, city)
    return _xlsx(workbook([views.overview_sheet(reps)]), "互联互通测评排名.xlsx")


@router.get("/api/quality/institutions/{org}", summary="One institution's assessment report")
@localized
def institution_api(org: str, request: Request, caller: Caller = Depends(permit("quality.read")),
                    day: str | None = None, days: int = report.WINDOW_DAYS):
    return JSONResponse(views.report_json(_report(request, org, day, days)))


@router.get("/api/quality/institutions/{org}/report.xlsx", summary="One institution's report as an Excel workbook")
@localized
def institution_xlsx(org: str, request: Request, caller: Caller = Depends(permit("quality.export")),
                     day: str | None = None, days: int = report.WINDOW_DAYS):
    rep = _report(request, org, day, days)
    return _xlsx(workbook(views.report_sheets(rep)), f"{rep.institution.name}-互联互通测评.xlsx")


@router.get("/metrics", summary="The node's metrics in Prometheus text format (every worker process)")
def prometheus_metrics(request: Request, caller: Caller = Depends(permit("quality.metrics"))):
    return Response(metrics.scrape(request.app.state.node), media_type=metrics.CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


@router.get("/api/quality/institutions/{org}/report.pdf", summary="One institution's report as PDF (CJK font embedded)")
@localized
def institution_pdf(org: str, request: Request, caller: Caller = Depends(permit("quality.export")),
                    day: str | None = None, days: int = report.WINDOW_DAYS):
    rep = _report(request, org, day, days)
    sheets = views.report_sheets(rep)
    footer = _("%(name)s · 互联互通测评（估计） · 生成于 %(at)s", name=rep.institution.name,
               at=local_time(now_us()))
    data = pdf.sheets_pdf(sheets, title=sheets[0].title, footer=footer, lang=request_locale(request))
    filename = f"{rep.institution.name}-互联互通测评.pdf"
    return Response(data, media_type=pdf.PDF, headers={
        "Content-Disposition": f"attachment; filename=\"quality.pdf\"; filename*=UTF-8''{quote(filename)}",
        "Cache-Control": "no-store"})


def _alerts(snap: dict) -> list[dict]:
    return [{"id": a.id, "text": _(a.zh, limit=_number(a.limit)), "subject": a.subject, "value": a.value,
             "limit": a.limit} for a in operations.alerts(snap)]


def _number(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


@router.get("/api/quality/operations", summary="The node's own health now, with the alerts its thresholds raise")
@localized
def operations_api(request: Request, caller: Caller = Depends(permit("quality.metrics"))):
    snap = operations.snapshot(request.app.state.node)
    return JSONResponse({**snap, "alerts": _alerts(snap)})


# ------------------------------------------------------------------------------------------ pages
@router.get("/console/operations", response_class=HTMLResponse, summary="Console: the platform's own health")
@localized
def operations_page(request: Request, caller: Caller = Depends(permit("quality.metrics"))):
    snap = operations.snapshot(request.app.state.node)
    size = snap["databaseBytes"]
    iface_rows = [{"interface": r["interface"], "requests": r["requests"], "e4": r["errors4xx"], "e5": r["errors5xx"],
                   "rate": f'{100 * r["errorRate5xx"]:.2f}%', "mean": "–" if r["meanMs"] is None else r["meanMs"],
                   "p95": "–" if r["p95Ms"] is None else f'≤ {r["p95Ms"]:g}',
                   "_class": "row-high" if r["errors5xx"] else ""} for r in snap["interfaces"]]
    peer_rows = [{"peer": f'{p["tenant"]} ({_("上行") if p["direction"] == "up" else _("下行")})',
                  "behind": p["eventsBehind"], "lag": snap["peerLagSeconds"].get(f'{p["tenant"]}/{p["direction"]}', 0),
                  "conflicts": snap["openConflicts"].get(f'{p["tenant"]}/{p["direction"]}', 0)} for p in snap["peers"]]
    return render(request, "quality/operations.html", {
        "snap": snap, "alerts": _alerts(snap), "iface_rows": iface_rows, "peer_rows": peer_rows,
        "consumer_rows": [{**c, "_class": "row-high" if c["lag"] > operations.THRESHOLDS["consumer-lag"].limit else ""}
                          for c in snap["consumers"]],
        "size": "–" if size is None else f"{size / 1048576:,.1f} MB",
        "thresholds": [_(t.zh, limit=_number(t.limit)) for t in operations.THRESHOLDS.values()],
        "iface_columns": [{"key": "interface", "label": _("接口")}, {"key": "requests", "label": _("请求数"), "numeric": True},
                          {"key": "e4", "label": "4xx", "numeric": True}, {"key": "e5", "label": "5xx", "numeric": True},
                          {"key": "rate", "label": _("5xx占比"), "numeric": True},
                          {"key": "mean", "label": _("平均耗时(ms)"), "numeric": True},
                          {"key": "p95", "label": _("P95耗时(ms)"), "numeric": True}],
    }, audience="console", title=_("运行监控"))


def _badge(text: str, kind: str) -> Markup:
    return Markup('<span class="badge badge-{}">{}</span>').format(kind, text)


def _level_badge(rep: report.InstitutionReport) -> Markup:
    lv = rep.estimate.level if rep.estimate else None
    return _badge(views.level_name(lv), LEVEL_BADGE.get(lv.code if lv else None, "neutral"))


def _score(v) -> str:
    return "–" if v is None else f"{v:.1f}"


@router.get("/console/quality", response_class=HTMLResponse, summary="Console: the province's assessment overview")
@localized
def overview_page(request: Request, caller: Caller = Depends(permit("quality.read")), day: str = "",
                  days: int = report.WINDOW_DAYS, city: str = ""):
    all_reps = _overview(request, day or None, days, None, None)
    reps = [r for r in all_reps if not city or r.institution.city == city]
    by_level: dict[str, int] = {}
    for r in all_reps:
        name = views.level_name(r.estimate.level)
        by_level[name] = by_level.get(name, 0) + 1
    order = [views.level_name(None)] + [views.level_name(lv) for lv in levels.LEVELS]
    city_scores: dict[str, list[float]] = {}
    for r in all_reps:
        s = report.mean_score(r)
        if r.institution.city and s is not None:
            city_scores.setdefault(r.institution.city, []).append(s)
    charts = [chart(bar_chart(order, {_("机构数"): [by_level.get(n, 0) for n in order]}),
                    label=_("各估计等级的机构数"), height=280)]
    if city_scores:
        charts.append(chart(jilin_map({c: round(sum(v) / len(v), 1) for c, v in city_scores.items()},
                                      name=_("平均得分")), label=_("各市平均得分"), height=360, map_name="jilin"))
    window = reps[0].days if reps else all_reps[0].days if all_reps else []
    totals = [sum(r.per_day.get(d, 0) for r in all_reps) for d in window]
    if window:
        charts.append(chart(line_chart([d[5:] for d in window], {_("全省接收数据量"): totals}, area=True),
                            label=_("评估期内每日接收数据量"), height=260))
    query = "?" + urlencode({k: v for k, v in (("day", day), ("days", days if days != report.WINDOW_DAYS else "")) if v})
    query = "" if query == "?" else query
    rows = [{
        "rank": i, "name": Markup('<a href="/console/quality/{}{}">{}</a>').format(r.institution.org_id, query,
                                                                                  r.institution.name),
        "city": r.institution.city, "level": _level_badge(r), "score": _score(report.mean_score(r)),
        **{g: _score(r.scores.get(g)) for g in report.GROUPS},
        "gaps": len(r.gap_days), "last": local_time(r.last_us) if r.last_us else "–",
        "_class": "row-high" if r.gap_days else "",
    } for i, r in enumerate(reps[:1000], start=1)]
    cities = sorted({r.institution.city for r in all_reps if r.institution.city})
    return render(request, "quality/overview.html", {
        "rows": rows, "charts": charts, "count": len(reps), "city": city, "day": day, "days": days,
        "city_options": [(c, c) for c in cities], "window": window,
        "flagged": sum(1 for r in all_reps if r.gap_days), "assessed": len(all_reps),
        "columns": [{"key": "rank", "label": _("排名"), "numeric": True}, {"key": "name", "label": _("机构")},
                    {"key": "city", "label": _("城市")}, {"key": "level", "label": _("估计等级")},
                    {"key": "score", "label": _("综合得分"), "numeric": True},
                    *[{"key": g, "label": _(views.GROUP_NAMES[g]), "numeric": True} for g in report.GROUPS],
                    {"key": "gaps", "label": _("中断天数"), "numeric": True}, {"key": "last", "label": _("最近接收")}],
    }, audience="console", title=_("互联互通测评"))


@router.get("/console/quality/{org}", response_class=HTMLResponse, summary="Console: one institution's assessment")
@localized
def institution_page(org: str, request: Request, caller: Caller = Depends(permit("quality.read")), day: str = "",
                     days: int = report.WINDOW_DAYS):
    rep = _report(request, org, day or None, days)
    data = views.report_json(rep)
    gap = set(rep.gap_days)
    charts = [chart(line_chart([d[5:] for d in rep.days], {_("接收数据量"): [rep.per_day.get(d, 0) for d in rep.days]},
                               area=True), label=_("每日接收数据量"), height=260)]
    if rep.by_type:
        top = sorted(rep.by_type.items(), key=lambda x: -x[1])[:10]
        charts.append(chart(bar_chart([t for t, _n in top], {_("数据量"): [n for _t, n in top]}, horizontal=True),
                            label=_("按资源类型"), height=280))
    iface_rows = [{"iface": _(views.INTERFACE_NAMES.get(k, k)), "last": local_time(v),
                   "count": rep.by_interface.get(k, 0) if k != "card" else rep.card_scans[1]}
                  for k, v in sorted(rep.last_by_interface.items())]
    rule_rows = []
    for r in data["rules"]:
        examples = "、".join(f'{e["res_type"]}/{e["res_id"]}' + (f' ({e["detail"]})' if e["detail"] else "")
                            for e in r["examples"][:3])
        rule_rows.append({"title": r["title"], "element": Markup("<code>{}</code>").format(r["element"]),
                          "group": _(views.RULE_GROUP_NAMES[r["group"]]), "applicable": r["applicable"],
                          "failed": r["failed"], "rate": f'{r["rate"] * 100:.1f}%', "examples": examples,
                          "_class": "row-high" if r["failed"] else ""})
    lat = data["latency"]
    latency_rows = [{"bucket": _(views.BUCKET_NAMES[b]), "n": lat[b]} for b in views.arrivals.LATENCY_BUCKETS]
    docs = [{"type": d["type"] or "–", "name": d["name"], "count": d["count"], "bad": d["withProblems"]}
            for d in data["documents"]]
    days_rows = [{"day": d, "n": rep.per_day.get(d, 0), "gap": _badge(_("中断"), "high") if d in gap else ""}
                 for d in reversed(rep.days) if d in gap]
    services = [{"part": x["part"], "name": x["name"], "writes": x["writes"],
                 "used": _badge(_("已使用"), "ok") if x["used"] else _badge(_("未使用"), "neutral")}
                for x in data["services"]]
    return render(request, "quality/institution.html", {
        "services": services,
        "rep": rep, "data": data, "charts": charts, "level": _level_badge(rep), "iface_rows": iface_rows,
        "rule_rows": rule_rows, "latency_rows": latency_rows, "docs": docs, "gap_rows": days_rows,
        "score": _score(report.mean_score(rep)), "day": day, "days": days,
        "scores": [(_(views.GROUP_NAMES[g]), _score(rep.scores.get(g))) for g in report.GROUPS],
    }, audience="console", title=_("%(name)s 互联互通测评", name=rep.institution.name))
