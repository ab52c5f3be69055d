"""Phone verification-code senders (pluggable): SMS gateways implement ``send(phone, code, purpose)``.

- ``LogSender`` (default): for development and demos; logs the code with the phone masked. The code is a
  secret, so a production node must configure a real gateway.
- ``MemorySender``: keeps codes in memory (tests read them through ``last_code``).
- ``FileSender``: appends ``masked-phone<TAB>phone-hash<TAB>code`` lines to a 0600 file, for test setups where
  the server runs in another process.

Choose one with the setting ``card_sender`` (TOML key, or env ``HUTONG_CARD_SENDER``): ``log``, ``memory``,
``file:/path`` or ``module:attribute`` naming a factory taking no arguments.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
from typing import Protocol

from hutong.china.ids import mask_phone

log = logging.getLogger("hutong.card.sms")


class Sender(Protocol):
    def send(self, phone: str, code: str, purpose: str) -> None:
        """Deliver ``code`` to ``phone``; raise on delivery failure."""


class LogSender:
    """Writes the code to the log (phone masked). Development only."""

    def send(self, phone: str, code: str, purpose: str) -> None:
        log.warning("card verification code for %s (%s): %s [development log sender]", mask_phone(phone), purpose, code)


class MemorySender:
    """Keeps sent codes in memory by phone number."""

    def __init__(self):
        self._codes: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def send(self, phone: str, code: str, purpose: str) -> None:
        with self._lock:
            self._codes.setdefault(phone, []).append(code)

    def last_code(self, phone: str) -> str | None:
        with self._lock:
            codes = self._codes.get(phone)
            return codes[-1] if codes else None


class FileSender:
    """Appends codes to a private file (mode 0600)."""

    def __init__(self, path: str):
        self.path = path

    def send(self, phone: str, code: str, purpose: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            digest = hashlib.sha256(phone.encode()).hexdigest()[:16]
            os.write(fd, f"{mask_phone(phone)}\t{digest}\t{code}\n".encode())
        finally:
            os.close(fd)


def make_sender(spec: str | None) -> Sender:
    """A sender from its configuration string (see module docstring)."""
    spec = (spec or "log").strip()
    if spec == "log":
        return LogSender()
    if spec == "memory":
        return MemorySender()
    if spec.startswith("file:"):
        return FileSender(spec[5:])
    if ":" in spec:
        module, attr = spec.split(":", 1)
        return getattr(importlib.import_module(module), attr)()
    raise ValueError(f"unknown card_sender {spec!r}")
