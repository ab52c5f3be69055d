"""Epidemic services as a capability of the node."""

from hutong.capability import Capability, NavEntry
from hutong.epidemic import counts, pages, routes, tables

CAPABILITY = Capability(
    name="epidemic",
    summary="传染病直报与疫情实时查 direct reporting of notifiable diseases, fever-clinic visits, live dashboard",
    routers=[routes.router, pages.router],
    consumers=counts.CONSUMERS,
    tables=tables.TABLES,
    nav=[NavEntry("public", "/epidemic", "疫情实时查", order=61),
         NavEntry("resident", "/epidemic", "疫情实时查", order=61),
         NavEntry("doctor", "/epidemic/report", "传染病报告", "epidemic.report", order=60),
         NavEntry("console", "/console/epidemic", "疫情监测", "epidemic.dashboard", order=61)],
    permissions={
        "epidemic.report": "submit infectious disease report cards (直报; an institution for itself)",
        "epidemic.review": "review, correct or reject report cards (county CDC)",
        "epidemic.dashboard": "read the full epidemic dashboard and export aggregates",
        "epidemic.linelist": "export the line list with personal data (authorised roles only)",
    },
)
