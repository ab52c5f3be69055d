"""Sign-in for the pages: argon2id passwords, TOTP for operators and auditors, HttpOnly SameSite
cookies, CSRF on the form, lockout after repeated failures (counted as security events). Both backends."""

from __future__ import annotations

import re

import httpx
import pyotp
from sqlalchemy import select

from hutong.security.events import SecurityEvents
from hutong.security.sessions import Sessions
from hutong.security.tables import security_user


def _csrf(c):
    page = c.get("/login")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def _login(c, username, password, code=""):
    return c.post("/login", data={"username": username, "password": password, "code": code, "csrf_token": _csrf(c)})


def test_operator_needs_password_and_totp(secure, server_store):
    secret = Sessions(server_store, server_store.settings).add_user("op-zhang", "correct horse battery", "operator",
                                                                    tenant="2201")
    assert secret
    with server_store.read() as tx:
        stored = tx.conn.execute(select(security_user.c.password_hash)
                                 .where(security_user.c.username == "op-zhang")).scalar()
    assert stored.startswith("$argon2id$")
    with httpx.Client(base_url=secure) as c:
        assert _login(c, "op-zhang", "correct horse battery").headers["location"].startswith("/login?error=totp")
        r = _login(c, "op-zhang", "correct horse battery", pyotp.TOTP(secret).now())
        assert r.status_code == 303 and r.headers["location"] == "/console"
        cookie = r.headers["set-cookie"]
        assert "hutong_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace(
            "SameSite=Strict", "SameSite=strict")
        who = c.get("/api/security/whoami").json()
        assert who == {"client_id": "op-zhang", "roles": ["operator"], "institution": None, "tenant": "2201",
                       "auth": "session", "scopes": None}
        # sign out needs the session's CSRF token
        assert c.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert c.get("/api/security/whoami").status_code == 200
        page = c.get("/portal/access-log")  # any page rendered for the session carries its token
        assert page.status_code == 403  # an operator has no access log of their own


def test_login_form_needs_csrf(secure, server_store):
    Sessions(server_store, server_store.settings).add_user("dr-li", "a long password", "clinician", institution="h2")
    with httpx.Client(base_url=secure) as c:
        r = c.post("/login", data={"username": "dr-li", "password": "a long password", "csrf_token": "x"})
        assert r.headers["location"] == "/login?error=csrf"
        r = _login(c, "dr-li", "a long password")
        assert r.headers["location"] == "/workstation"
        assert c.get("/api/security/whoami").json()["institution"] == "h2"


def test_lockout_after_repeated_failures(secure, server_store):
    Sessions(server_store, server_store.settings).add_user("dr-wang", "the right password", "clinician")
    with httpx.Client(base_url=secure) as c:
        for _ in range(4):
            assert "error=bad-credentials" in _login(c, "dr-wang", "wrong password").headers["location"]
        assert "error=locked-now" in _login(c, "dr-wang", "wrong password").headers["location"]
        # locked: even the right password is refused for a while
        assert "error=locked" in _login(c, "dr-wang", "the right password").headers["location"]
        assert c.get("/api/security/whoami").status_code == 401
    events = SecurityEvents(server_store)
    assert events.total("login-failed") == 4 and events.total("login-locked") == 2
    # unknown users are refused the same way
    with httpx.Client(base_url=secure) as c:
        assert "error=bad-credentials" in _login(c, "nobody", "whatever pw").headers["location"]


def test_weak_passwords_and_unknown_roles_refused(server_store):
    sessions = Sessions(server_store, server_store.settings)
    for password, roles in (("short", "clinician"), ("long enough pw", "wizard"), ("long enough pw", "system")):
        try:
            sessions.add_user("x", password, roles)
            raise AssertionError("accepted")
        except ValueError:
            pass
