"""HTTP API of direct reporting and the dashboard (``/api/epidemic/…``)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.core.clock import local_day, now_us
from hutong.epidemic import cards, counts, linelist, vocab
from hutong.stats.excel import CSV, XLSX, Column, Sheet, csv_text, workbook

router = APIRouter(tags=["epidemic 传染病直报与疫情"])


class ReportCard(BaseModel):
    """传染病报告卡 (the fields a reporting doctor fills in)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    disease: str = Field(..., max_length=32, description="法定传染病代码（GET /api/epidemic/diseases）")
    classification: vocab.Classification
    patient_name: str = Field(..., max_length=64)
    sex: vocab.Sex
    birth_date: str = Field(..., max_length=10, description="YYYY-MM-DD")
    resident_id: str = Field("", max_length=18)
    phone: str = Field("", max_length=32)
    onset_date: str = Field(..., max_length=10, description="发病日期 YYYY-MM-DD")
    diagnosis_time: str = Field(..., max_length=32, description="诊断时间 YYYY-MM-DDTHH:MM（北京时间）")
    death_date: str = Field("", max_length=10)
    address_division: str = Field(..., max_length=12, description="现住址行政区划代码（县级或以下）")
    address_text: str = Field("", max_length=200)
    institution: str = Field(..., max_length=64, description="报告单位 Organization id")
    doctor: str = Field(..., max_length=64, description="报告医生")
    extra: dict[str, str] = Field(default_factory=dict, max_length=8)
    note: str = Field("", max_length=500)


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    action: vocab.ReviewAction
    classification: vocab.Classification | None = None
    disease: str | None = Field(None, max_length=32)
    reason: str = Field("", max_length=200)


def _store(request: Request):
    return request.app.state.store


@router.get("/api/epidemic/diseases", summary="法定传染病目录（类别、报告时限、附卡字段）")
def diseases(caller: Caller = Depends(permit(PUBLIC))):
    return [{"code": d.code, "name": d.name, "class": d.klass, "class_name": vocab.CLASS_NAMES[d.klass],
             "icd10": d.icd10, "deadline_hours": d.deadline_hours,
             "required": {k: list(vocab.EXTRA_FIELDS[k]) for k in d.required}, "carrier": d.carrier}
            for d in vocab.DISEASES.values()]


@router.post("/api/epidemic/reports", status_code=201, summary="直报：提交传染病报告卡")
def submit(body: ReportCard, request: Request, caller: Caller = Depends(permit("epidemic.report"))):
    return cards.submit(_store(request), cards.CardInput(**body.model_dump()), caller=caller)


@router.post("/api/epidemic/reports/{card_id}/review", summary="县（区）疾控审核、订正或退卡")
def review(card_id: str, body: Review, request: Request, caller: Caller = Depends(permit("epidemic.review"))):
    return cards.review(_store(request), card_id, body.action, caller=caller, classification=body.classification,
                        disease=body.disease, reason=body.reason)


@router.get("/api/epidemic/dashboard", summary="疫情实时统计（按城市、区县、日期；授权角色）")
def dashboard(request: Request, caller: Caller = Depends(permit("epidemic.dashboard")),
              disease: str | None = Query(None, max_length=32), day: date | None = None):
    with _store(request).read() as tx:
        d = counts.dashboard(tx.conn, today=day, disease=disease)
        d["late_reports"] = cards.late_reports(tx.conn)
    return d


@router.get("/api/epidemic/public", summary="疫情公开数据（仅汇总，小数压制）")
def public(request: Request, caller: Caller = Depends(permit(PUBLIC)), day: date | None = None):
    with _store(request).read() as tx:
        d = counts.dashboard(tx.conn, today=day)
    return counts.public_view(d, request.app.state.settings.epidemic_min_cell)


def _export(columns, rows, title: str, fmt: str, name: str, notes=()):
    if fmt == "csv":
        return Response(csv_text(columns, rows).encode("utf-8"), media_type=CSV,
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return Response(workbook([Sheet(title, columns, rows, notes)]), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})


@router.get("/api/epidemic/linelist", summary="个案一览表（国家传染病报告信息系统字段；授权角色）")
def export_linelist(request: Request, caller: Caller = Depends(permit("epidemic.linelist")),
                    format: str = Query("csv", pattern="^(csv|xlsx)$"),
                    county: str | None = Query(None, pattern=r"^\d{4,6}$")):
    rows = linelist.rows(_store(request), county=county)
    return _export(linelist.COLUMNS, rows, "传染病报告卡个案一览表", format, f"linelist-{local_day(now_us())}")


@router.get("/api/epidemic/aggregates", summary="汇总数据导出（按城市、区县）")
def export_aggregates(request: Request, caller: Caller = Depends(permit("epidemic.dashboard")),
                      format: str = Query("csv", pattern="^(csv|xlsx)$"), day: date | None = None):
    from hutong.china import divisions as dv

    with _store(request).read() as tx:
        d = counts.dashboard(tx.conn, today=day)
    cols = [Column("区划代码"), Column("名称"), Column("今日新增确诊", "0"), Column("累计确诊", "0"),
            Column("累计报告", "0"), Column("今日发热门诊就诊", "0")]
    rows = []
    for code in sorted(d["counties"]):
        c = d["counties"][code]
        rows.append([code, dv.division_name(code) or code, c["new"], c["confirmed"], c["reported"], c["visits_today"]])
    return _export(cols, rows, f"传染病汇总 {d['today']}", format, f"aggregates-{d['today']}",
                   notes=["来源：互通平台直报（实时）", "确诊 = 经县（区）疾控审核的临床诊断与确诊病例"])
