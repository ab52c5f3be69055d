"""Statistics as a capability of the node."""

from hutong.capability import Capability, NavEntry
from hutong.stats import (
    cli,
    indicator_routes,
    indicators,
    operation,
    pages,
    report_routes,
    tables,
    view_routes,
)

CAPABILITY = Capability(
    name="stats",
    summary="统计 statistics: SQL on FHIR views ($viewdefinition-run), direct reporting, live indicators",
    fhir=operation.FHIR_INTERACTIONS,
    routers=[view_routes.router, report_routes.router, indicator_routes.router, pages.router],
    nav=[NavEntry("console", "/console/stats", "统计指标", permission="stats.indicator.read", order=60),
         NavEntry("console", "/console/stats/reports", "统计直报", permission="stats.report.read", order=61)],
    consumers=[indicators.CONSUMER],
    cli=cli.register,
    permissions={
        "stats.view.run": "run a SQL on FHIR ViewDefinition over the record ($viewdefinition-run)",
        "stats.view.read": "list stored ViewDefinitions and materialised tables",
        "stats.view.write": "store a ViewDefinition on the node",
        "stats.view.materialize": "materialise a view as a table of the analytics database",
        "stats.sql": "run read-only SQL over the materialised views",
        "stats.dataset.read": "read reporting data sets (forms)",
        "stats.dataset.write": "define data sets and assign them to institutions",
        "stats.report.read": "read reports, completeness and violations",
        "stats.report.enter": "enter, upload and submit an institution's reports",
        "stats.report.approve": "approve, unapprove and unlock reports; batch validation; reminders",
        "stats.indicator.read": "read live indicators (full detail, no small-cell rule)",
    },
    tables=tables.TABLES,
)
