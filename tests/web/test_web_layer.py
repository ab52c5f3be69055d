"""The web layer without a browser: language choice, the catalog, assets and caching, charts, errors."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.testclient import TestClient

from hutong.web import catalog, charts, i18n


def test_language_is_chosen_by_query_then_cookie_then_accept_language():
    assert i18n.negotiate(None, None, None) == "zh-CN"
    assert i18n.negotiate(None, None, "en-GB,en;q=0.8") == "en"
    assert i18n.negotiate(None, None, "fr-FR, en;q=0.5, zh;q=0.9") == "zh-CN"  # q-values decide
    assert i18n.negotiate(None, "en", "zh-CN") == "en"
    assert i18n.negotiate("zh", "en", "en") == "zh-CN"
    assert i18n.negotiate("xx", "bogus", "de") == "zh-CN"  # nothing usable: Chinese


def test_gettext_translates_in_the_current_language_and_falls_back_to_chinese():
    with i18n.use_locale("en"):
        assert i18n.gettext("跳到主要内容") == "Skip to main content"
        assert i18n.gettext("一个没有翻译的句子") == "一个没有翻译的句子"
    with i18n.use_locale("zh-CN"):
        assert i18n.gettext("跳到主要内容") == "跳到主要内容"


def test_every_page_string_has_an_english_translation():
    used = catalog.extract_messages()
    assert "跳到主要内容" in used and "概览" in used  # templates and navigation labels are both collected
    missing = catalog.missing_translations(used=used)
    assert missing == [], f"run `hutong web catalog` and translate: {missing[:10]}"


def test_chart_markup_carries_options_as_json_and_a_fallback_table():
    html = charts.chart(charts.line_chart(["3-01", "3-02"], {"血糖": [5.2, 7.9]}, unit="mmol/L", band=(3.9, 6.1)),
                        label="血糖趋势")
    assert isinstance(html, Markup)
    assert 'data-chart="{&#34;' in html and 'aria-label="血糖趋势"' in html
    assert "<td>7.9</td>" in html and "<th scope=\"row\">3-02</th>" in html
    assert "<script" not in html and "style=" not in html
    m = charts.chart(charts.jilin_map({"长春市": 3}, name="n"), label="map", map_name="jilin")
    assert 'data-map="jilin"' in m and "长春市" in m
    # Text in options is escaped (no markup injection through a label).
    evil = charts.chart(charts.bar_chart(["<b>x</b>"], {"a": [1]}), label="<script>")
    assert "<b>x</b>" not in evil and "<script>" not in evil


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_assets_are_served_with_cache_headers_and_etags(server):
    home = httpx.get(server + "/", headers={"Accept": "text/html"})
    assert home.status_code == 200 and home.headers["cache-control"] == "no-store"
    urls = re.findall(r'(?:href|src|data-echarts|data-geo-jilin)="(/web/static/[^"]+)"', home.text)
    assert any("hutong.css" in u for u in urls) and any("echarts.min.js" in u for u in urls)
    for url in urls:
        r = httpx.get(server + url.replace("&amp;", "&"))
        assert r.status_code == 200, url
        assert "immutable" in r.headers["cache-control"]
        again = httpx.get(server + url, headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
    plain = httpx.get(server + "/web/static/hutong.js")
    assert plain.headers["cache-control"] == "public, max-age=3600"
    assert plain.headers["content-type"].startswith("application/javascript")
    geo = httpx.get(server + "/web/static/geo/jilin_cities.json").json()
    assert len(geo["features"]) == 9
    assert httpx.get(server + "/web/static/../capability.py").status_code == 404
    assert httpx.get(server + "/web/static/geo/build_geo.py").status_code == 404  # only data, never code


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pages_do_not_use_inline_script_or_style(server):
    for path in ("/", "/web/ui", "/console", "/portal", "/workstation", "/web/about"):
        html = httpx.get(server + path, headers={"Accept": "text/html"}).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert "<style" not in html and not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers
        assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html, path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_language_switch_sets_a_cookie_and_english_pages_are_english(server):
    with httpx.Client(base_url=server, headers={"Accept": "text/html"}) as c:
        r = c.get("/console?lang=en")
        assert r.headers["content-language"] == "en" and '<html lang="en">' in r.text
        assert "Operations console" in r.text and "Overview" in r.text
        assert "hutong_lang=en" in r.headers["set-cookie"]
        again = c.get("/console")  # the cookie keeps the choice
        assert '<html lang="en">' in again.text
    r = httpx.get(server + "/console", headers={"Accept": "text/html", "Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in r.text
    assert '<html lang="zh-CN">' in httpx.get(server + "/console", headers={"Accept": "text/html"}).text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_errors_are_pages_for_browsers_and_operation_outcomes_for_clients(server):
    r = httpx.get(server + "/no/such/page", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<h1>未找到</h1>" in r.text
    r = httpx.get(server + "/no/such/page?lang=en", headers={"Accept": "text/html"})
    assert "<h1>Not found</h1>" in r.text
    r = httpx.get(server + "/no/such/page", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    # API paths keep OperationOutcomes even for a browser.
    r = httpx.get(server + "/fhir/Patient/nope", headers={"Accept": "text/html"})
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    # A role the node does not know is a 400, shown as a page.
    r = httpx.get(server + "/console", headers={"Accept": "text/html", "X-Hutong-Role": "wizard"})
    assert r.status_code == 400 and "请求有误" in r.text and "wizard" in r.text


def test_every_web_route_declares_a_permission():
    from hutong.api.caller import route_permission
    from hutong.web.routes import router

    for route in router.routes:
        assert route_permission(route) is not None, route.path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_navigation_is_filtered_by_permission(server_store):
    from hutong.api.app import create_app
    from hutong.core.caller import Caller
    from hutong.core.errors import FhirError
    from hutong.web.render import navigation

    app = create_app(store=server_store)
    node = app.node

    def policy(caller, permission, call):
        if permission == "web.console" and not caller.has_role("operator"):
            raise FhirError(403, "forbidden", "no")

    node.authorize = policy
    scope = {"type": "http", "path": "/console", "query_string": b"", "headers": [], "app": type("A", (), {
        "state": type("S", (), {"node": node})()})()}
    req = Request(scope)
    clinician = Caller(roles=frozenset({"clinician"}))
    operator = Caller(roles=frozenset({"operator"}))
    with i18n.use_locale("zh-CN"):
        assert "/console" not in [n["path"] for n in navigation(req, clinician, "console")]
        items = navigation(req, operator, "console")
    assert items[0] == {"path": "/console", "label": "概览", "active": True}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_flash_messages_are_signed_and_shown_once(server_store):
    from hutong.api.app import create_app
    from hutong.web import redirect, render

    # A form post and the page it redirects to, as a capability would write them.
    router = APIRouter()

    @router.post("/t/do")
    def do(request: Request):
        return redirect("/t/done", "已冻结健康卡 %(card)s", request=request, card="C123")

    @router.get("/t/done")
    def done(request: Request):
        return render(request, "web/error.html", {"heading": "h", "explanation": "e", "diagnostics": None,
                                              "status": 200}, audience="public")

    app = create_app(store=server_store)
    _fastapi_of(app).include_router(router)
    with TestClient(app) as client:
        r = client.post("/t/do", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/t/done"
        cookie = r.cookies.get("hutong_flash")
        assert cookie
        page = client.get("/t/done", headers={"Accept": "text/html"})
        assert "已冻结健康卡 C123" in page.text
        assert client.cookies.get("hutong_flash") is None  # shown once
        assert "已冻结健康卡" not in client.get("/t/done").text
        client.cookies.set("hutong_flash", cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB"))
        assert "已冻结健康卡" not in client.get("/t/done").text  # a tampered cookie is ignored


def _fastapi_of(app):
    """The FastAPI application inside the node's middleware stack."""
    seen = app
    for _ in range(20):
        if hasattr(seen, "include_router"):
            return seen
        seen = getattr(seen, "api", None) or getattr(seen, "app", None)
    raise AssertionError("no FastAPI app found")
