"""The interoperability and data-quality assessment as a capability of the node."""

from hutong.capability import Capability, NavEntry
from hutong.quality import measure, routes, tables

CAPABILITY = Capability(
    name="quality",
    summary="互联互通测评 interoperability and data-quality assessment, measured from the change log",
    routers=[routes.router],
    consumers=[measure.CONSUMER],
    nav=[NavEntry("console", "/console/quality", "互联互通测评", "quality.read", order=40)],
    permissions={
        "quality.read": "read the interoperability assessment (institution reports, province ranking, level rules)",
        "quality.export": "export assessment reports as Excel workbooks",
    },
    tables=tables.TABLES,
)
