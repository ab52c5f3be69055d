"""HTTP API of the registry: institutions, departments and doctors (``/api/registry/…``), fever-clinic
navigation and clinic status. mCSD itself is plain FHIR search on ``/fhir`` (with ``near``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import PUBLIC, permit
from hutong.china import divisions as dv
from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI
from hutong.core.errors import FhirError
from hutong.registry import clinics, departments, geo, service
from hutong.registry.vocab import ClinicStatus

router = APIRouter(tags=["registry 机构与人员注册"])


def _store(request: Request):
    return request.app.state.store


@router.get("/api/registry/institutions", summary="机构查询：按行政区划、城市平台、等级、类别")
def list_institutions(request: Request, caller: Caller = Depends(permit("registry.read")),
                      division: str | None = Query(None, pattern=r"^\d{2,12}$"),
                      platform: str | None = Query(None, pattern=r"^\d{4,6}$"),
                      level: str | None = Query(None, max_length=4), tier: str | None = Query(None, max_length=16),
                      kind: str | None = Query(None, max_length=32), limit: int = Query(200, ge=1, le=5000)):
    found = service.institutions(_store(request), division=division, platform=platform, level=level, tier=tier,
                                 kind=kind)
    return {"total": len(found), "institutions": [asdict(i) for i in found[:limit]]}


@router.get("/api/registry/institutions/{org_id}", summary="一个机构：等级、区划、上级机构、科室")
def institution(org_id: str, request: Request, caller: Caller = Depends(permit("registry.read"))):
    inst = service.find_institution(_store(request), id=org_id)
    if inst is None:
        raise FhirError(404, "not-found", f"机构不存在 (no institution {org_id!r})")
    return {**asdict(inst), "departments": [asdict(d) for d in service.departments_of(_store(request), org_id)],
            "parents": [asdict(p) for p in service.parents_of(_store(request), org_id)]}


@router.get("/api/registry/institutions/{org_id}/practitioners", summary="机构的医生（可按科室、在线）")
def institution_practitioners(org_id: str, request: Request, caller: Caller = Depends(permit("registry.read")),
                              department: str | None = Query(None, pattern=r"^\d{2}(\.\d{2})?$"),
                              online: bool | None = None):
    return [asdict(c) for c in service.practitioners_of(_store(request), org_id, department=department,
                                                        online=online)]


@router.get("/api/registry/departments", summary="《医疗机构诊疗科目名录》")
def department_list(caller: Caller = Depends(permit(PUBLIC))):
    return [{"code": d.code, "name": d.name, "common": d.common, "parent": d.parent}
            for d in departments.departments().values()]


class OrganizationCheck(BaseModel):
    model_config = ConfigDict(extra="allow")
    resourceType: str = Field("Organization", pattern="^Organization$")


@router.post("/api/registry/check-organization", summary="机构信息校验（统一社会信用代码、区划代码、等级）")
def check_organization(body: OrganizationCheck, caller: Caller = Depends(permit("registry.read"))):
    problems = service.check_organization(body.model_dump())
    return {"valid": not problems, "problems": problems}


# ---- fever clinics -------------------------------------------------------------------------------------
def _origin(lat: float | None, lon: float | None, district: str | None, datum: str) -> tuple[float, float]:
    if lat is not None and lon is not None:
        try:
            return geo.to_wgs84(lat, lon, datum)
        except ValueError as exc:
            raise FhirError(400, "invalid", str(exc), "datum") from None
    if district:
        pos = dv.position(district)
        if pos is None or not district.startswith(dv.JILIN):
            raise FhirError(400, "invalid", f"未知的区县 (unknown district {district!r})", "district")
        return pos
    raise FhirError(400, "required", "需要位置 lat/lon 或区县 district (give lat and lon, or district)")


@router.get("/api/registry/fever-clinics/nearest", summary="发热门诊导航：离我最近、正在开放的发热门诊")
def nearest(request: Request, caller: Caller = Depends(permit(PUBLIC)),
            lat: float | None = Query(None, ge=-90, le=90), lon: float | None = Query(None, ge=-180, le=180),
            district: str | None = Query(None, pattern=r"^\d{6}$"),
            datum: str = Query("wgs84", pattern="^(wgs84|gcj02|bd09)$"),
            k: int = Query(10, ge=1, le=50), feature: list[str] = Query([], max_length=3),
            at: datetime | None = Query(None, description="查询时刻（默认现在）；无时区按北京时间"),
            include_closed_hours: bool = Query(False, description="也列出此刻不在开放时间的门诊")):
    olat, olon = _origin(lat, lon, district, datum)
    when = at if at is None or at.tzinfo else at.replace(tzinfo=SHANGHAI)
    with _store(request).read() as tx:
        hits = clinics.nearest_clinics(tx.conn, olat, olon, k=k, at=when, features=feature,
                                       open_only=not include_closed_hours)
    return {"origin": {"latitude": olat, "longitude": olon, "datum": "WGS-84"},
            "clinics": [h.to_json() for h in hits]}


@router.get("/api/registry/fever-clinics", summary="全部发热门诊（含暂停、关闭），可按城市")
def clinic_list(request: Request, caller: Caller = Depends(permit(PUBLIC)),
                city: str | None = Query(None, pattern=r"^\d{4}$")):
    with _store(request).read() as tx:
        return {"clinics": clinics.all_clinics(tx.conn, city=city)}


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: ClinicStatus
    note: str = Field("", max_length=200)


@router.put("/api/registry/fever-clinics/{service_id}/status", summary="设置发热门诊状态（开放、暂停、满负荷、关闭）")
def set_status(service_id: str, body: StatusChange, request: Request,
               caller: Caller = Depends(permit("registry.clinic.status"))):
    return clinics.set_clinic_status(_store(request), service_id, body.status, caller=caller, note=body.note)
