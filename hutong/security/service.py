"""The security service of one node: how a request's caller is established.

``authenticate(header)`` looks, in order, at a Bearer access token, a configured trusted gateway's
key (only then are the ``X-Hutong-*`` headers believed), and a page session cookie. Anything else is
the anonymous caller, which the policy refuses with 401 everywhere but the public routes.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie

from hutong.core.caller import ANONYMOUS, ROLES, Caller
from hutong.core.errors import FhirError
from hutong.security.keys import NodeKeys
from hutong.security.tokens import TokenService

_TOKEN = re.compile(r"^[A-Za-z0-9\-\._:|/]{1,128}$")
GATEWAY_HEADER = "x-hutong-gateway-key"
#: The caller of a request whose only credential is a card's holder token (``X-Card-Token``).
CARD_HOLDER = Caller(client_id="card-holder", roles=frozenset(), auth="card-holder")
SESSION_COOKIE = "hutong_session"


def _checked(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _TOKEN.match(value):
        raise FhirError(400, "value", f"invalid {name} header")
    return value


class SecurityService:
    """Tokens, sessions, gateway trust, audit and security events of one node."""

    def __init__(self, node):
        self.node = node
        self.store = node.store
        self.settings = node.settings
        self.keys = NodeKeys(self.store)
        self.tokens = TokenService(self.store, self.settings, self.keys)
        self.gateway_key = (getattr(self.settings, "security_gateway_key", "") or "").encode()
        from hutong.security.audit import AuditTrail
        from hutong.security.events import SecurityEvents
        from hutong.security.sessions import Sessions

        self.sessions = Sessions(self.store, self.settings)
        self.audit = AuditTrail(self.store, self.settings)
        self.events = SecurityEvents(self.store)
        from hutong.security.protection import Protection

        self.protection = Protection(self.settings, self.events)
        self.audit.on_patients = self.protection.read_patients

    def authenticate(self, header: Callable[[str], str | None]) -> Caller:
        """The caller of a request, from its headers (429 when the caller is over its rate limit)."""
        caller = self._authenticate(header)
        if caller.auth in ("token", "session", "gateway"):
            from hutong.security.audit import client_address

            address = client_address.get()
            wait = self.protection.client_wait(caller.client_id, address)
            if wait:
                from hutong.security.protection import retry_after

                raise FhirError(429, "throttled", "too many requests from this client: slow down and retry later",
                                headers={"Retry-After": retry_after(wait)})
        return caller

    def _authenticate(self, header: Callable[[str], str | None]) -> Caller:
        auth = header("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return self.tokens.caller(value.strip())
            raise FhirError(401, "login", "Authorization must be a Bearer access token",
                            headers={"WWW-Authenticate": 'Bearer realm="hutong", error="invalid_request"'})
        key = header(GATEWAY_HEADER)
        if key is not None and self.gateway_key and hmac.compare_digest(key.encode(), self.gateway_key):
            return self._gateway_caller(header)
        cookie = header("cookie")
        if cookie and SESSION_COOKIE in cookie:
            session_id = _cookie(cookie, SESSION_COOKIE)
            if session_id:
                caller = self.sessions.caller(session_id)
                if caller is not None:
                    return caller
        if header("x-card-token"):
            # A health card's holder token is a credential for that card only: the card routes check
            # it against the card; the policy grants such a caller nothing else.
            return CARD_HOLDER
        return ANONYMOUS

    def _gateway_caller(self, header) -> Caller:
        roles_header = _checked("X-Hutong-Role", header("x-hutong-role"))
        roles = frozenset(r for r in (roles_header or "system").split(",") if r)
        unknown = roles - ROLES
        if unknown:
            raise FhirError(400, "value", f"unknown role {sorted(unknown)[0]!r}")
        return Caller(client_id=_checked("X-Hutong-Client", header("x-hutong-client")) or "gateway",
                      institution=_checked("X-Hutong-Institution", header("x-hutong-institution")),
                      roles=roles, tenant=_checked("X-Hutong-Tenant", header("x-hutong-tenant")),
                      patient=_checked("X-Hutong-Patient", header("x-hutong-patient")), auth="gateway")

    def start(self) -> None:
        """Background work of a running node: audit retention, and syslog forwarding when configured."""
        from hutong.security.retention import RetentionJob

        self.retention = RetentionJob(self.store, self.settings, self.keys)
        self.retention.start()
        target = (getattr(self.settings, "audit_syslog", "") or "").strip()
        self.forwarder = None
        if target:
            from hutong.security.syslog import AuditForwarder

            self.forwarder = AuditForwarder(self.store, target)
            self.events.on_record = self.forwarder.alert
            self.forwarder.start()

    def close(self) -> None:
        self.audit.close()
        if getattr(self, "retention", None) is not None:
            self.retention.stop()
        if getattr(self, "forwarder", None) is not None:
            self.forwarder.stop()


def node_identity_headers(store, tenant: str, client_id: str) -> dict[str, str]:
    """Headers a node sends to another node of the federation: its identity, and the trusted-gateway
    key they share (without a configured key the identity headers are not believed)."""
    headers = {"X-Hutong-Tenant": tenant, "X-Hutong-Client": client_id, "X-Hutong-Role": "system"}
    key = getattr(store.settings, "security_gateway_key", "")
    if key:
        headers["X-Hutong-Gateway-Key"] = key
    return headers


def _cookie(header_value: str, name: str) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(header_value)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def security_of(node) -> SecurityService:
    """The node's security service (made on first use)."""
    service = node.services.get("security")
    if service is None:
        service = node.services.setdefault("security", SecurityService(node))
    return service
