"""The one place where a request's caller is established, and the one way a route declares the
permission it needs.

``authenticate(header, node)`` turns request headers into a ``Caller``; the FHIR HTTP layer, the
plain routes and every capability route (through ``permit``) come here and nowhere else. The node's
security service (``hutong/security/service.py``) checks a Bearer access token (SMART Backend
Services, ``POST /auth/token``), a configured trusted gateway's key (only then are ``X-Hutong-*``
headers believed) or a page session; anything else is the anonymous caller, refused with 401 on
every route but the public ones.

``permit("card.verify")`` is a FastAPI dependency that authenticates the caller, asks the node's
policy whether it holds the permission, and returns it. Every capability route declares one
(``permit(PUBLIC)`` for open routes); ``tests/api/test_routes.py`` fails for a route without.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from hutong.core.caller import ANONYMOUS, Caller

#: The permission of routes open to everyone (discovery documents, public pages, static assets).
PUBLIC = "public"


def authenticate(header: Callable[[str], str | None], node=None) -> Caller:
    """Establish the caller from request headers (``header(name)`` gives one header or None).

    Without a node there is nothing to check credentials against: the caller is anonymous."""
    if node is None:
        return ANONYMOUS
    from hutong.security.service import security_of

    return security_of(node).authenticate(header)


def request_caller(request: Request) -> Caller:
    """The caller of a Starlette/FastAPI request (established once per request)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    node = request.app.state.node
    caller = authenticate(request.headers.get, node)
    request.state.caller = caller
    if caller.auth == "session":  # forms of a signed-in person carry the session's CSRF token
        from hutong.security.service import SESSION_COOKIE, security_of

        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            request.state.csrf_token = security_of(node).sessions.lookup(session_id)[1]
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
