"""Pages of report interpretation: the resident's own reports explained item by item, and the critical
values on the doctor's desk.

The resident sees only reports whose subject is one of their own linked Patient records (the shared
record's ``load_record``); the doctor sees the alerts of the institution they act for.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.core.ids import ID_RE
from hutong.reportread import critical, report
from hutong.share.pages import resident_patient
from hutong.share.record import load_record
from hutong.web.i18n import N_
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, redirect, render

router = APIRouter(tags=["report reading 报告解读"])
add_templates("reportread", Path(__file__).resolve().parent / "templates")

#: flag -> (label message id, badge kind of web/macros.html)
FLAGS = {
    "normal": (N_("正常"), "ok"), "high": (N_("偏高"), "high"), "low": (N_("偏低"), "low"),
    "critical-high": (N_("危急偏高"), "high"), "critical-low": (N_("危急偏低"), "low"),
    "unknown": (N_("无法判断"), "neutral"),
}
STATUS = {"open": N_("待确认"), "acknowledged": N_("已确认"), "escalated": N_("已升级")}


def _own_reports(store, patient_id: str) -> tuple[set[str], list]:
    record = load_record(store, patient_id, types=["Patient", "DiagnosticReport"])
    mine = {f"Patient/{p['id']}" for p in record.records}
    return mine, record


@router.get("/portal/reports", response_class=HTMLResponse, summary="Resident portal: my lab reports")
def portal_reports(request: Request, caller: Caller = Depends(permit("web.portal"))):
    _mine, record = _own_reports(request.app.state.store, resident_patient(request, caller))
    rows = []
    for it in record.of_type("DiagnosticReport"):
        r = it.resource
        rows.append({"id": r.get("id"), "name": (r.get("code") or {}).get("text") or _("检验报告"),
                     "when": r.get("effectiveDateTime") or r.get("issued"),
                     "where": it.institution_name,
                     "n": len(r.get("result") or [])})
    return render(request, "reportread/portal_reports.html", {"rows": rows}, audience="resident",
                  title=_("我的检验报告"))


@router.get("/portal/reports/{report_id}", response_class=HTMLResponse,
            summary="Resident portal: one lab report explained item by item")
def portal_report(report_id: str, request: Request, caller: Caller = Depends(permit("web.portal"))):
    store = request.app.state.store
    if not ID_RE.match(report_id):
        raise FhirError(404, "not-found", "报告不存在 (unknown report)")
    mine, _record = _own_reports(store, resident_patient(request, caller))
    with store.read() as tx:
        rep = report.from_store(tx, f"DiagnosticReport/{report_id}")
    subject = ((rep.report or {}).get("subject") or {}).get("reference")
    if subject not in mine:  # someone else's report looks the same as no report
        raise FhirError(404, "not-found", "报告不存在 (unknown report)")
    answer = report.interpret(rep, critical.critical_table(request.app.state.node.settings))
    items = [dict(i, flag_name=_(FLAGS[i["flag"]][0]), badge=FLAGS[i["flag"]][1]) for i in answer["items"]]
    return render(request, "reportread/portal_report.html",
                  {"items": items, "summary": answer["summary"], "patient": answer.get("patient") or {},
                   "name": ((rep.report or {}).get("code") or {}).get("text") or _("检验报告"),
                   "when": (rep.report or {}).get("effectiveDateTime") or (rep.report or {}).get("issued")},
                  audience="resident", title=_("报告解读"))


@router.get("/workstation/critical", response_class=HTMLResponse, summary="Workstation: critical values to acknowledge")
def critical_desk(request: Request, caller: Caller = Depends(permit("reportread.critical.read"))):
    if not caller.institution:
        raise FhirError(400, "invalid", "危急值按机构显示 (the desk must act for an institution)")
    alerts = critical.list_alerts(request.app.state.store, institution=f"Organization/{caller.institution}", limit=200)
    rows = [dict(a, status_name=_(STATUS.get(a["status"], a["status"])),
                 text=critical.describe(a["analyte"], a["value"], a["unit"], a["direction"], a["threshold"]),
                 patient_id=(a["patient"] or "").partition("/")[2]) for a in alerts]
    return render(request, "reportread/critical.html", {"rows": rows}, audience="doctor", title=_("危急值"))


@router.post("/workstation/critical/{alert_id}/ack", summary="Workstation: acknowledge a critical value")
def critical_ack(alert_id: str, request: Request, note: str = Form("", max_length=500),
                 caller: Caller = Depends(permit("reportread.critical.ack"))):
    if len(alert_id) > 64 or not caller.institution:
        raise FhirError(404, "not-found", "危急值不存在 (unknown alert)")
    store = request.app.state.store
    own = {a["id"] for a in critical.list_alerts(store, institution=f"Organization/{caller.institution}", limit=1000)}
    if alert_id not in own:
        raise FhirError(404, "not-found", "危急值不存在 (unknown alert)")
    critical.acknowledge(store, alert_id, None, note or None)
    return redirect("/workstation/critical", N_("已确认危急值"), request=request)
