"""The interoperability and data-quality assessment as a capability of the node."""

from hutong.capability import Capability, Middleware, NavEntry
from hutong.quality import measure, metrics, routes, tables

CAPABILITY = Capability(
    name="quality",
    summary="互联互通测评 interoperability and data-quality assessment, measured from the change log",
    routers=[routes.router],
    middleware=[Middleware(metrics.RequestMetrics, "outer")],
    startup=lambda node: (tables.ensure_indexes(node.store.engine), metrics.enable(node.settings.data_dir)),
    consumers=[measure.CONSUMER],
    nav=[NavEntry("console", "/console/quality", "互联互通测评", "quality.read", order=40),
         NavEntry("console", "/console/operations", "运行监控", "quality.metrics", order=41)],
    permissions={
        "quality.read": "read the interoperability assessment (institution reports, province ranking, level rules)",
        "quality.export": "export assessment reports as Excel and PDF",
        "quality.metrics": "the node's own health: Prometheus /metrics and the operations console",
    },
    tables=tables.TABLES,
)
