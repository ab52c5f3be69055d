"""A running node: its settings, its store, its capabilities and the one FHIR route table.

``open_store`` is where the store gets its validator, search index, resource types and the
capabilities' tables (the store itself imports none of them). ``build_node`` assembles the route
table from the core interactions and each capability's, registers the change-log consumers and
installs the authorisation policy every route and Bundle entry is checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hutong.capability import Capability
from hutong.config import Settings
from hutong.core.caller import Caller
from hutong.fhir.rest import CORE_INTERACTIONS
from hutong.fhir.routes import Call, RouteTable
from hutong.store import Store


def open_policy(caller: Caller, permission: str, call: Call | None) -> None:
    """The node's policy: the security capability's table (``hutong/security/policy.py``).

    Raises 401 for a caller without credentials, 403 for one outside its permissions."""
    from hutong.security.policy import authorize

    authorize(caller, permission, call)


@dataclass
class Node:
    """Everything a request handler, a capability's start-up or a CLI command needs of the node."""

    settings: Settings
    store: Store
    capabilities: Sequence[Capability]
    routes: RouteTable
    #: ``authorize(caller, permission, call)`` raises 401/403 (a FhirError) when not allowed.
    authorize: Callable[[Caller, str, Call | None], None] = open_policy
    #: Long-lived objects the capabilities start (job runners, listeners), by name.
    services: dict[str, Any] = field(default_factory=dict)

    def capability(self, name: str) -> Capability | None:
        return next((c for c in self.capabilities if c.name == name), None)

    def permissions(self) -> dict[str, str]:
        """Every permission the capabilities declare, with its description."""
        out: dict[str, str] = {}
        for cap in self.capabilities:
            out.update(cap.permissions)
        return out


def open_store(settings: Settings, capabilities: Sequence[Capability], **kwargs) -> Store:
    """The store with the R4 validator, the search index and every capability's tables."""
    from hutong.fhir.resource_types import RESOURCE_TYPES
    from hutong.fhir.validation import validate_resource
    from hutong.search.index import SearchIndex

    tables = [t for cap in capabilities for t in cap.tables]
    return Store.open(settings, validator=validate_resource, index=SearchIndex(max_chain_depth=settings.max_chain_depth),
                      resource_types=RESOURCE_TYPES, tables=tables, **kwargs)


def build_node(settings: Settings, store: Store, capabilities: Sequence[Capability]) -> Node:
    """Assemble the node: route table, consumers, policy."""
    node = Node(settings, store, list(capabilities), RouteTable((), store.is_known_type))
    from hutong.security.recording import audited

    for item in CORE_INTERACTIONS:
        node.routes.add(audited(item, node))
    for cap in capabilities:
        for item in cap.fhir:
            node.routes.add(audited(item, node))
        for consumer in cap.consumers:
            store.register_consumer(consumer.name, consumer.handler, consumer.types)
        for rtype, check in cap.write_checks.items():
            node.routes.write_checks.setdefault(rtype, []).append(check)
        for rtype, guard in cap.delete_guards.items():
            node.routes.delete_guards.setdefault(rtype, []).append(guard)
    node.routes.authorize = lambda caller, permission, call: node.authorize(caller, permission, call)
    return node
