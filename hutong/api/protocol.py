"""uvicorn's HTTP protocol with the limits a public network needs: slow clients are cut off and one
client address cannot hold every connection.

uvicorn times out idle keep-alive connections but not a client that sends its request headers (or
its body) a byte at a time: a few thousand such connections would hold a worker's sockets and
memory for ever. ``GuardedHttpToolsProtocol`` closes a connection whose request headers are not
complete ``HUTONG_HEADER_TIMEOUT_S`` after the request began (or the connection opened), and one
whose body has not arrived ``HUTONG_BODY_TIMEOUT_S`` after its headers; it refuses a client address
its connection beyond ``HUTONG_MAX_CONNECTIONS_PER_CLIENT`` (per worker process). Use it with
``uvicorn --http hutong.api.protocol:GuardedHttpToolsProtocol`` (``hutong serve`` does).
"""

from __future__ import annotations

import logging
from collections import Counter

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hutong.config import load_settings

log = logging.getLogger("hutong.api")

_settings = load_settings()
HEADER_TIMEOUT_S = _settings.header_timeout_s
BODY_TIMEOUT_S = _settings.body_timeout_s
MAX_PER_CLIENT = _settings.max_connections_per_client

#: Open connections per client address in this process.
_OPEN: Counter = Counter()

_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/fhir+json\r\nRetry-After: 5\r\n"
             b"Connection: close\r\nContent-Length: 130\r\n\r\n"
             b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled",'
             b'"diagnostics":"too many connections"}]}')


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header and body read deadlines and a per-client connection limit."""

    _deadline = None
    _counted: str | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        addr = self.client[0] if self.client else None
        if addr is not None:
            if _OPEN[addr] >= MAX_PER_CLIENT:
                log.warning("refused a connection: %d open from one client address", _OPEN[addr])
                transport.write(_TOO_MANY)
                transport.close()
                return
            _OPEN[addr] += 1
            self._counted = addr
        self._arm(HEADER_TIMEOUT_S)

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._counted is not None:
            _OPEN[self._counted] -= 1
            if _OPEN[self._counted] <= 0:
                del _OPEN[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(HEADER_TIMEOUT_S)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(BODY_TIMEOUT_S)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete and self.cycle.more_body is False:
            return  # the request is in; the application is working on it
        if not self.transport.is_closing():
            self.transport.close()
