"""HTTP API of direct reporting, for institutions' own systems and the console.

The shapes follow DHIS2 where it has one (``dataValueSets`` with ``dataSet``, ``orgUnit``, ``period``
and ``dataValues``; ``completeDate`` submits), so tools written for DHIS2 need little change.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI
from hutong.core.errors import FhirError
from hutong.stats import excel, report_excel, reporting
from hutong.stats.periods import parse_period

router = APIRouter(tags=["stats 统计直报"])
CODE = r"^[A-Za-z0-9_\-]{1,64}$"
ORG = r"^[A-Za-z0-9\-\.]{1,64}$"
PERIOD = r"^\d{4}(Q[1-4]|0[1-9]|1[0-2])?$"


class DataValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataElement: str = Field(..., max_length=64)
    categoryOptionCombo: str = Field("", max_length=96)
    value: float | int | str | None = None


class DataValueSet(BaseModel):
    """A report's values (DHIS2 ``dataValueSets``); ``completeDate`` also submits it."""

    model_config = ConfigDict(extra="forbid")
    dataSet: str = Field(..., pattern=CODE)
    orgUnit: str = Field(..., pattern=ORG)
    period: str = Field(..., pattern=PERIOD)
    completeDate: str | None = Field(None, max_length=32)
    dataValues: list[DataValue] = Field(default_factory=list, max_length=5000)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    orgUnits: list[str] = Field(..., min_length=1, max_length=5000)


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = Field(..., ge=1, le=3, description="1 县级 county, 2 市级 city, 3 省级 province")


def _store(request: Request):
    return request.app.state.store


def _may_enter(caller: Caller, org: str) -> None:
    """An institution enters its own reports; statisticians and operators may enter for any."""
    if caller.institution and caller.institution != org and not (
            caller.has_role("statistician") or caller.has_role("operator")):
        raise FhirError(403, "forbidden", f"institution {caller.institution} cannot enter reports of {org}")


def _xlsx(data: bytes, name: str) -> Response:
    return Response(data, media_type=excel.XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/stats/datasets", summary="Data sets (ready-made and defined on this node)")
def list_datasets(request: Request, caller: Caller = Depends(permit("stats.dataset.read"))):
    with _store(request).read() as tx:
        return {"dataSets": [{"code": d.code, "name": d.name, "nameEn": d.name_en, "periodType": d.period_type,
                              "elements": len(d.elements), "rules": len(d.rules)}
                             for d in reporting.list_datasets(tx.conn)]}


@router.get("/api/stats/datasets/{code}", summary="A data set's definition: elements, cells, sections, rules")
def get_dataset(code: str, request: Request, caller: Caller = Depends(permit("stats.dataset.read"))):
    with _store(request).read() as tx:
        return reporting.get_dataset(tx.conn, code).to_json()


@router.put("/api/stats/datasets/{code}", summary="Define (or redefine) a data set")
def put_dataset(code: str, body: dict, request: Request, caller: Caller = Depends(permit("stats.dataset.write"))):
    if body.get("code") != code:
        raise FhirError(400, "invalid", "the definition's code must be the one in the path")
    with _store(request).write(caller.tenant) as tx:
        return reporting.save_dataset(tx.conn, body).to_json()


@router.post("/api/stats/datasets/{code}/assignments", summary="Assign a data set to institutions")
def assign(code: str, body: Assignment, request: Request, caller: Caller = Depends(permit("stats.dataset.write"))):
    with _store(request).write(caller.tenant) as tx:
        places = reporting.assign(tx, reporting.get_dataset(tx.conn, code), body.orgUnits)
    return {"assigned": [{"org": p.org, "name": p.name, "city": p.city, "county": p.county} for p in places]}


@router.post("/api/stats/dataValueSets", summary="Save a report's values (and submit it with completeDate)")
def post_values(body: DataValueSet, request: Request, caller: Caller = Depends(permit("stats.report.enter"))):
    _may_enter(caller, body.orgUnit)
    with _store(request).write(caller.tenant) as tx:
        ds = reporting.get_dataset(tx.conn, body.dataSet)
        state = reporting.save_values(tx, ds, body.orgUnit, body.period,
                                      [v.model_dump() for v in body.dataValues], caller.client_id)
        if body.completeDate:
            state = reporting.submit(tx.conn, ds, body.orgUnit, body.period, caller.client_id)
    return state


@router.get("/api/stats/reports/{code}/{org}/{period}", summary="A report: status, approval, values, violations")
def get_report(code: str, org: str, period: str, request: Request,
               caller: Caller = Depends(permit("stats.report.read"))):
    with _store(request).read() as tx:
        ds = reporting.get_dataset(tx.conn, code)
        parse_period(period, ds.period_type)
        reporting.assignment(tx.conn, ds, org)
        return reporting.report_state(tx.conn, ds, org, period)


@router.post("/api/stats/reports/{code}/{org}/{period}/submit", summary="Submit a report (it is then locked)")
def submit(code: str, org: str, period: str, request: Request,
           caller: Caller = Depends(permit("stats.report.enter"))):
    _may_enter(caller, org)
    with _store(request).write(caller.tenant) as tx:
        return reporting.submit(tx.conn, reporting.get_dataset(tx.conn, code), org, period, caller.client_id)


@router.post("/api/stats/reports/{code}/{org}/{period}/approve", summary="Approve at a level (county → city → province)")
def approve(code: str, org: str, period: str, body: Approval, request: Request,
            caller: Caller = Depends(permit("stats.report.approve"))):
    with _store(request).write(caller.tenant) as tx:
        return reporting.approve(tx.conn, reporting.get_dataset(tx.conn, code), org, period, body.level,
                                 caller.client_id)


@router.post("/api/stats/reports/{code}/{org}/{period}/unapprove", summary="Withdraw one's own approval")
def unapprove(code: str, org: str, period: str, body: Approval, request: Request,
              caller: Caller = Depends(permit("stats.report.approve"))):
    with _store(request).write(caller.tenant) as tx:
        return reporting.unapprove(tx.conn, reporting.get_dataset(tx.conn, code), org, period, body.level,
                                   caller.client_id)


@router.post("/api/stats/reports/{code}/{org}/{period}/unlock", summary="Return a report to the institution")
def unlock(code: str, org: str, period: str, body: Approval, request: Request,
           caller: Caller = Depends(permit("stats.report.approve"))):
    with _store(request).write(caller.tenant) as tx:
        return reporting.unlock(tx.conn, reporting.get_dataset(tx.conn, code), org, period, body.level,
                                caller.client_id)


@router.get("/api/stats/reports/{code}/{org}/{period}/template.xlsx",
            summary="The report as a formatted Excel template, with the values entered so far")
def template(code: str, org: str, period: str, request: Request,
             caller: Caller = Depends(permit("stats.report.read"))):
    with _store(request).read() as tx:
        ds = reporting.get_dataset(tx.conn, code)
        p = parse_period(period, ds.period_type)
        row = reporting.assignment(tx.conn, ds, org)
        data = report_excel.template(ds, org, row.name, p, reporting.values(tx.conn, ds, org, period))
    return _xlsx(data, f"{code}-{org}-{period}.xlsx")


@router.post("/api/stats/reports/{code}/{org}/{period}/upload",
             summary="Upload a filled template (.xlsx body); 422 names every cell in error, nothing is saved")
async def upload(code: str, org: str, period: str, request: Request,
                 caller: Caller = Depends(permit("stats.report.enter"))):
    _may_enter(caller, org)
    content = await request.body()
    store = _store(request)

    def work():
        with store.write(caller.tenant) as tx:
            ds = reporting.get_dataset(tx.conn, code)
            p = parse_period(period, ds.period_type)
            entries, errors = report_excel.read_upload(ds, org, p, content)
            if errors:
                raise reporting.EntryRejected(errors)
            return reporting.save_values(tx, ds, org, period, entries, caller.client_id)

    return await run_in_threadpool(work)


@router.get("/api/stats/completeness", summary="Expected vs received reports and on-time rates per unit")
def completeness(request: Request, dataSet: str = Query(..., pattern=CODE), period: str = Query(..., pattern=PERIOD),
                 unit: str | None = Query(None, pattern=ORG), format: str = Query("json", pattern="^(json|xlsx)$"),
                 caller: Caller = Depends(permit("stats.report.read"))):
    with _store(request).read() as tx:
        result = reporting.completeness(tx.conn, reporting.get_dataset(tx.conn, dataSet), period, unit)
    if format == "xlsx":
        cols = [excel.Column("单位代码"), excel.Column("单位"), excel.Column("应报", "0"), excel.Column("已报", "0"),
                excel.Column("及时", "0"), excel.Column("已审核", "0"), excel.Column("完整率", "0.0%"),
                excel.Column("及时率", "0.0%")]
        rows = [[r["unit"], r["name"], r["expected"], r["received"], r["onTime"], r["approved"], r["completeness"],
                 r["timeliness"]] for r in [*result["children"], result["total"]]]
        sheet = excel.Sheet(f"{result['unitName']} {dataSet} {result['periodLabel']} 上报完整性与及时性", cols, rows,
                            notes=[f"截止日期 {result['deadline']}", "来源：互通平台统计直报"])
        return _xlsx(excel.workbook([sheet]), f"completeness-{dataSet}-{period}.xlsx")
    return result


@router.get("/api/stats/violations", summary="Validation-rule violations of a period, for follow-up")
def list_violations(request: Request, dataSet: str = Query(..., pattern=CODE), period: str = Query(..., pattern=PERIOD),
                    unit: str | None = Query(None, pattern=ORG), format: str = Query("json", pattern="^(json|xlsx)$"),
                    caller: Caller = Depends(permit("stats.report.read"))):
    with _store(request).read() as tx:
        found = reporting.violations(tx.conn, reporting.get_dataset(tx.conn, dataSet), period, unit)
    if format == "xlsx":
        cols = [excel.Column("机构代码"), excel.Column("机构"), excel.Column("规则"), excel.Column("重要性"),
                excel.Column("左值", "#,##0.##"), excel.Column("运算"), excel.Column("右值", "#,##0.##")]
        rows = [[v["org"], v["orgName"], v["name"], v["importance"], v["left"], v["operator"], v["right"]]
                for v in found]
        return _xlsx(excel.workbook([excel.Sheet(f"{dataSet} {period} 审核规则违反", cols, rows)]),
                     f"violations-{dataSet}-{period}.xlsx")
    return {"violations": found}


@router.post("/api/stats/validation", summary="Run the validation rules over every report of a period")
def batch_validation(request: Request, dataSet: str = Query(..., pattern=CODE),
                     period: str = Query(..., pattern=PERIOD), unit: str | None = Query(None, pattern=ORG),
                     caller: Caller = Depends(permit("stats.report.approve"))):
    with _store(request).write(caller.tenant) as tx:
        return reporting.run_batch_validation(tx.conn, reporting.get_dataset(tx.conn, dataSet), period, unit)


@router.post("/api/stats/reminders", summary="Remind institutions whose report is due soon (FHIR Communication)")
def reminders(request: Request, dataSet: str = Query(..., pattern=CODE), period: str = Query(..., pattern=PERIOD),
              caller: Caller = Depends(permit("stats.report.approve"))):
    today = datetime.now(SHANGHAI).date()
    with _store(request).write(caller.tenant) as tx:
        return {"sent": reporting.send_reminders(tx, reporting.get_dataset(tx.conn, dataSet), period, today)}
