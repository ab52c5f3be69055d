"""Errors on pages: a browser asking for a page gets an HTML error page, an API client its OperationOutcome.

The node answers every error as an OperationOutcome (``hutong/api/app.py``), which is right for APIs and
wrong for a person. ``HtmlErrors`` (ASGI middleware, ``inner`` slot) looks at requests for page paths
whose ``Accept`` prefers HTML; when such a request is answered with a 4xx/5xx FHIR JSON body, it
replaces the body with the error page in the request's language, keeping the status and headers such
as ``Allow`` and ``WWW-Authenticate``. API paths (``/fhir``, ``/api``, documentation, assets) pass
untouched.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs

import orjson

from hutong.web import i18n

_API_PREFIXES = ("/fhir", "/api/", "/openapi.json", "/docs", "/redoc", "/static/", "/web/static/", "/health")
_MAX_BODY = 256 * 1024

_HEADINGS = {
    400: (i18n.N_("请求有误"), i18n.N_("页面收到的内容无法处理，请检查后重试。")),
    401: (i18n.N_("请先登录"), i18n.N_("打开此页面需要先登录。")),
    403: (i18n.N_("没有权限"), i18n.N_("您的账号没有打开此页面或执行此操作的权限。")),
    404: (i18n.N_("未找到"), i18n.N_("要找的页面或记录不存在，可能已被删除或链接有误。")),
    405: (i18n.N_("不支持的操作"), i18n.N_("此页面不支持这种请求方式。")),
    409: (i18n.N_("操作冲突"), i18n.N_("记录的状态已经改变，请刷新页面后重试。")),
    410: (i18n.N_("已失效"), i18n.N_("此链接或验证码已失效，请重新获取。")),
    413: (i18n.N_("内容过大"), i18n.N_("上传的内容超过了允许的大小。")),
    422: (i18n.N_("无法处理"), i18n.N_("内容格式正确，但不符合业务规则。")),
    429: (i18n.N_("请求过于频繁"), i18n.N_("请稍后再试。")),
}
_SERVER = (i18n.N_("服务暂时不可用"), i18n.N_("服务器出现问题，已记录。请稍后再试。"))


def is_page_path(path: str) -> bool:
    """Whether ``path`` is a page (not an API, documentation or asset path)."""
    return not any(path == p.rstrip("/") or path.startswith(p) for p in _API_PREFIXES)


def wants_html(accept: str) -> bool:
    """Whether an ``Accept`` header asks for HTML before JSON (what a browser navigation sends)."""
    if not accept:
        return False
    accept = accept.lower()
    html = accept.find("text/html")
    if html < 0:
        return False
    js = accept.find("json")
    return js < 0 or html < js


def scope_locale(scope) -> str:
    """The language of the request in an ASGI ``scope`` (``?lang=``, the cookie, ``Accept-Language``),
    negotiated as the renderer does."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    cookie = None
    if "cookie" in headers:
        try:
            jar = SimpleCookie(headers["cookie"])
            cookie = jar[i18n.COOKIE].value if i18n.COOKIE in jar else None
        except Exception:  # noqa: BLE001 - a malformed cookie header only loses the language choice
            cookie = None
    return i18n.negotiate((query.get("lang") or [None])[0], cookie, headers.get("accept-language"))


def error_page(scope, status: int, diagnostics: str | None) -> bytes:
    """The HTML of the error page for ``status`` (public layout, the request's language)."""
    from hutong.web.render import LAYOUTS, environment

    locale = scope_locale(scope)
    heading, explanation = _HEADINGS.get(status, _SERVER if status >= 500 else _HEADINGS[400])
    layout, audience_name, _home = LAYOUTS["public"]
    with i18n.use_locale(locale):
        ctx = {
            "request": None, "caller": None, "audience": "public", "layout": layout,
            "audience_name": i18n.gettext(audience_name), "home": "/", "lang": locale, "flashes": [],
            "title": i18n.gettext(heading), "heading": i18n.gettext(heading),
            "explanation": i18n.gettext(explanation), "diagnostics": diagnostics if status < 500 else None,
            "status": status, "nav": [], "csrf_field": lambda: "",
            "lang_links": [{"locale": loc, "name": i18n.NATIVE_NAMES[loc], "url": f"?lang={loc}",
                            "current": loc == locale} for loc in i18n.LOCALES],
        }
        return environment().get_template("web/error.html").render(ctx).encode()


def _diagnostics(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    texts = [str(i.get("diagnostics"))[:300] for i in doc.get("issue") or [] if isinstance(i, dict)
             and i.get("diagnostics")]
    return "; ".join(texts[:3]) or None


class HtmlErrors:
    """ASGI middleware: HTML error pages for browser requests to page paths (see the module docstring)."""

    def __init__(self, app, node=None):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            return await self.app(scope, receive, send)
        accept = ""
        for k, v in scope.get("headers") or []:
            if k == b"accept":
                accept = v.decode("latin-1")
        if not wants_html(accept):
            return await self.app(scope, receive, send)
        held: dict | None = None
        chunks: list[bytes] = []

        async def intercept(message):
            nonlocal held
            if message["type"] == "http.response.start":
                ctype = b""
                for k, v in message.get("headers") or []:
                    if k.lower() == b"content-type":
                        ctype = v.lower()
                if message["status"] >= 400 and b"json" in ctype:
                    held = message
                    return
                await send(message)
                return
            if held is None:
                await send(message)
                return
            if held.get("done"):
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body") and sum(map(len, chunks)) < _MAX_BODY:
                return
            status = held["status"]
            html = error_page(scope, status, _diagnostics(b"".join(chunks)))
            keep = [(k, v) for k, v in held.get("headers") or []
                    if k.lower() not in (b"content-type", b"content-length", b"content-encoding")]
            await send({"type": "http.response.start", "status": status, "headers": keep + [
                (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(html)).encode()),
                (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": html})
            held = {"done": True, "status": status}

        await self.app(scope, receive, intercept)
