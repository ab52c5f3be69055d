"""Flash messages: a short notice shown once on the next page after a form post (Post/Redirect/Get).

Kept in a cookie (``hutong_flash``) signed with the node's ``flash`` secret (HMAC-SHA256), holding message
ids and parameters, not translated text: the next page translates them into its own language. A cookie
that fails the check is ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hutong.web import i18n

COOKIE = "hutong_flash"
LEVELS = ("success", "info", "warning", "error")
_MAX = 3


def _key(store) -> bytes:
    from hutong.web.node_secrets import node_secret

    return node_secret(store, "flash")


def _sign(store, payload: bytes) -> str:
    mac = hmac.new(_key(store), payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def add(response: Response, message: str, level: str = "success", params: dict | None = None, *,
        store=None, request: Request | None = None) -> None:
    """Attach a flash message to ``response`` (appended to any the request still carries)."""
    if store is None:
        return
    items = _items(request) if request is not None else []
    items.append([level if level in LEVELS else "info", message[:500],
                  {k: str(v)[:200] for k, v in (params or {}).items()}])
    payload = orjson.dumps(items[-_MAX:])
    response.set_cookie(COOKIE, _sign(store, payload), max_age=120, httponly=True, samesite="lax", path="/")


def _items(request: Request) -> list:
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 4000:
        return []
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (ValueError, TypeError):
        return []
    mac, payload = data[:16], data[16:]
    want = hmac.new(_key(request.app.state.store), payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, want):
        return []
    try:
        items = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    return [x for x in items if isinstance(x, list) and len(x) == 3 and isinstance(x[1], str)
            and isinstance(x[2], dict)]


def read(request: Request) -> list[dict]:
    """The flash messages the request carries, as ``{"level", "message", "params"}`` (untranslated)."""
    return [{"level": lvl, "message": msg, "params": params} for lvl, msg, params in _items(request)]


def text(item: dict) -> str:
    """One flash message in the current language."""
    return i18n.gettext(item["message"], **item["params"]) if item["params"] else i18n.gettext(item["message"])


def clear(response: Response) -> None:
    """Drop the flash cookie (the messages were shown)."""
    response.delete_cookie(COOKIE, path="/")
