"""The one place where a request's caller is established, and the one way a route declares the
permission it needs.

``authenticate(headers)`` turns request headers into a ``Caller``; the FHIR HTTP layer and every
capability route (through ``permit``) come here and nowhere else. Until the security capability
is installed the node is open on loopback: the caller is taken from the optional ``X-Hutong-*``
headers (institution, role, tenant) that a test or trusted gateway sets, with no credentials.

``permit("card.verify")`` is a FastAPI dependency that authenticates the caller, asks the node's
policy whether it holds the permission, and returns it. Every capability route declares one
(``permit(PUBLIC)`` for open routes); ``tests/api/test_routes.py`` fails for a route without.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import Request

from hutong.core.caller import ROLES, Caller
from hutong.core.errors import FhirError

_TOKEN = re.compile(r"^[A-Za-z0-9\-\._:|/]{1,128}$")

#: The permission of routes open to everyone (discovery documents, public pages, static assets).
PUBLIC = "public"


def _checked(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _TOKEN.match(value):
        raise FhirError(400, "value", f"invalid {name} header")
    return value


def authenticate(header: Callable[[str], str | None]) -> Caller:
    """Establish the caller from request headers (``header(name)`` gives one header or None)."""
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


def request_caller(request: Request) -> Caller:
    """The caller of a Starlette/FastAPI request (established once per request)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    caller = authenticate(request.headers.get)
    request.state.caller = caller
    return caller


def permit(permission: str) -> Callable[[Request], Caller]:
    """A FastAPI dependency: the caller of this request, who must hold ``permission``.

    Use as ``caller: Caller = Depends(permit("mpi.review"))``. The returned function carries the
    permission (``.permission``) so the route list can be checked and documented."""

    # async so that FastAPI calls it inline: a sync dependency costs a thread-pool hop per request.
    async def dependency(request: Request) -> Caller:
        caller = request_caller(request)
        if permission != PUBLIC:
            request.app.state.node.authorize(caller, permission, None)
        return caller

    dependency.permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"permit_{permission.replace('.', '_').replace('*', 'all')}"
    return dependency


def route_permission(route) -> str | None:
    """The permission a FastAPI route declares through ``permit`` (None when it declares none)."""
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        dep = stack.pop()
        perm = getattr(dep.call, "permission", None)
        if perm is not None:
            return perm
        stack.extend(dep.dependencies)
    return None
