"""Lab-report interpretation and critical values as a capability of the node."""

from hutong.capability import Capability, Consumer, NavEntry
from hutong.reportread import cli, critical, pages, routes, tables

CAPABILITY = Capability(
    name="reportread",
    summary="报告解读 lab-report interpretation (WS/T 404/405 intervals, UCUM) and critical values (危急值)",
    routers=[routes.router, pages.router],
    # The resident reaches /portal/reports from the results page (the phone's tab bar has room for few).
    nav=[NavEntry("doctor", "/workstation/critical", "危急值", "reportread.critical.read", order=20)],
    consumers=[Consumer(critical.CONSUMER, critical.consume, frozenset({"Observation"}))],
    cli=cli.register,
    startup=routes.startup,
    shutdown=routes.shutdown,
    permissions={
        "reportread.interpret": "have a lab report explained",
        "reportread.critical.read": "see critical-value alerts and their counts",
        "reportread.critical.ack": "acknowledge a critical value",
        "reportread.critical.admin": "escalate overdue critical values now",
    },
    tables=tables.TABLES,
)
