"""The one place where a request's caller is established and checked.

Every route that needs to know who is calling depends on ``get_caller``. Today the node is open
on loopback: the caller is taken from the optional ``X-Hutong-*`` headers (institution, role) that
a trusted gateway or test sets, with no credentials checked. SMART Backend Services (OAuth2 client
credentials with signed JWT assertions) plugs in here, and nowhere else, when security lands.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from hutong.core.errors import FhirError

_TOKEN = re.compile(r"^[A-Za-z0-9\-\._:|/]{1,128}$")

#: Roles known to the platform; pages and masking decisions use these words.
ROLES = {"system", "operator", "clinician", "resident", "statistician", "terminal"}


@dataclass(frozen=True)
class Caller:
    """Who is calling: a client system, its institution and its role(s)."""

    client_id: str = "anonymous"
    institution: str | None = None  # Organization id of the calling institution
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"system"}))
    tenant: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles or "system" in self.roles


def _checked(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _TOKEN.match(value):
        raise FhirError(400, "value", f"invalid {name} header")
    return value


def caller_from_headers(header: Callable[[str], str | None]) -> Caller:
    """Establish the caller from request headers (``header(name)`` gives one header or None).

    The single decision point: the FastAPI dependency and the read fast path both come here."""
    roles_header = _checked("X-Hutong-Role", header("x-hutong-role"))
    roles = frozenset(r for r in (roles_header or "system").split(",") if r)
    unknown = roles - ROLES
    if unknown:
        raise FhirError(400, "value", f"unknown role {sorted(unknown)[0]!r}")
    return Caller(
        client_id=_checked("X-Hutong-Client", header("x-hutong-client")) or "anonymous",
        institution=_checked("X-Hutong-Institution", header("x-hutong-institution")),
        roles=roles,
        tenant=_checked("X-Hutong-Tenant", header("x-hutong-tenant")),
    )


def get_caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller of this request (see module docstring)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    caller = caller_from_headers(request.headers.get)
    request.state.caller = caller
    return caller
