"""How a capability plugs into a Hutong node: one ``Capability`` object per capability.

Every capability (``mpi``, ``card``, ``search``, ``triage``, …) describes itself with one object in
its own ``hutong/<name>/capability.py``, and ``hutong/api/app.py:CAPABILITIES`` lists them, in
order, in one place. The node reads nothing else: there is no discovery by module name. The
extension points are the fields below; each says who reads it.

- ``fhir``: FHIR interactions (mostly operations such as ``Patient/$match``) added to the one FHIR
  route table (``hutong.fhir.routes``); the HTTP layer, Bundle entries and the CapabilityStatement
  all read that table.
- ``routers``: FastAPI routers for the capability's own HTTP API (under ``/api/<name>``) and pages;
  every route declares its permission with ``Depends(permit("<name>.<action>"))``.
- ``plain``: the few endpoints called thousands of times a second, served without FastAPI's routing
  and dependency injection (``hutong/api/plain.py``): same caller, policy, models and errors.
- ``consumers``: change-log consumers (``Consumer``), run exactly once per event by the node.
- ``nav``: entries the web layer shows in a portal's or console's navigation.
- ``cli``: a function adding the capability's commands to the ``hutong`` command.
- ``startup`` / ``shutdown``: work at node start and stop (given the ``Node``).
- ``middleware``: ASGI middleware, rarely needed; placed at the slot it names (see
  ``hutong/api/app.py:build_middleware`` for the order).
- ``permissions``: the permissions this capability's routes use, with a description each; the
  security policy grants them to roles and scopes.
- ``tables``: SQLAlchemy tables the capability keeps beside the FHIR store (created at start).
- ``write_checks``: ``{resource type: check(resource) -> list[Issue]}``, the capability's rules a
  resource of that type must meet on every FHIR create/update/patch (errors: 422, nothing stored).
- ``delete_guards``: ``{resource type: guard(tx, stored)}``; the guard raises ``FhirError`` to refuse
  a FHIR DELETE of that resource (for example records under a retention period).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # only for annotations: this module must stay import-light
    from hutong.fhir.routes import Interaction


@dataclass(frozen=True)
class Consumer:
    """A change-log consumer: ``handler(tx, events)`` runs inside the write transaction that also
    advances the consumer's position, so its database effects happen exactly once per event.
    ``types`` limits it to events of those resource types (None: every event)."""

    name: str
    handler: Callable[[Any, list], None]
    types: frozenset[str] | None = None


@dataclass(frozen=True)
class NavEntry:
    """A link in the navigation of one audience's pages.

    ``label`` is the message id (Simplified Chinese source text, translated through the web
    layer's catalog); ``permission`` hides the link from callers without it."""

    audience: Literal["resident", "doctor", "console", "public"]
    path: str
    label: str
    permission: str | None = None
    order: int = 100


@dataclass(frozen=True)
class Middleware:
    """ASGI middleware a capability adds: ``factory(app, node)`` returns the wrapped app.

    ``slot`` ``"inner"`` runs after authentication, body limits and error handling, just before
    routing (the usual place); ``"outer"`` runs before authentication (only for something that
    must see every request unauthenticated)."""

    factory: Callable[[Any, Any], Any]
    slot: Literal["inner", "outer"] = "inner"


@dataclass
class Capability:
    """One capability of the platform (see the module docstring for who reads each field)."""

    name: str
    summary: str
    fhir: Sequence[Interaction] = ()
    routers: Sequence[Any] = ()
    plain: Sequence[Any] = ()
    consumers: Sequence[Consumer] = ()
    nav: Sequence[NavEntry] = ()
    cli: Callable[[Any], None] | None = None
    startup: Callable[[Any], None] | None = None
    shutdown: Callable[[Any], None] | None = None
    middleware: Sequence[Middleware] = ()
    permissions: Mapping[str, str] = field(default_factory=dict)
    tables: Sequence[Any] = ()
    write_checks: Mapping[str, Callable[[dict], list]] = field(default_factory=dict)
    delete_guards: Mapping[str, Callable[[Any, Any], None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for perm in self.permissions:
            if not isinstance(perm, str) or not perm:
                raise ValueError(f"capability {self.name}: permission names must be non-empty strings")
