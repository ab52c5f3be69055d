"""The web layer as a capability: shared page machinery, assets, and each audience's home page."""

from hutong.capability import Capability, Middleware, NavEntry
from hutong.web import cli, console_routes, routes, tables
from hutong.web.errors import HtmlErrors
from hutong.web.page_locale import PageLocale

CAPABILITY = Capability(
    name="web",
    summary="页面 web layer: layouts per audience, zh-CN/en catalog, vendored ECharts, HTML error pages",
    routers=[routes.router, console_routes.router],
    middleware=[Middleware(HtmlErrors, "inner"), Middleware(PageLocale, "inner")],
    cli=cli.register,
    nav=[
        NavEntry("console", "/console", "概览", "web.console", order=0),
        NavEntry("console", "/console/institutions", "机构接入", "web.console", order=10),
        NavEntry("console", "/console/mpi", "主索引审核", "mpi.review", order=20),
        NavEntry("console", "/console/cards", "健康卡管理", "card.stats", order=30),
        NavEntry("console", "/console/health", "平台运行状态", "web.console", order=90),
        NavEntry("resident", "/portal", "首页", "web.portal", order=0),
        NavEntry("doctor", "/workstation", "工作站首页", "web.workstation", order=0),
    ],
    permissions={
        "web.portal": "open the resident portal (their own record, card, services)",
        "web.workstation": "open the doctor workstation",
        "web.console": "open the operations console",
    },
    tables=tables.TABLES,
)
