"""Statistics console pages: the indicator dashboard with the province map and drill-down, the data-entry
form generated from a data set (with Excel template and upload), and completeness per unit."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI, local_time
from hutong.core.errors import FhirError, bad_request
from hutong.stats import indicators, orgunits, report_excel, reporting
from hutong.stats.periods import parse_period, period_of, previous
from hutong.web.i18n import N_
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, redirect, render

add_templates("stats", Path(__file__).resolve().parent / "templates")
router = APIRouter(tags=["stats pages"])
MAX_FORM_FIELDS = 2000
STATUS_NAMES = {"empty": N_("未填报"), "draft": N_("填报中"), "submitted": N_("已上报"), "returned": N_("已退回")}
LEVEL_NAMES = {0: N_("未审核"), 1: N_("县级已审核"), 2: N_("市级已审核"), 3: N_("省级已审核")}
ACTION_NAMES = {"submit": N_("上报"), "approve": N_("审核通过"), "unapprove": N_("撤销审核"), "unlock": N_("退回")}


def _today() -> date:
    return datetime.now(SHANGHAI).date()


@router.get("/console/stats", response_class=HTMLResponse, summary="Statistics dashboard (live indicators)")
def dashboard(request: Request, unit: str | None = None, start: str | None = None, end: str | None = None,
              caller: Caller = Depends(permit("stats.indicator.read"))):
    end = end or _today().isoformat()
    start = start or (date.fromisoformat(end) - timedelta(days=29)).isoformat() if _is_day(end) else None
    if not _is_day(end) or not _is_day(start):
        raise bad_request("start and end must be dates YYYY-MM-DD")
    level = orgunits.unit_level(unit)
    with request.app.state.store.read() as tx:
        places: dict = {}
        visits = indicators.compute(tx, "OP_VISITS", unit=unit, start=start, end=end, places=places)
        alos = indicators.compute(tx, "ALOS", unit=unit, start=start, end=end, places=places)
        htn = indicators.compute(tx, "HTN_MANAGED", unit=unit, places=places)
    drill = level in ("province", "city")
    rows = []
    for c in visits["children"]:
        a = next((x for x in alos["children"] if x["unit"] == c["unit"]), None)
        h = next((x for x in htn["children"] if x["unit"] == c["unit"]), None)
        rows.append({"name": c["name"], "unit": c["unit"], "visits": int(c["numerator"]),
                     "alos": a["value"] if a else None, "htn": int(h["numerator"]) if h else 0,
                     "href": f"/console/stats?unit={c['unit']}&start={start}&end={end}" if drill and c["unit"] else None})
    up = None
    if unit:
        up_unit = unit[:4] if level == "county" else ("" if level == "city" else None)
        up = f"/console/stats?start={start}&end={end}" + (f"&unit={up_unit}" if up_unit else "")
    return render(request, "stats/dashboard.html", {
        "visits": visits, "alos": alos, "htn": htn, "rows": rows, "start": start, "end": end, "unit": unit or "",
        "level": level, "up": up, "map": level == "province",
        "by_name": {r["name"]: r["visits"] for r in rows},
    }, audience="console", title=_("统计指标"))


def _is_day(value) -> bool:
    try:
        return isinstance(value, str) and date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


@router.get("/console/stats/reports", response_class=HTMLResponse, summary="Reporting: data sets and completeness")
def reports_home(request: Request, dataSet: str = "HRMS_M", period: str | None = None, unit: str | None = None,
                 caller: Caller = Depends(permit("stats.report.read"))):
    with request.app.state.store.read() as tx:
        ds = reporting.get_dataset(tx.conn, dataSet)
        period = period or previous(period_of(_today(), ds.period_type)).id
        result = reporting.completeness(tx.conn, ds, period, unit)
        found = reporting.violations(tx.conn, ds, period, unit)
        datasets = reporting.list_datasets(tx.conn)
    level = orgunits.unit_level(unit)
    for r in result["children"]:
        if level == "county":
            r["href"] = f"/console/stats/reports/{ds.code}/{r['unit']}/{period}"
        elif level in ("province", "city") and r["unit"]:
            r["href"] = f"/console/stats/reports?dataSet={ds.code}&period={period}&unit={r['unit']}"
    return render(request, "stats/reports.html", {
        "ds": ds, "period": period, "result": result, "violations": found, "datasets": datasets,
        "unit": unit or "", "level": level,
    }, audience="console", title=_("统计直报"))


def _form_context(tx, ds, org, period_id, errors=None, posted=None):
    p = parse_period(period_id, ds.period_type)
    row = reporting.assignment(tx.conn, ds, org)
    state = reporting.report_state(tx.conn, ds, org, period_id)
    current = {(v["dataElement"], v["categoryOptionCombo"]): v["value"] for v in state["dataValues"]}
    sections = []
    for name, codes in ds.sections or [("", [e.code for e in ds.elements])]:
        items = []
        for code in codes:
            element = ds.element(code)
            if element is None:
                continue
            cells = []
            for coc, label in ds.cells(element):
                field = f"v__{element.code}__{coc}"
                value = (posted or {}).get(field, current.get((element.code, coc)))
                if isinstance(value, float) and value == int(value):
                    value = int(value)
                cells.append({"field": field, "label": label, "value": "" if value is None else value,
                              "error": (errors or {}).get(field)})
            items.append({"element": element, "cells": cells})
        sections.append({"name": name, "rows": items})
    history = [{"action": _(ACTION_NAMES.get(h["action"], h["action"])), "level": h["level"], "by": h["by"],
                "when": local_time(h["ts_us"])} for h in state["history"]]
    return {"ds": ds, "org": org, "org_name": row.name, "period": p, "state": state, "sections": sections,
            "errors": errors or {}, "base": f"/console/stats/reports/{ds.code}/{org}/{period_id}",
            "history": history, "status_names": STATUS_NAMES, "level_names": LEVEL_NAMES, "upload_errors": None}


@router.get("/console/stats/reports/{code}/{org}/{period}", response_class=HTMLResponse,
            summary="The data-entry form of one report")
def form_page(code: str, org: str, period: str, request: Request,
              caller: Caller = Depends(permit("stats.report.read"))):
    with request.app.state.store.read() as tx:
        ds = reporting.get_dataset(tx.conn, code)
        ctx = _form_context(tx, ds, org, period)
    return render(request, "stats/form.html", ctx, audience="console", title=ds.name)


@router.post("/console/stats/reports/{code}/{org}/{period}", response_class=HTMLResponse,
             summary="Save the form's values")
async def form_save(code: str, org: str, period: str, request: Request,
                    caller: Caller = Depends(permit("stats.report.enter"))):
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    posted = {k: str(v) for k, v in form.items() if k.startswith("v__")}
    action = str(form.get("action") or "save")
    store = request.app.state.store

    def work():
        with store.write(caller.tenant) as tx:
            ds = reporting.get_dataset(tx.conn, code)
            entries = []
            for key, value in posted.items():
                _prefix, element, coc = (key.split("__", 2) + ["", ""])[:3]
                entries.append({"dataElement": element, "categoryOptionCombo": coc, "value": value, "cell": key})
            try:
                state = reporting.save_values(tx, ds, org, period, entries, caller.client_id)
            except reporting.EntryRejected as exc:
                return ds, None, {e.cell: e.message for e in exc.errors}
            if action == "submit":
                state = reporting.submit(tx.conn, ds, org, period, caller.client_id)
            return ds, state, None

    ds, state, errors = await run_in_threadpool(work)
    if errors:
        with store.read() as tx:
            ctx = _form_context(tx, ds, org, period, errors, posted)
        return render(request, "stats/form.html", ctx, audience="console", title=ds.name, status=422)
    base = f"/console/stats/reports/{code}/{org}/{period}"
    if state["violations"]:
        return redirect(base, N_("已保存，有 %(n)s 条审核规则未通过"), level="warning", request=request,
                        n=len(state["violations"]))
    if action == "submit":
        return redirect(base, N_("已上报"), request=request)
    return redirect(base, N_("已保存"), request=request)


@router.post("/console/stats/reports/{code}/{org}/{period}/upload", response_class=HTMLResponse,
             summary="Upload a filled Excel template from the console")
async def form_upload(code: str, org: str, period: str, request: Request,
                      caller: Caller = Depends(permit("stats.report.enter"))):
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise bad_request("choose an Excel file (.xlsx) to upload")
    content = await upload.read(report_excel.MAX_UPLOAD_BYTES + 1)
    store = request.app.state.store

    def work():
        with store.write(caller.tenant) as tx:
            ds = reporting.get_dataset(tx.conn, code)
            entries, errors = report_excel.read_upload(ds, org, parse_period(period, ds.period_type), content)
            try:
                if errors:
                    raise reporting.EntryRejected(errors)
                reporting.save_values(tx, ds, org, period, entries, caller.client_id)
            except reporting.EntryRejected as exc:
                return ds, [f"{e.cell}: {e.message}" for e in exc.errors]
            return ds, None

    ds, errors = await run_in_threadpool(work)
    if errors:
        with store.read() as tx:
            ctx = _form_context(tx, ds, org, period)
        ctx["upload_errors"] = errors
        return render(request, "stats/form.html", ctx, audience="console", title=ds.name, status=422)
    return redirect(f"/console/stats/reports/{code}/{org}/{period}", N_("Excel 已导入"), request=request)


@router.post("/console/stats/reports/{code}/{org}/{period}/approval", response_class=HTMLResponse,
             summary="Approve, unapprove or unlock from the console")
async def form_approval(code: str, org: str, period: str, request: Request,
                        caller: Caller = Depends(permit("stats.report.approve"))):
    form = await request.form(max_fields=10)
    action = str(form.get("action") or "")
    try:
        level = int(str(form.get("level") or "0"))
    except ValueError:
        level = 0
    if action not in ("approve", "unapprove", "unlock"):
        raise bad_request("action must be approve, unapprove or unlock")
    store = request.app.state.store

    def work():
        with store.write(caller.tenant) as tx:
            ds = reporting.get_dataset(tx.conn, code)
            getattr(reporting, action)(tx.conn, ds, org, period, level, caller.client_id)

    base = f"/console/stats/reports/{code}/{org}/{period}"
    try:
        await run_in_threadpool(work)
    except FhirError as exc:
        return redirect(base, N_("操作未完成：%(reason)s"), level="error", request=request, reason=exc.diagnostics[:200])
    return redirect(base, {"approve": N_("已审核"), "unapprove": N_("已撤销审核"), "unlock": N_("已退回填报单位")}[action],
                    request=request)
