"""ASGI middleware: page requests run in their page's language from the start.

The renderer sets the language around the template, but a page handler translates text of its own
before it renders (``title=_("智能导诊")``, error messages, labels built in Python). Without this
the handler's strings stay Chinese on an English page. The language is negotiated exactly as the
renderer does (``?lang=``, the ``hutong_lang`` cookie, ``Accept-Language``)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from hutong.web import i18n
from hutong.web.errors import is_page_path


def scope_locale(scope) -> str:
    """The language of the request in an ASGI ``scope``."""
    cookie_header = accept_language = ""
    for k, v in scope.get("headers") or []:
        if k == b"cookie":
            cookie_header = v.decode("latin-1")
        elif k == b"accept-language":
            accept_language = v.decode("latin-1")
    cookie = None
    if cookie_header:
        jar = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # noqa: BLE001 - a malformed cookie header chooses nothing
            jar = SimpleCookie()
        if i18n.COOKIE in jar:
            cookie = jar[i18n.COOKIE].value
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    lang = (query.get("lang") or [None])[0]
    return i18n.negotiate(lang, cookie, accept_language or None)


class PageLocale:
    """Sets the negotiated language for the whole handling of a page request."""

    def __init__(self, app, node=None):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            return await self.app(scope, receive, send)
        with i18n.use_locale(scope_locale(scope)):
            return await self.app(scope, receive, send)
