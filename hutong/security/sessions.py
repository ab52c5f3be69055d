"""Staff and resident sign-in for the pages: argon2id passwords, TOTP second factor (required for
operators and auditors), lockout after repeated failures, and server-side sessions whose cookie
value is kept only as a hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update

from hutong.core.caller import ROLES, Caller
from hutong.core.clock import now_us
from hutong.security.tables import security_session, security_user

#: Roles that must give a TOTP code at sign-in.
TOTP_REQUIRED = frozenset({"operator", "auditor"})
_hasher = PasswordHasher()  # argon2id with the library's current parameters
#: Verified against when the user does not exist, so that the answer takes as long either way.
_DUMMY = _hasher.hash("not-a-password")


class LoginRefused(Exception):
    """A refused sign-in; ``reason`` is a message id (``bad-credentials``, ``locked``, ``totp``)."""

    def __init__(self, reason: str, username: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.username = username


@dataclass(frozen=True)
class Session:
    session_id: str
    csrf: str
    username: str
    expires_us: int


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Users and sessions of one store."""

    def __init__(self, store, settings):
        self.store = store
        self.minutes = int(getattr(settings, "security_session_minutes", 30))
        self.max_failures = int(getattr(settings, "security_lockout_failures", 5))
        self.lock_minutes = int(getattr(settings, "security_lockout_minutes", 15))
        self._cache: dict[str, tuple[float, Caller | None, str]] = {}

    # ------------------------------------------------------------------------------ users
    def add_user(self, username: str, password: str | None, roles: str, *, display: str = "",
                 institution: str | None = None, tenant: str | None = None, patient: str | None = None,
                 totp: bool | None = None) -> str | None:
        """Create a user; returns the TOTP secret when the user has one (required for operators, auditors)."""
        wanted = frozenset(r for r in roles.split(",") if r)
        if not wanted or wanted - ROLES or "system" in wanted:
            raise ValueError(f"roles must be some of {sorted(ROLES - {'system'})}")
        if password is not None and len(password) < 10:
            raise ValueError("a password needs at least 10 characters")
        secret = pyotp.random_base32() if (totp or (totp is None and wanted & TOTP_REQUIRED)) else None
        with self.store.write() as tx:
            tx.conn.execute(insert(security_user).values(
                username=username, display=display, password_hash=_hasher.hash(password) if password else None,
                totp_secret=secret, roles=",".join(sorted(wanted)), institution=institution, tenant=tenant,
                patient=patient, failures=0, locked_until_us=0, disabled=False, created_us=now_us()))
        return secret

    def check_login(self, username: str, password: str, code: str = "") -> str:
        """Check a password (and TOTP code); returns the user name or raises ``LoginRefused``."""
        with self.store.read() as tx:
            user = tx.conn.execute(select(security_user).where(security_user.c.username == username)).first()
        if user is None or user.disabled or not user.password_hash:
            _verify(_DUMMY, password)
            raise LoginRefused("bad-credentials", username)
        now = now_us()
        if user.locked_until_us > now:
            raise LoginRefused("locked", username)
        ok = _verify(user.password_hash, password)
        roles = frozenset(user.roles.split(","))
        if ok and (user.totp_secret or roles & TOTP_REQUIRED):
            ok = bool(user.totp_secret) and pyotp.TOTP(user.totp_secret).verify(code.strip(), valid_window=1)
            reason = "totp"
        else:
            reason = "bad-credentials"
        locked = 0
        with self.store.write() as tx:
            if ok:
                tx.conn.execute(update(security_user).where(security_user.c.username == username)
                                .values(failures=0, locked_until_us=0))
            else:
                failures = user.failures + 1
                locked = now + self.lock_minutes * 60_000_000 if failures >= self.max_failures else 0
                tx.conn.execute(update(security_user).where(security_user.c.username == username)
                                .values(failures=0 if locked else failures, locked_until_us=locked))
        if locked:  # outside the transaction: raising inside it would roll the lock back
            raise LoginRefused("locked-now", username)
        if not ok:
            raise LoginRefused(reason, username)
        return username

    # ------------------------------------------------------------------------------ sessions
    def open(self, username: str) -> Session:
        """A new session for ``username`` (the cookie carries ``session_id``)."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = now_us()
        expires = now + self.minutes * 60_000_000
        with self.store.write() as tx:
            tx.conn.execute(delete(security_session).where(security_session.c.expires_us < now))
            tx.conn.execute(insert(security_session).values(id_hash=_hash(session_id), username=username, csrf=csrf,
                                                            created_us=now, expires_us=expires))
        return Session(session_id, csrf, username, expires)

    def close_session(self, session_id: str) -> None:
        with self.store.write() as tx:
            tx.conn.execute(delete(security_session).where(security_session.c.id_hash == _hash(session_id)))
        self._cache.pop(session_id, None)

    def lookup(self, session_id: str) -> tuple[Caller | None, str]:
        """The caller and CSRF token of a live session (None when expired or unknown)."""
        got = self._cache.get(session_id)
        mono = time.monotonic()
        if got is not None and got[0] > mono:
            return got[1], got[2]
        now = now_us()
        with self.store.read() as tx:
            row = tx.conn.execute(
                select(security_session.c.csrf, security_session.c.expires_us, security_user)
                .join(security_user, security_user.c.username == security_session.c.username)
                .where(security_session.c.id_hash == _hash(session_id))).first()
        caller, csrf = None, ""
        if row is not None and row.expires_us > now and not row.disabled:
            caller = Caller(client_id=row.username, institution=row.institution,
                            roles=frozenset(row.roles.split(",")), tenant=row.tenant, patient=row.patient,
                            auth="session")
            csrf = row.csrf
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[session_id] = (mono + 5.0, caller, csrf)
        return caller, csrf

    def caller(self, session_id: str) -> Caller | None:
        return self.lookup(session_id)[0]


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
