"""Sign-in pages (the first pages a person sees) and the resident's access log.

Forms carry a CSRF token: before sign-in a double-submit token (cookie ``hutong_csrf`` and the form
field must match), after sign-in the session's own token (``request.state.csrf_token``). Session
cookies are HttpOnly, SameSite=Strict and Secure whenever the node is reached over https.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.security import audit
from hutong.security.service import SESSION_COOKIE, security_of
from hutong.security.sessions import LoginRefused
from hutong.web import add_templates, redirect, render
from hutong.web.i18n import N_, gettext

add_templates("security", Path(__file__).resolve().parent / "templates")
router = APIRouter(tags=["security pages"])

CSRF_COOKIE = "hutong_csrf"
_HOME = {"operator": "/console", "auditor": "/console", "statistician": "/console", "clinician": "/workstation",
         "resident": "/portal"}
_REASONS = {
    "bad-credentials": N_("用户名、密码或动态码不正确。"),
    "totp": N_("用户名、密码或动态码不正确。"),
    "locked": N_("失败次数过多，账号已暂时锁定，请稍后再试。"),
    "locked-now": N_("失败次数过多，账号已暂时锁定，请稍后再试。"),
    "csrf": N_("表单已过期，请重新提交。"),
}


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.settings.public_url.startswith("https://")


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:500]
    return ""


@router.get("/login", response_class=HTMLResponse, summary="Sign-in page")
def login_page(request: Request, caller: Caller = Depends(permit(PUBLIC)), next: str | None = None,
               error: str | None = None):
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    request.state.csrf_token = token
    message = gettext(_REASONS[error]) if error in _REASONS else ""
    response = render(request, "security/login.html", {"next": _safe_next(next), "error": message},
                      audience="public", title=gettext("登录"), status=401 if error else 200)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login")
    return response


@router.post("/login", summary="Sign in (password and TOTP code)")
async def login_submit(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not cookie or not hmac.compare_digest(cookie, fields.get("csrf_token", "")):
        return redirect("/login?error=csrf")
    service = security_of(request.app.state.node)
    username = fields.get("username", "").strip()[:64]
    address = request.client.host if request.client else ""
    try:
        await anyio.to_thread.run_sync(service.sessions.check_login, username, fields.get("password", "")[:200],
                                       fields.get("code", "")[:10])
    except LoginRefused as exc:
        kind = "login-locked" if exc.reason.startswith("locked") else "login-failed"
        await anyio.to_thread.run_sync(service.events.record, kind, username, address, exc.reason)
        service.protection.failed_credentials(address, username or "?")
        return redirect(f"/login?error={exc.reason}" + (f"&next={_safe_next(fields.get('next'))}"
                                                        if _safe_next(fields.get("next")) else ""))
    session = await anyio.to_thread.run_sync(service.sessions.open, username)
    user = service.sessions.caller(session.session_id)
    service.audit.record(audit.Entry(audit.now_us(), "E", "login", user, address, "HOPERAT", "0",
                                     [user.patient] if user.patient else [], []))
    home = next((_HOME[r] for r in ("operator", "auditor", "statistician", "clinician", "resident")
                 if r in user.roles), "/")
    response = redirect(_safe_next(fields.get("next")) or home)
    response.set_cookie(SESSION_COOKIE, session.session_id, httponly=True, samesite="strict", secure=_secure(request),
                        max_age=service.sessions.minutes * 60, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", summary="Sign out")
async def logout(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        service = security_of(request.app.state.node)
        _, csrf = service.sessions.lookup(session_id)
        form = await request.form()
        if not csrf or not hmac.compare_digest(csrf, str(form.get("csrf_token", ""))):
            raise FhirError(403, "forbidden", "the form's CSRF token does not match the session")
        await anyio.to_thread.run_sync(service.sessions.close_session, session_id)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/portal/access-log", response_class=HTMLResponse, summary="Who opened my record (residents)")
def access_log_page(request: Request, caller: Caller = Depends(permit("security.my_access"))):
    if not caller.patient:
        raise FhirError(403, "forbidden", "only a signed-in resident has an access log")
    node = request.app.state.node
    security_of(node).audit.drain()
    rows = audit.access_log(node.store, caller.patient)
    return render(request, "security/access_log.html", {"rows": rows}, audience="resident",
                  title=gettext("谁查看了我的档案"))


#: Security event kinds as the console names them.
EVENT_LABELS = {
    "login-failed": N_("登录失败"), "login-locked": N_("账号锁定"), "token-refused": N_("令牌请求被拒"),
    "token-replay": N_("断言重放"), "unauthenticated": N_("未认证访问"), "forbidden": N_("越权访问"),
    "scraping": N_("批量抓取"), "scanning": N_("扫描探测"), "break-glass": N_("紧急访问"),
    "credential-stuffing": N_("撞库攻击"), "rate-limited": N_("请求限流"),
}
_ALARMING = frozenset({"token-replay", "scraping", "scanning", "credential-stuffing", "login-locked"})


@router.get("/console/security", response_class=HTMLResponse, summary="Security events (operators, auditors)")
def events_page(request: Request, caller: Caller = Depends(permit("security.events")),
                days: int = Query(30, ge=1, le=400)):
    from hutong.security.routes import events_summary

    events = security_of(request.app.state.node).events
    summary = events_summary(events, days)
    by_day: dict[str, dict[str, int]] = {}
    for row in summary["counts"]:
        by_day.setdefault(row["day"], {})[row["kind"]] = row["count"]
    kinds = summary["kinds"]
    shown = [k for k in kinds if summary["totals"].get(k)] or kinds[:4]
    labels = {k: gettext(EVENT_LABELS.get(k, k)) for k in kinds}
    return render(request, "security/events.html", {
        "days": days, "kinds": kinds, "totals": summary["totals"], "labels": labels, "shown": shown,
        "alarming": _ALARMING, "recent": events.recent(50),
        "days_rows": [{"day": d, "counts": c} for d, c in sorted(by_day.items(), reverse=True)],
    }, audience="console", title=gettext("安全事件"))
