"""Pages: the resident's fever-clinic navigation (map + list, phone first) and the console's clinic list
where an institution or an operator sets a clinic's status."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse

from hutong.api.caller import PUBLIC, permit
from hutong.china import divisions as dv
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.registry import clinics, geo, vocab
from hutong.web.assets import add_assets
from hutong.web.charts import chart
from hutong.web.i18n import N_, use_locale
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, redirect, render, request_locale

router = APIRouter(tags=["registry 机构与人员注册"])
_HERE = Path(__file__).resolve().parent
add_templates("registry", _HERE / "templates")
add_assets("registry", _HERE / "static")

STATUS_BADGE = {"open": "ok", "full": "warn", "paused": "high", "closed": "neutral"}
FEATURE_LABELS = {"children": N_("儿童发热门诊"), "24h": N_("24小时"), "designated": N_("定点医院")}
STATUS_LABELS = {"open": N_("开放"), "paused": N_("暂停接诊"), "full": N_("已满负荷"), "closed": N_("关闭")}


def districts() -> list[tuple[str, str]]:
    """(county code, "city · county") of every county the chooser offers, city by city."""
    out = []
    for city in dv.jilin_cities():
        cname = dv.division_name(city) or city
        for county in dv.children(city):
            if dv.position(county) is not None and not dv.is_statistical_only(county):
                out.append((county, f"{cname} · {dv.division_name(county)}"))
    return out


def _map(all_rows: list[dict], hits: list, origin: tuple[float, float] | None):
    listed = [r for r in all_rows if r["active"] and r["status"] not in clinics.HIDDEN_STATUSES]
    near_ids = {h.service_id for h in hits}
    series = [{
        "name": _("发热门诊"), "type": "scatter", "coordinateSystem": "geo", "symbolSize": 7,
        "data": [{"name": r["name"], "value": [r["lon"], r["lat"]]} for r in listed if r["service_id"] not in near_ids],
    }, {
        "name": _("离您最近"), "type": "effectScatter", "coordinateSystem": "geo", "symbolSize": 12,
        "data": [{"name": h.name, "value": [h.lon, h.lat]} for h in hits],
    }]
    if origin:
        series.append({"name": _("您的位置"), "type": "scatter", "coordinateSystem": "geo", "symbol": "pin",
                       "symbolSize": 26, "data": [{"name": _("您的位置"), "value": [origin[1], origin[0]]}]})
    options = {
        "tooltip": {"trigger": "item"},
        "legend": {"bottom": 0},
        "geo": {"map": "jilin", "roam": True, "itemStyle": {"areaColor": "#eef3f1", "borderColor": "#7a8a84"},
                "label": {"show": True, "fontSize": 10, "color": "#4d5b66"}},
        "series": series,
    }
    table_rows = "".join(f"<tr><td>{_e(h.name)}</td><td>{h.distance_km:.1f}</td></tr>" for h in hits)
    from markupsafe import Markup

    table = Markup(f"<table class=\"table\"><thead><tr><th>{_e(_('发热门诊'))}</th><th>km</th></tr></thead>"
                   f"<tbody>{table_rows}</tbody></table>")
    return chart(options, label=_("吉林省发热门诊分布"), height=420, map_name="jilin", table=table)


def _e(text: str) -> str:
    import html

    return html.escape(str(text), quote=True)


@router.get("/fever-clinics", response_class=HTMLResponse, summary="发热门诊导航（居民页面）")
def fever_page(request: Request, caller: Caller = Depends(permit(PUBLIC)),
               lat: float | None = Query(None, ge=-90, le=90), lon: float | None = Query(None, ge=-180, le=180),
               district: str | None = Query(None, pattern=r"^(\d{6})?$"),
               feature: list[str] = Query([], max_length=3)):
    with use_locale(request_locale(request)):  # Python-side strings (map labels, title) in the page's language
        return _fever_page(request, caller, lat, lon, district, feature)


def _fever_page(request, caller, lat, lon, district, feature):
    features = [f for f in feature if f in vocab.CLINIC_FEATURES]
    origin = None
    where = ""
    if lat is not None and lon is not None:
        origin = (lat, lon)
        city = geo.city_at(lat, lon)
        where = _("您的位置") + (f"（{dv.division_name(city)}）" if city else "")
    elif district:
        pos = dv.position(district)
        if pos is None or not district.startswith(dv.JILIN):
            raise FhirError(400, "invalid", _("未知的区县"), "district")
        origin = pos
        where = f"{dv.division_name(district[:4])} · {dv.division_name(district)}"
    store = request.app.state.store
    with store.read() as tx:
        hits = clinics.nearest_clinics(tx.conn, *origin, k=10, features=features) if origin else []
        all_rows = clinics.all_clinics(tx.conn)
    ctx = {
        "hits": hits, "origin": origin, "where": where, "districts": districts(), "district": district or "",
        "features": features, "feature_labels": FEATURE_LABELS, "status_labels": STATUS_LABELS,
        "badge": STATUS_BADGE, "map": _map(all_rows, hits, origin),
        "listed": sum(1 for r in all_rows if r["active"] and r["status"] not in clinics.HIDDEN_STATUSES),
    }
    audience = "resident" if caller.has_role("resident") and "system" not in caller.roles else "public"
    return render(request, "registry/fever.html", ctx, audience=audience, title=_("发热门诊导航"))


@router.get("/console/registry/fever-clinics", response_class=HTMLResponse, summary="发热门诊状态管理（运营与机构）")
def console_clinics(request: Request, caller: Caller = Depends(permit("registry.clinic.status")),
                    city: str | None = Query(None, pattern=r"^(\d{4})?$")):
    with request.app.state.store.read() as tx:
        rows = clinics.all_clinics(tx.conn, city=city or None)
    if caller.institution and "operator" not in caller.roles:
        rows = [r for r in rows if r["org_id"] == caller.institution.removeprefix("Organization/")]
    cities = [(c, dv.division_name(c) or c) for c in dv.jilin_cities()]
    with use_locale(request_locale(request)):
        title = _("发热门诊状态")
    return render(request, "registry/console_clinics.html",
                  {"rows": rows, "city": city or "", "cities": cities, "status_labels": STATUS_LABELS,
                   "badge": STATUS_BADGE, "feature_labels": FEATURE_LABELS},
                  audience="console", title=title)


@router.post("/console/registry/fever-clinics/{service_id}/status", summary="设置发热门诊状态（表单）")
def console_set_status(service_id: str, request: Request, caller: Caller = Depends(permit("registry.clinic.status")),
                       status: str = Form(..., max_length=16), note: str = Form("", max_length=200),
                       city: str = Form("", max_length=4)):
    clinics.set_clinic_status(request.app.state.store, service_id, status, caller=caller, note=note.strip())
    back = "/console/registry/fever-clinics" + (f"?city={city}" if city.isdigit() else "")
    return redirect(back, N_("已更新发热门诊状态"), request=request)
