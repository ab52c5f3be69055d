"""Protection of one node: request rate limits per client and per address, and the detectors that
turn credential stuffing, scraping and scanning into security events.

Rate limits are token buckets kept in the process (each worker process counts on its own, so a
node with N workers lets through up to N times the rate): ``HUTONG_SECURITY_RATE_ADDRESS`` requests
per second per network address (checked first, in the security middleware, for every route) and
``HUTONG_SECURITY_RATE_CLIENT`` per authenticated client (a client id, a signed-in user name),
checked once the caller is known. A bucket holds ``HUTONG_SECURITY_RATE_BURST_S`` seconds of its
rate. A refused request gets 429 as an OperationOutcome (``throttled``) with ``Retry-After``.
``HUTONG_SECURITY_RATE_EXEMPT``: ``auto`` (default) exempts loopback in development only (the test
suite, benchmarks and ``make run``); ``loopback`` always; ``none`` never. Behind a proxy the address
is the one the proxy forwards (uvicorn's ``--forwarded-allow-ips``), never the proxy's own.

Detectors count in fixed windows of ``HUTONG_SECURITY_DETECT_WINDOW_S`` seconds and raise one
security event per key and window when a threshold is crossed:

- ``credential-stuffing``: one address failing sign-in or token requests for at least
  ``HUTONG_SECURITY_STUFFING_NAMES`` distinct user names or client ids;
- ``scraping``: one caller reading at least ``HUTONG_SECURITY_SCRAPING_PATIENTS`` distinct patients
  (counted from the audit trail, off the request path);
- ``scanning``: one address drawing at least ``HUTONG_SECURITY_SCANNING_REFUSALS`` answers 401, 403
  or 404;
- ``rate-limited``: one address or client refused by a rate limit (the first refusal of the window).
"""

from __future__ import annotations

import math
import threading
import time

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


def is_loopback(address: str) -> bool:
    return address in LOOPBACK or address.startswith("127.")


class RateLimiter:
    """Token buckets by key: ``rate`` requests per second, ``burst_s`` seconds of it at once."""

    def __init__(self, rate: float, burst_s: float = 2.0, max_keys: int = 100_000):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate * max(burst_s, 0.0))
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one request of ``key``'s bucket: 0.0 when allowed, else the seconds until it is."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._buckets.clear()  # bounded memory: a flood of addresses starts them all afresh
                self._buckets[key] = [self.capacity - 1.0, now]
                return 0.0
            tokens = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / self.rate


class WindowCounter:
    """Per-key counts (or distinct values) in fixed time windows; says once when a key crosses ``limit``."""

    def __init__(self, limit: int, window_s: float):
        self.limit = int(limit)
        self.window_s = max(1.0, float(window_s))
        self._window = -1
        self._counts: dict[str, int] = {}
        self._distinct: dict[str, set] = {}
        self._flagged: set[str] = set()
        self._lock = threading.Lock()

    def _roll(self, now: float) -> None:
        window = int(now // self.window_s)
        if window != self._window:
            self._window = window
            self._counts.clear()
            self._distinct.clear()
            self._flagged.clear()

    def count(self, key: str, now: float | None = None, n: int = 1) -> int | None:
        """Add ``n`` to ``key``; the count when it has just crossed the limit (else None)."""
        if self.limit <= 0:
            return None
        with self._lock:
            self._roll(time.monotonic() if now is None else now)
            if key in self._flagged:
                return None
            total = self._counts.get(key, 0) + n
            self._counts[key] = total
            if total >= self.limit:
                self._flagged.add(key)
                self._counts.pop(key, None)
                return total
            return None

    def distinct(self, key: str, values, now: float | None = None) -> int | None:
        """Add ``values`` to ``key``'s distinct set; its size when it has just crossed the limit."""
        if self.limit <= 0:
            return None
        with self._lock:
            self._roll(time.monotonic() if now is None else now)
            if key in self._flagged:
                return None
            seen = self._distinct.setdefault(key, set())
            seen.update(values)
            if len(seen) >= self.limit:
                self._flagged.add(key)
                size = len(seen)
                del self._distinct[key]  # memory: a flagged key keeps nothing more this window
                return size
            return None


class Protection:
    """Rate limits and detectors of one node; events go to ``events.record`` (never personal data)."""

    def __init__(self, settings, events):
        self.events = events
        self.env = getattr(settings, "env", "development")
        exempt = (getattr(settings, "security_rate_exempt", "auto") or "auto").strip().lower()
        self.exempt_loopback = exempt == "loopback" or (exempt == "auto" and self.env != "production")
        burst = float(getattr(settings, "security_rate_burst_s", 2.0))
        self.by_address = RateLimiter(float(getattr(settings, "security_rate_address", 0)), burst)
        self.by_client = RateLimiter(float(getattr(settings, "security_rate_client", 0)), burst)
        window = float(getattr(settings, "security_detect_window_s", 600))
        self.stuffing = WindowCounter(int(getattr(settings, "security_stuffing_names", 10)), window)
        self.scraping = WindowCounter(int(getattr(settings, "security_scraping_patients", 1000)), window)
        self.scanning = WindowCounter(int(getattr(settings, "security_scanning_refusals", 200)), window)
        self.limited = WindowCounter(1, window)

    def exempt(self, address: str) -> bool:
        return self.exempt_loopback and is_loopback(address)

    # -------------------------------------------------------------------------------- rate limits
    def address_wait(self, address: str) -> float:
        """Seconds ``address`` must wait (0.0: go ahead)."""
        if not self.by_address.enabled or not address or self.exempt(address):
            return 0.0
        wait = self.by_address.take(address)
        if wait:
            self._limited("address:" + address, "", address)
        return wait

    def client_wait(self, client_id: str, address: str) -> float:
        """Seconds ``client_id`` must wait (0.0: go ahead)."""
        if not self.by_client.enabled or self.exempt(address):
            return 0.0
        wait = self.by_client.take(client_id)
        if wait:
            self._limited("client:" + client_id, client_id, address)
        return wait

    def _limited(self, key: str, who: str, address: str) -> None:
        if self.limited.count(key) is not None:
            self._emit("rate-limited", who, address, f"requests refused with 429 ({key.split(':')[0]} limit)")

    # -------------------------------------------------------------------------------- detectors
    def refused(self, address: str, status: int) -> None:
        """An answer 401, 403 or 404 went to ``address``."""
        if address:
            n = self.scanning.count(address)
            if n is not None:
                self._emit("scanning", "", address, f"{n} answers 401/403/404 within {int(self.scanning.window_s)} s")

    def failed_credentials(self, address: str, name: str) -> None:
        """A sign-in or token request from ``address`` for ``name`` was refused."""
        if address:
            n = self.stuffing.distinct(address, (name[:80],))
            if n is not None:
                self._emit("credential-stuffing", "", address,
                           f"refused credentials for {n} distinct names within {int(self.stuffing.window_s)} s")

    def read_patients(self, caller_id: str, patients, address: str = "") -> None:
        """``caller_id`` was shown ``patients`` (from the audit trail)."""
        if caller_id and patients:
            n = self.scraping.distinct(caller_id, patients)
            if n is not None:
                self._emit("scraping", caller_id, address,
                           f"{n} distinct patients read within {int(self.scraping.window_s)} s")

    def _emit(self, kind: str, who: str, address: str, detail: str) -> None:
        # Rare (once per key and window); in its own thread so that neither the event loop nor the
        # audit writer waits for the event's write transaction.
        threading.Thread(target=self._record, args=(kind, who, address, detail), daemon=True,
                         name="hutong-security-event").start()

    def _record(self, kind, who, address, detail) -> None:
        try:
            self.events.record(kind, who, address, detail)
        except Exception:  # noqa: BLE001 - the store may be closing; the event was logged by record()
            import logging

            logging.getLogger("hutong.security").exception("security event %s could not be written", kind)


def retry_after(wait: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(wait)))
