"""Federation and the event stream as a capability of the node."""

from __future__ import annotations

from hutong.capability import Capability
from hutong.federation import cli, routes, runtime, tables

CAPABILITY = Capability(
    name="federation",
    summary="省市一体化 province–city federation, the node's event stream (NATS JetStream) and FHIR Subscriptions",
    routers=[routes.router],
    cli=cli.register,
    startup=runtime.startup,
    shutdown=runtime.shutdown,
    permissions={
        "federation.status": "see the federation's links, lags and conflicts (a city's operator: their city only)",
        "federation.ingest": "push a city's changes to the province (a city node's credential)",
        "federation.feed": "read what the province distributes down (a city node's credential)",
        "federation.admin": "acknowledge conflicts, re-send from a position",
    },
    tables=tables.TABLES,
)
