"""Forwarding of the audit trail and security events to a syslog server (RFC 5424).

``HUTONG_AUDIT_SYSLOG``: ``udp://host:port``, ``tcp://host:port`` (RFC 6587 octet-counted frames) or
``host:port`` (UDP). Each AuditEvent goes as one message: facility 13 (log audit), severity 6
(informational), APP-NAME ``hutong``, MSGID ``audit``, structured data
``[hutong@32473 seq="…" action="…" outcome="…"]``, and the event's canonical JSON (the text the hash
chain covers) as the UTF-8 message. Security events go with facility 4 (security/authorization),
severity 4 (warning), MSGID ``security``.

The forwarder follows the ``audit_event`` table in order (one thread, every second), so events
written in a write's transaction are sent only once committed, and the order is the chain's. At
start it begins at the current head: events appended while a node was down are not re-sent by it
(the table and ``hutong audit verify`` remain the record). A server that cannot be reached is
retried; events are kept in the table meanwhile.
"""

from __future__ import annotations

import logging
import socket
import threading

from sqlalchemy import func, select

from hutong.core.clock import now_us
from hutong.security.tables import audit_event

log = logging.getLogger("hutong.security.syslog")

AUDIT_PRI = 13 * 8 + 6      # log audit, informational
SECURITY_PRI = 4 * 8 + 4    # security/authorization, warning
ENTERPRISE = "hutong@32473"  # 32473: the example enterprise number of RFC 5612 (no number is registered)
BOM = b"\xef\xbb\xbf"
MAX_UDP = 60_000


def parse_target(text: str) -> tuple[str, str, int]:
    """(transport, host, port) of a ``HUTONG_AUDIT_SYSLOG`` value; ValueError when malformed."""
    value = text.strip()
    transport = "udp"
    if "://" in value:
        transport, value = value.split("://", 1)
        transport = transport.lower()
        if transport not in ("udp", "tcp"):
            raise ValueError(f"syslog transport must be udp or tcp, not {transport!r}")
    host, sep, port = value.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"syslog target must be host:port, got {text!r}")
    return transport, host.strip("[]"), int(port)


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def message(pri: int, msgid: str, body: bytes, sd: dict[str, str], ts_us: int | None = None,
            hostname: str | None = None) -> bytes:
    """One RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME hutong PROCID MSGID [SD] BOM MSG``."""
    import os

    from hutong.core.clock import instant

    stamp = instant(ts_us if ts_us is not None else now_us()).replace("+00:00", "Z")
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "-")
    params = " ".join(f'{k}="{_sd_value(v)}"' for k, v in sd.items())
    header = f"<{pri}>1 {stamp} {host} hutong {os.getpid()} {msgid} [{ENTERPRISE} {params}] "
    return header.encode() + BOM + body


class SyslogSender:
    """A connection to the syslog server (reconnects after a failure)."""

    def __init__(self, target: str):
        self.transport, self.host, self.port = parse_target(target)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            if self.transport == "udp":
                sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
                sock.connect((self.host, self.port))
            else:
                sock = socket.create_connection((self.host, self.port), timeout=5)
            self._sock = sock
        return self._sock

    def send(self, messages: list[bytes]) -> None:
        """Send ``messages`` in order; raises OSError (after closing the connection) when it fails."""
        with self._lock:
            try:
                sock = self._socket()
                if self.transport == "udp":
                    for msg in messages:
                        sock.send(msg[:MAX_UDP])
                else:
                    sock.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
            except OSError:
                self.close()
                raise

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


class AuditForwarder:
    """Sends every audit event appended after start to the syslog server, in chain order."""

    def __init__(self, store, target: str, interval: float = 1.0):
        self.store = store
        self.sender = SyslogSender(target)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hutong-audit-syslog", daemon=True)
        with store.read() as tx:
            self.position = tx.conn.execute(select(func.coalesce(func.max(audit_event.c.seq), 0))).scalar() or 0
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.forward()
        except OSError:
            log.warning("syslog server unreachable at shutdown: audit events after %d not forwarded", self.position)
        self.sender.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                while self.forward() >= 1000:
                    pass
            except OSError as exc:
                log.warning("syslog forwarding failed (%s); retrying", exc)
            except Exception:  # noqa: BLE001 - keep forwarding alive; the next round retries
                log.exception("syslog forwarding failed")

    def forward(self, limit: int = 1000) -> int:
        """Send the next events after ``position``; returns how many were sent."""
        t = audit_event.c
        with self.store.read() as tx:
            rows = tx.conn.execute(select(t.seq, t.ts_us, t.action, t.outcome, t.event).where(t.seq > self.position)
                                   .order_by(t.seq).limit(limit)).all()
        if not rows:
            return 0
        self.sender.send([message(AUDIT_PRI, "audit", r.event.encode(),
                                  {"seq": str(r.seq), "action": r.action, "outcome": r.outcome}, r.ts_us)
                          for r in rows])
        self.position = rows[-1].seq
        self.sent += len(rows)
        return len(rows)

    def alert(self, kind: str, who: str, address: str, detail: str) -> None:
        """Send one security event now (never personal data: ``who`` as the events page shows it)."""
        from hutong.security.events import shown_name

        try:
            self.sender.send([message(SECURITY_PRI, "security", detail.encode(),
                                      {"kind": kind, "who": shown_name(who), "address": address})])
        except OSError as exc:
            log.warning("syslog alert %s not sent (%s)", kind, exc)
