"""Federation, the event stream and FHIR Subscriptions as a capability of the node."""

from __future__ import annotations

from hutong.capability import Capability, Consumer
from hutong.federation import cli, routes, runtime, subscription_routes, subscriptions, tables

CAPABILITY = Capability(
    name="federation",
    summary="省市一体化 province–city federation, the node's event stream (NATS JetStream) and FHIR Subscriptions",
    fhir=subscription_routes.FHIR_INTERACTIONS,
    routers=[routes.router, subscription_routes.router],
    consumers=[
        Consumer(subscriptions.STATE_CONSUMER, subscriptions.follow_subscriptions, frozenset({"Subscription"})),
        Consumer(subscriptions.MATCH_CONSUMER, subscriptions.match_events),
    ],
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
