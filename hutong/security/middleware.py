"""ASGI middleware of the security capability (outer slot): the client's address for the audit trail
and security events, the rate limit per address (429 with ``Retry-After``), the scanning detector
(answers 401/403/404 counted per address), the SMART discovery document relative to the FHIR base,
and security headers on every answer."""

from __future__ import annotations

import orjson

from hutong.security.audit import client_address

_DISCOVERY = "/fhir/.well-known/smart-configuration"
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"no-referrer"),
]
_PAGE_CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
             b"connect-src 'self'; font-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
             b"form-action 'self'; frame-ancestors 'self'")


_REFUSED = frozenset({401, 403, 404})


class SecurityLayer:
    def __init__(self, app, node):
        self.app = app
        self.node = node
        self._protection = None

    def protection(self):
        if self._protection is None:
            from hutong.security.service import security_of

            self._protection = security_of(self.node).protection
        return self._protection

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        address = client[0] if client else ""
        client_address.set(address)
        protection = self.protection()
        wait = protection.address_wait(address)
        if wait:
            return await self._throttled(scope, receive, send, wait)
        if scope["path"] == _DISCOVERY and scope["method"] in ("GET", "HEAD"):
            return await self._discovery(scope, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                if message["status"] in _REFUSED:
                    protection.refused(address, message["status"])
                headers = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = [h for h in _HEADERS if h[0] not in names]
                if b"content-security-policy" not in names and any(
                        k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    extra.append((b"content-security-policy", _PAGE_CSP))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _throttled(self, scope, receive, send, wait: float):
        from hutong.api.responses import outcome_response
        from hutong.core.errors import FhirError
        from hutong.security.protection import retry_after

        response = outcome_response(FhirError(429, "throttled", "too many requests from this address: slow down "
                                              "and retry later", headers={"Retry-After": retry_after(wait)}))

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers") or []) + _HEADERS}
            await send(message)

        await response(scope, receive, with_headers)

    async def _discovery(self, scope, send):
        from hutong.security.routes import smart_configuration

        base = self.node.settings.public_url.rstrip("/")
        if not base:
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"localhost").decode("latin-1")
            base = f"{scope.get('scheme', 'http')}://{host}"
        body = orjson.dumps(smart_configuration(base))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *_HEADERS]})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
