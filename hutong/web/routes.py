"""The web layer's own routes: static assets, the public home page, each audience's home, the component
sample page and the licences page. Capabilities add their pages through their own routers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.web import assets
from hutong.web.charts import bar_chart, chart, jilin_map, line_chart, pie_chart
from hutong.web.i18n import gettext as _
from hutong.web.render import render

router = APIRouter(tags=["web 页面"])


@router.get("/web/static/{name:path}", include_in_schema=False)
def static_asset(name: str, request: Request, caller: Caller = Depends(permit(PUBLIC))):
    """An asset of the web layer or of a capability (content-hash ETag, long cache when versioned)."""
    found = assets.find(name)
    if found is None:
        raise FhirError(404, "not-found", "no such asset")
    etag = f'"{found.etag}"'
    versioned = request.query_params.get("v") == found.etag
    headers = {"ETag": etag, "Cache-Control": "public, max-age=31536000, immutable" if versioned
               else "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.path.read_bytes(), media_type=found.media_type, headers=headers)


@router.get("/", response_class=HTMLResponse, summary="Public home page (links to the portals)")
def home(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    return render(request, "web/home.html", {}, audience="public", title=_("首页"))


@router.get("/web/about", response_class=HTMLResponse, summary="About this platform and its third-party licences")
def about(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    return render(request, "web/about.html", {"echarts_version": assets.ECHARTS_VERSION}, audience="public",
                  title=_("关于与许可"))


@router.get("/web/ui", response_class=HTMLResponse, summary="Sample of the shared page components (for developers)")
def ui_sample(request: Request, caller: Caller = Depends(permit("web.console"))):
    days = [f"2025-03-{d:02d}" for d in range(1, 8)]
    charts = {
        "line": chart(line_chart(days, {_("血糖"): [5.1, 5.6, 6.8, 7.4, 6.1, 5.9, None]}, unit="mmol/L",
                                 band=(3.9, 6.1)), label=_("示例：折线图与参考范围"), height=240),
        "bar": chart(bar_chart(["长春市", "吉林市", "四平市"], {_("接收"): [120, 80, 45], _("拒绝"): [3, 1, 0]},
                               stacked=True), label=_("示例：堆叠柱状图"), height=240),
        "pie": chart(pie_chart({_("三级"): 59, _("二级"): 138, _("基层"): 857}), label=_("示例：饼图"), height=240),
        "map": chart(jilin_map({"长春市": 320, "吉林市": 210, "延边朝鲜族自治州": 90, "白山市": 30}, name=_("机构数")),
                     label=_("示例：吉林省地图"), height=360, map_name="jilin"),
    }
    rows = [{"name": "长春市第一医院", "tier": _("三级"), "n": 1234}, {"name": "吉林市中心医院", "tier": _("三级"), "n": 987}]
    return render(request, "web/ui.html", {"charts": charts, "rows": rows}, audience="console",
                  title=_("界面组件示例"))


@router.get("/console", response_class=HTMLResponse, summary="Operations console home")
def console_home(request: Request, caller: Caller = Depends(permit("web.console"))):
    return render(request, "web/audience_home.html", {"kind": "console"}, audience="console", title=_("运营管理平台"))


@router.get("/portal", response_class=HTMLResponse, summary="Resident portal home")
def portal_home(request: Request, caller: Caller = Depends(permit("web.portal"))):
    return render(request, "web/audience_home.html", {"kind": "resident"}, audience="resident",
                  title=_("居民健康服务"))


@router.get("/workstation", response_class=HTMLResponse, summary="Doctor workstation home")
def workstation_home(request: Request, caller: Caller = Depends(permit("web.workstation"))):
    return render(request, "web/audience_home.html", {"kind": "doctor"}, audience="doctor", title=_("医生工作站"))
