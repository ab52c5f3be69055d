"""ASGI middleware: page requests run in their page's language from the start.

The renderer sets the language around the template, but a page handler translates text of its own
before it renders (``title=_("智能导诊")``, error messages, labels built in Python). Without this
the handler's strings stay Chinese on an English page. The language is negotiated exactly as the
renderer does (``?lang=``, the ``hutong_lang`` cookie, ``Accept-Language``)."""

from __future__ import annotations

from hutong.web import i18n
from hutong.web.errors import is_page_path, scope_locale


class PageLocale:
    """Sets the negotiated language for the whole handling of a page request."""

    def __init__(self, app, node=None):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            return await self.app(scope, receive, send)
        with i18n.use_locale(scope_locale(scope)):
            return await self.app(scope, receive, send)
