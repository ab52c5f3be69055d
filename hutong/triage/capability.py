"""Smart triage as a capability of the node."""

from hutong.capability import Capability, NavEntry
from hutong.triage import cli, pages, routes

CAPABILITY = Capability(
    name="triage",
    summary="智能导诊 triage: a resident's words -> departments of the national list, red flags, intent",
    routers=[routes.router, pages.router],
    nav=[NavEntry("resident", "/portal/triage", "智能导诊", "triage.ask", order=25)],
    cli=cli.register,
    startup=routes.startup,
    permissions={"triage.ask": "ask the triage assistant which department to see"},
)
