"""HTTP API of live indicators: ``/api/stats/indicators…`` (officials) and
``/api/stats/public/indicators/{code}`` (anyone: small-cell rule applied)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.stats import excel, indicators

router = APIRouter(tags=["stats 指标"])
DAY = r"^\d{4}-\d{2}-\d{2}$"
UNIT = r"^[A-Za-z0-9\-\.]{1,64}$"


@router.get("/api/stats/indicators", summary="The live indicators this node computes")
def list_indicators(caller: Caller = Depends(permit("stats.indicator.read"))):
    return {"indicators": [{"code": i.code, "name": i.name, "nameEn": i.name_en, "unit": i.unit,
                            "numerator": i.numerator.name,
                            "denominator": i.denominator.name if i.denominator else None, "factor": i.factor}
                           for i in indicators.INDICATORS.values()]}


def _compute(request: Request, code: str, unit, start, end) -> dict:
    with request.app.state.store.read() as tx:
        return indicators.compute(tx, code, unit=unit, start=start, end=end)


@router.get("/api/stats/indicators/{code}", summary="An indicator for a unit and the units below it (live)")
def get_indicator(code: str, request: Request, unit: str | None = Query(None, pattern=UNIT),
                  start: str | None = Query(None, pattern=DAY), end: str | None = Query(None, pattern=DAY),
                  format: str = Query("json", pattern="^(json|xlsx)$"),
                  caller: Caller = Depends(permit("stats.indicator.read"))):
    result = _compute(request, code, unit, start, end)
    if format == "xlsx":
        cols = [excel.Column("单位代码"), excel.Column("单位"), excel.Column("分子", "#,##0.##"),
                excel.Column("分母", "#,##0.##"), excel.Column(f"{result['name']}（{result['unit']}）", "#,##0.00")]
        rows = [[r["unit"], r["name"], r["numerator"], r["denominator"], r["value"]]
                for r in [*result["children"], result["total"]]]
        period = f"{start or '…'} 至 {end or '…'}"
        sheet = excel.Sheet(f"{result['orgUnitName']} {result['name']} {period}", cols, rows,
                            notes=["来源：互通平台共享档案，实时计数 (live counters from the change log)"])
        return Response(excel.workbook([sheet]), media_type=excel.XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{code}.xlsx"'})
    return result


@router.get("/api/stats/public/indicators/{code}", summary="An indicator for the public: small cells withheld")
def public_indicator(code: str, request: Request, unit: str | None = Query(None, pattern=UNIT),
                     start: str | None = Query(None, pattern=DAY), end: str | None = Query(None, pattern=DAY),
                     caller: Caller = Depends(permit(PUBLIC))):
    return indicators.suppress(_compute(request, code, unit, start, end))
