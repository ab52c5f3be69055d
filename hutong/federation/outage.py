"""Logging a dependency that is away (the database, the broker, the province) once, not per retry.

The federation's background tasks retry every fraction of a second to a few seconds while the
database, the broker or the province is unreachable. Logging each attempt floods the log during an
outage (the node's log-volume check, ``tests/reliability/test_outage.py``); logging nothing hides
it. An ``Outage`` logs one warning when the dependency goes away (without a traceback: the cause is
known and the line says it), counts the failed attempts silently, and logs one line when it is
back, with how long it was away and how many attempts failed. The message templates are fixed and
the varying parts are arguments, so ``hutong.api.logs.RepeatFilter`` (keyed on the template) also
collapses repeats should two tasks report the same thing.

Only exception class names and the store's own diagnostics are logged: an exception's text can
quote a statement's parameters, which may hold personal data.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hutong.core.clock import now_us
from hutong.core.errors import FhirError

#: The longest exception text kept (status APIs show it; the log line is shorter still).
ERROR_CHARS = 300


def describe(exc: BaseException) -> str:
    """A short description of a failure for the log and the status API (no statement parameters)."""
    if isinstance(exc, FhirError):  # the store's translation of a database failure: a fixed diagnostic
        return f"{exc.status} {exc.diagnostics}"[:ERROR_CHARS]
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "[SQL:" in text or "parameters" in text:  # a raw database error could quote resource content
        text = ""
    return f"{type(exc).__name__}: {text}"[:ERROR_CHARS] if text else type(exc).__name__


def is_database_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the store saying the database is busy, unreachable or lost (503)."""
    if isinstance(exc, FhirError):
        return exc.status == 503
    return isinstance(exc, (DBAPIError, PoolTimeout))


class Outage:
    """One dependency of one task: ``failed(exc)`` on each failed attempt, ``ok()`` after a success."""

    def __init__(self, log: logging.Logger, what: str, consequence: str = ""):
        self.log = log
        self.what = what
        self.consequence = consequence
        self.since_us = 0
        self.failures = 0
        self.last_error = ""

    @property
    def down(self) -> bool:
        return self.since_us != 0

    def failed(self, exc: BaseException) -> bool:
        """Record a failed attempt; logs (and returns True) only for the first of an outage."""
        self.last_error = describe(exc)
        self.failures += 1
        if self.since_us:
            return False
        self.since_us = now_us()
        if self.consequence:
            self.log.warning("%s unavailable (%s); %s; retrying quietly until it is back", self.what,
                             self.last_error[:200], self.consequence)
        else:
            self.log.warning("%s unavailable (%s); retrying quietly until it is back", self.what,
                             self.last_error[:200])
        return True

    def ok(self) -> None:
        """Record a success; logs once when it ends an outage."""
        if self.since_us:
            self.log.info("%s back after %.1f s (%d failed attempts)", self.what, (now_us() - self.since_us) / 1e6,
                          self.failures)
        self.since_us = 0
        self.failures = 0
        self.last_error = ""
