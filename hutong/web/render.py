"""Rendering a page: one Jinja2 environment, a layout per audience, navigation from the capabilities.

A capability's page route::

    from hutong.web import render, add_templates
    add_templates("triage", Path(__file__).parent / "templates")   # once, at import

    @router.get("/triage", response_class=HTMLResponse)
    def triage_page(request: Request, caller: Caller = Depends(permit("triage.ask"))):
        return render(request, "triage/ask.html", {"answer": None}, audience="resident", title=_("智能导诊"))

and ``triage/templates/ask.html`` starts with ``{% extends layout %}`` and fills ``{% block content %}``.
See ``docs/web.md`` for the whole API (macros, charts, flash messages, errors).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from hutong.china.ids import mask_name, mask_phone, mask_resident_id
from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI, local_time, to_us
from hutong.core.errors import FhirError
from hutong.web import charts, i18n
from hutong.web import flash as flash_mod
from hutong.web.assets import asset_url

Audience = Literal["resident", "doctor", "console", "public"]
AUDIENCES: tuple[str, ...] = ("resident", "doctor", "console", "public")

_HERE = Path(__file__).resolve().parent
_prefixes: dict[str, FileSystemLoader] = {"web": FileSystemLoader(str(_HERE / "templates"))}
_env: Environment | None = None
_lock = threading.Lock()

#: Audience → (layout template, the audience's name shown in the header, its home page).
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "resident": ("web/layouts/resident.html", i18n.N_("居民健康服务"), "/portal"),
    "doctor": ("web/layouts/doctor.html", i18n.N_("医生工作站"), "/workstation"),
    "console": ("web/layouts/console.html", i18n.N_("运营管理平台"), "/console"),
    "public": ("web/layouts/public.html", i18n.N_("互通健康信息平台"), "/"),
}


def add_templates(prefix: str, folder: Path) -> None:
    """Make the templates of ``folder`` available as ``"<prefix>/<name>.html"`` (one prefix per capability).

    Call it at import time of your routes module. Templates extend ``layout`` and may import the shared
    macros: ``{% import "web/macros.html" as ui %}``."""
    prefix = prefix.strip("/")
    if not prefix or "/" in prefix:
        raise ValueError("template prefix must be one word, e.g. the capability's name")
    if prefix == "web" and Path(folder).resolve() != _HERE / "templates":
        raise ValueError("the 'web' template prefix belongs to the web layer")
    global _env
    with _lock:
        _prefixes[prefix] = FileSystemLoader(str(Path(folder).resolve()))
        if _env is not None:
            _env.loader = _loader()


def _loader():
    return ChoiceLoader([PrefixLoader(dict(_prefixes))])


def environment() -> Environment:
    """The one Jinja2 environment of the pages (autoescaping, the i18n extension, the shared filters)."""
    global _env
    if _env is not None:
        return _env
    with _lock:
        if _env is None:
            env = Environment(loader=_loader(), autoescape=select_autoescape(("html", "xml"), default=True),
                              extensions=["jinja2.ext.i18n"], undefined=StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, auto_reload=False)
            env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
            env.filters.update(FILTERS)
            env.globals.update({"asset": asset_url, "N_": i18n.N_, "flash_text": flash_mod.text,
                                "chart": charts.chart, "line_chart": charts.line_chart, "bar_chart": charts.bar_chart,
                                "pie_chart": charts.pie_chart, "jilin_map": charts.jilin_map})
            _env = env
    return _env


# ---------------------------------------------------------------------------------------------- filters
def show_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A FHIR instant/dateTime (or µs since the epoch) as Asia/Shanghai local time; dates stay dates."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        return local_time(value, fmt)
    text = str(value)
    if len(text) <= 10:  # a date, a year-month or a year: no time zone to convert
        return text
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return local_time(to_us(dt), fmt)


def show_date(value: Any) -> str:
    """Only the Asia/Shanghai calendar day of a FHIR date/dateTime."""
    return show_time(value, "%Y-%m-%d")[:10]


def _json_attr(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


FILTERS = {
    "local_time": show_time, "local_date": show_date, "mask_id": mask_resident_id, "mask_phone": mask_phone,
    "mask_name": mask_name, "tojson_attr": _json_attr,
}


# ---------------------------------------------------------------------------------------------- navigation
def allowed(request: Request, caller: Caller, permission: str | None) -> bool:
    """Whether ``caller`` holds ``permission`` under the node's policy (no error raised)."""
    if not permission or permission == "public":
        return True
    node = request.app.state.node
    try:
        node.authorize(caller, permission, None)
    except FhirError:
        return False
    return True


def navigation(request: Request, caller: Caller, audience: str) -> list[dict]:
    """The audience's navigation from every capability's ``nav`` entries the caller may open."""
    node = request.app.state.node
    path = request.url.path
    items = []
    for cap in node.capabilities:
        for entry in cap.nav:
            if entry.audience != audience or not allowed(request, caller, entry.permission):
                continue
            items.append((entry.order, entry.path, entry.label))
    items.sort(key=lambda x: (x[0], x[1]))
    out = []
    best = max((len(p) for _o, p, _l in items if path == p or path.startswith(p.rstrip("/") + "/")), default=-1)
    for _order, p, label in items:
        active = len(p) == best and (path == p or path.startswith(p.rstrip("/") + "/"))
        out.append({"path": p, "label": i18n.gettext(label), "active": active})
    return out


# ---------------------------------------------------------------------------------------------- rendering
def request_locale(request: Request) -> str:
    """The language of ``request`` (``?lang=``, cookie, ``Accept-Language``)."""
    return i18n.negotiate(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE),
                          request.headers.get("accept-language"))


def _switch_url(request: Request, locale: str) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", locale)]
    return request.url.path + "?" + urlencode(query)


def _caller(request: Request) -> Caller | None:
    return getattr(request.state, "caller", None)


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           audience: Audience = "public", title: str = "", status: int = 200,
           headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` in the layout of ``audience`` and return the HTML response.

    The template sees ``context`` plus: ``layout`` (extend it), ``title``, ``caller``, ``nav``, ``lang``,
    ``lang_links``, ``flashes``, ``audience``, ``request``, ``csrf_field()``. Pages are never cached by
    shared caches (``Cache-Control: no-store``: they show personal data)."""
    if audience not in LAYOUTS:
        raise ValueError(f"unknown audience {audience!r}")
    locale = request_locale(request)
    caller = _caller(request)
    layout, audience_name, home = LAYOUTS[audience]
    flashes = flash_mod.read(request)
    with i18n.use_locale(locale):
        ctx: dict[str, Any] = {
            "request": request, "caller": caller, "audience": audience, "layout": layout,
            "audience_name": i18n.gettext(audience_name), "home": home, "title": title,
            "lang": locale, "flashes": flashes,
            "lang_links": [{"locale": loc, "name": i18n.NATIVE_NAMES[loc], "url": _switch_url(request, loc),
                            "current": loc == locale} for loc in i18n.LOCALES],
            "nav": navigation(request, caller, audience) if caller is not None else [],
            "csrf_field": lambda: csrf_field(request),
        }
        ctx.update(context or {})
        html = environment().get_template(template).render(ctx)
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store",
                                                               "Content-Language": locale, **(headers or {})})
    if request.query_params.get("lang") and i18n.normalize(request.query_params.get("lang")):
        response.set_cookie(i18n.COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True)
    if flashes:
        flash_mod.clear(response)
    return response


def csrf_field(request: Request) -> Markup:
    """The hidden CSRF input of a form, once the security capability sets ``request.state.csrf_token``."""
    token = getattr(request.state, "csrf_token", None)
    if not token:
        return Markup("")
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)


def redirect(url: str, message: str | None = None, level: str = "success", *, request: Request | None = None,
             **params) -> RedirectResponse:
    """A 303 redirect after a form post (Post/Redirect/Get), optionally with a flash message.

    ``message`` is a catalog message id (zh-CN source text) with ``%(name)s`` placeholders filled from
    ``params`` when the next page is rendered, in that page's language."""
    response = RedirectResponse(url, status_code=303)
    if message:
        store = request.app.state.store if request is not None else None
        flash_mod.add(response, message, level, params, store=store, request=request)
    return response


__all__ = ["render", "add_templates", "redirect", "environment", "navigation", "allowed", "request_locale",
           "show_time", "show_date", "csrf_field", "LAYOUTS", "AUDIENCES"]
