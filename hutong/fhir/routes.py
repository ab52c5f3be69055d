"""The one FHIR route table: every FHIR interaction this node serves, declared once.

An ``Interaction`` names a method, a path pattern relative to the FHIR base (``{type}/{id}``,
``Patient/$match``), the FHIR interaction it is, the handler that performs it, the permission it
needs and the kind of transaction it runs in. ``RouteTable`` matches a request against the table;
the HTTP layer (``hutong/api/fhir_http.py``), Bundle entries (``hutong/fhir/bundle.py``) and the
CapabilityStatement (``hutong/fhir/capability.py``) all use the same table, so an interaction
exists in all three or in none. The core interactions are declared in ``hutong/fhir/rest.py``;
capabilities add theirs through ``Capability.fhir``.

Placeholders: ``{type}`` and ``{comp}`` match a resource type; ``{id}``, ``{vid}`` and ``{name}``
any other word not starting with ``$`` or ``_`` (handlers check the id format and answer 400;
``{name}`` is another id-like word, such as an export file name).
A literal segment always beats a placeholder (``Patient/$match`` before ``{type}/{id}``).

Permissions are SMART-style: ``{type}.r`` (read), ``.s`` (search), ``.c`` (create), ``.u``
(update), ``.d`` (delete), with ``{type}`` filled from the request; operations name their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hutong.core.errors import FhirError

if TYPE_CHECKING:
    from hutong.core.caller import Caller
    from hutong.fhir.rest import FhirRequest, FhirResult
    from hutong.store.store import Store, Tx

#: The kind of database transaction the table opens for an interaction: ``read`` (a snapshot),
#: ``read-one`` (a single statement, no snapshot), ``write`` (one write transaction), ``own``
#: (the handler opens what it needs: Bundles, asynchronous jobs).
TxKind = Literal["read", "read-one", "write", "own"]
#: How the HTTP layer hands the request body to the handler: ``stream`` spools it to a temporary file
#: as it arrives (``call.req.body`` is then that file's path; the handler moves or deletes it), for large
#: documents that must not sit whole in a worker's memory.
BodyKind = Literal["none", "json", "form", "raw", "stream"]

_PLACEHOLDERS = ("{type}", "{id}", "{vid}", "{comp}", "{name}")


@dataclass
class Call:
    """One interaction being performed: the request, the matched path parameters, the transaction
    (None for ``tx="own"``), the caller and the base URL the client used."""

    interaction: Interaction
    params: dict[str, str]
    req: FhirRequest
    store: Store
    caller: Caller
    base_url: str
    tx: Tx | None = None
    #: The node's route table, for handlers that run other interactions (Bundles).
    routes: RouteTable | None = None
    #: The caller's visibility rules (city tenant, consent), set by the policy when it authorises the
    #: call; searches, ``$everything`` and exports apply it inside their SQL (``hutong/search/fence.py``).
    fence: object = None

    @property
    def res_type(self) -> str | None:
        return self.params.get("type")

    @property
    def res_id(self) -> str | None:
        return self.params.get("id")


@dataclass(frozen=True)
class Interaction:
    """One row of the route table."""

    method: str
    pattern: str
    name: str
    handler: Callable[[Call], FhirResult]
    permission: str
    tx: TxKind = "read"
    body: BodyKind = "none"
    summary: str = ""
    #: For operations: the name without ``$`` and the OperationDefinition canonical, which the
    #: CapabilityStatement lists.
    operation: str | None = None
    definition: str | None = None
    #: Allowed as a Bundle entry (needs a transaction kind that a Bundle's own transaction covers).
    in_bundle: bool = True
    #: Largest body accepted (bytes); None: ``HUTONG_MAX_RESOURCE_BYTES`` for a JSON resource, the
    #: node's ceiling ``HUTONG_MAX_BODY_BYTES`` for raw bodies (Bundles, documents).
    max_body: int | None = None
    #: The capability that declared it.
    capability: str = "fhir"
    #: Extensions the CapabilityStatement puts on the entry of the resource type this interaction
    #: belongs to (e.g. the Subscriptions Backport's ``subscriptiontopic-canonical`` on Subscription).
    resource_extensions: tuple[dict, ...] = ()
    #: ``_format`` values this interaction answers itself besides FHIR JSON (``$viewdefinition-run``:
    #: csv, ndjson, parquet); the HTTP layer answers 406 for any other non-JSON ``_format``.
    formats: frozenset[str] = frozenset()
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.pattern.split("/")) if self.pattern else ())
        if not self.permission:
            raise ValueError(f"interaction {self.method} {self.pattern} declares no permission")

    @property
    def level(self) -> str:
        """``system``, ``type`` or ``instance`` (for the CapabilityStatement)."""
        if not self.segments or self.segments[0].startswith(("$", "_")) or self.segments[0] == "metadata":
            return "system"
        if len(self.segments) >= 2 and self.segments[1] == "{id}":
            return "instance"
        return "type"

    @property
    def fixed_type(self) -> str | None:
        """The resource type a pattern names literally (``Patient/$match`` → ``Patient``)."""
        first = self.segments[0] if self.segments else ""
        return first if first[:1].isupper() else None

    @property
    def operation_type(self) -> str | None:
        """The resource type an operation belongs to: the nearest type named before the ``$`` segment
        (``Patient/{id}/Observation/$lastn`` → ``Observation``; ``Group/{id}/$export`` → ``Group``)."""
        for seg in reversed(self.segments[:-1]):
            if seg[:1].isupper():
                return seg
        return None

    def permission_for(self, params: dict[str, str]) -> str:
        """The permission with ``{type}`` filled in from the matched path."""
        perm = self.permission
        if "{" in perm:
            perm = perm.replace("{type}", params.get("type") or self.fixed_type or "*")
            perm = perm.replace("{comp}", params.get("comp") or "*")
        return perm

    @property
    def specificity(self) -> tuple[int, int]:
        literals = sum(1 for s in self.segments if s not in _PLACEHOLDERS)
        return (literals, -len(self.segments))


def _allow_all(_caller, _permission: str, _call) -> None:
    """The policy of a node without the security capability: every caller may do everything."""


class RouteTable:
    """Matches ``(method, path)`` against the declared interactions.

    ``known_type`` says whether a word is a resource type this node serves (``{type}``)."""

    def __init__(self, interactions: Iterable[Interaction], known_type: Callable[[str], bool],
                 authorize: Callable[[Caller, str, Call], None] | None = None):
        self.interactions: list[Interaction] = []
        self._known_type = known_type
        #: ``authorize(caller, permission, call)`` raises 401/403 when the caller may not perform the
        #: call; the node installs the security policy here. Bundle entries are checked one by one.
        self.authorize = authorize or _allow_all
        #: ``{type: [check(resource) -> list[Issue]]}``: capabilities' rules beyond R4's, run on every
        #: create/update/patch of that type (error issues refuse the write with 422, nothing stored).
        self.write_checks: dict[str, list[Callable[[dict], list]]] = {}
        #: ``{type: [guard(tx, stored)]}``: a guard raises FhirError to refuse a DELETE of that resource.
        self.delete_guards: dict[str, list[Callable]] = {}
        self._by_length: dict[int, list[Interaction]] = {}
        for item in interactions:
            self.add(item)

    def add(self, item: Interaction) -> None:
        """Add one interaction; a second declaration of the same method and pattern is an error."""
        for other in self.interactions:
            if other.method == item.method and other.pattern == item.pattern:
                raise ValueError(f"{item.method} {item.pattern or '/'} is declared twice "
                                 f"({other.capability} and {item.capability})")
        self.interactions.append(item)
        bucket = self._by_length.setdefault(len(item.segments), [])
        bucket.append(item)
        bucket.sort(key=lambda i: i.specificity, reverse=True)

    def _bind(self, item: Interaction, parts: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for want, got in zip(item.segments, parts, strict=True):
            if want == "{type}" or want == "{comp}":
                if not got[:1].isupper() or not self._known_type(got):
                    return None
                params["type" if want == "{type}" else "comp"] = got
            elif want in ("{id}", "{vid}", "{name}"):
                # Any other word binds, so that a malformed id is a 400 from the handler, not a 404.
                if not got or got[:1] in ("$", "_"):
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params

    def match(self, method: str, path: str) -> tuple[Interaction, dict[str, str]]:
        """The interaction for ``method`` at ``path`` (relative to the base) and its parameters.

        Raises 404 when no interaction has that path, 405 (with ``Allow``) when some have it with
        other methods. HEAD matches the GET interaction."""
        path = path.strip("/")
        parts = path.split("/") if path else []
        want = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for item in self._by_length.get(len(parts), ()):
            params = self._bind(item, parts)
            if params is None:
                continue
            if item.method == want:
                return item, params
            allowed.append(item.method)
        if allowed:
            methods = sorted(set(allowed) | ({"HEAD"} if "GET" in allowed else set()))
            raise FhirError(405, "not-supported", f"{method} is not allowed on {('/' + path)[:120]!r}; "
                            f"allowed: {', '.join(methods)}", headers={"Allow": ", ".join(methods)})
        raise FhirError(404, "not-supported", f"no FHIR interaction at {('/' + path)[:120]!r}")

    def check(self, call: Call) -> None:
        """Authorise ``call`` for its caller (raises a FhirError when refused)."""
        self.authorize(call.caller, call.interaction.permission_for(call.params), call)

    def operations(self) -> list[Interaction]:
        """Interactions that are FHIR operations (for the CapabilityStatement)."""
        return [i for i in self.interactions if i.operation]


__all__ = ["Call", "Interaction", "RouteTable", "TxKind", "BodyKind"]
