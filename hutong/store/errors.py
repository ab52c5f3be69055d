"""Database failures as the FHIR errors a client can act on.

A conflict with a concurrent write is 409 (retry the request); a lock or statement timeout, a
database that is not reachable or a pool that is exhausted is 503 with ``Retry-After`` (the node is
overloaded or the database is away: retry later). Everything else is a server error.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hutong.core.errors import FhirError
from hutong.store.engine import GateTimeout

#: PostgreSQL SQLSTATEs by meaning.
_CONFLICT = {"23505", "40001", "40P01"}  # unique violation, serialization failure, deadlock
_BUSY = {"55P03", "57014", "53300"}  # lock timeout, statement timeout, too many connections
_AWAY = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now
_AWAY_CLASSES = ("08",)  # connection exceptions

RETRY_AFTER_S = 2


def unavailable(diagnostics: str) -> FhirError:
    """503 with Retry-After: the node cannot serve this now, the client should retry later."""
    return FhirError(503, "transient", diagnostics, headers={"Retry-After": str(RETRY_AFTER_S)})


def _sqlstate(exc: BaseException) -> str | None:
    for candidate in (exc, getattr(exc, "orig", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if state:
            return state
    return None


def translate(exc: BaseException) -> FhirError | None:
    """The FHIR error for a database exception, or None when it is not one the client can act on."""
    if isinstance(exc, FhirError):
        return None
    if isinstance(exc, PoolTimeout):
        return unavailable("the node is busy (no database connection free): retry shortly")
    if isinstance(exc, GateTimeout):
        return unavailable("the node is busy (another write holds the lock): retry shortly")
    orig = getattr(exc, "orig", exc)
    state = _sqlstate(exc)
    if state in _CONFLICT or isinstance(orig, sqlite3.IntegrityError):
        return FhirError(409, "conflict", "the write conflicted with a concurrent change; retry")
    if state in _BUSY:
        return unavailable("the database is busy: retry shortly")
    if isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig):
        return unavailable("the database is busy: retry shortly")
    if _is_nul_text(orig):
        return FhirError(400, "invalid", "text may not contain the NUL character (U+0000)")
    away = state in _AWAY or (state is not None and state.startswith(_AWAY_CLASSES))
    if away or (isinstance(exc, DBAPIError) and exc.connection_invalidated) or _is_connection_failure(orig):
        err = unavailable("the database is unreachable or the connection was lost: retry shortly")
        err.connection_lost = True  # a read may be retried once on a fresh connection
        return err
    return None


def connection_lost(err: FhirError) -> bool:
    """Whether ``err`` came from a lost or refused database connection (not from a busy database)."""
    return bool(getattr(err, "connection_lost", False))


def _is_connection_failure(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.OperationalError) and _sqlstate(exc) is None


def _is_nul_text(exc: BaseException) -> bool:
    # psycopg refuses NUL in text parameters before sending them (no SQLSTATE).
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.DataError) and "NUL" in str(exc)
