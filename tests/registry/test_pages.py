"""Fever-clinic pages in headless Chromium: the resident's map and list on a phone, and the console."""

import httpx

from hutong.registry import clinics
from tests.registry.helpers import load
from tests.registry.test_fever_clinics import CHANGCHUN, _province


def test_resident_finds_the_nearest_open_clinics_on_a_phone(page_server, page_server_store, page, screenshot):
    load(page_server_store, _province(40))
    page.set_viewport_size({"width": 360, "height": 780})
    page.context.grant_permissions(["geolocation"], origin=page_server)
    page.context.set_geolocation({"latitude": CHANGCHUN[0], "longitude": CHANGCHUN[1]})
    try:
        page.goto(page_server + "/fever-clinics")
        assert "请先选择位置" in page.inner_text("main")
        page.click("#locate")
        page.wait_for_url("**/fever-clinics?lat=*")
        page.wait_for_selector("body[data-charts-ready]")
    finally:
        page.context.clear_permissions()
    with page_server_store.read() as tx:
        want = [h.service_id for h in clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=10)]
    shown = page.eval_on_selector_all("#clinic-list li.clinic", "els => els.map(e => e.dataset.service)")
    assert shown == want and len(shown) == 10
    first = page.inner_text("#clinic-list li.clinic >> nth=0")
    assert "km" in first and "开放" in first and "0431-88880000" in first and "到这里去" in first
    assert page.get_attribute("body", "data-charts-ready") == "1"
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "fever-clinics-360px")
    # the institution pauses its clinic: on reload it is gone
    r = httpx.put(f"{page_server}/api/registry/fever-clinics/{want[0]}/status", json={"status": "paused"})
    assert r.status_code == 200
    page.reload()
    shown = page.eval_on_selector_all("#clinic-list li.clinic", "els => els.map(e => e.dataset.service)")
    assert want[0] not in shown and shown[0] == want[1]
    assert page.console_errors == []


def test_district_chooser_children_filter_and_english(page_server, page_server_store, page):
    load(page_server_store, _province(40))
    page.goto(page_server + "/fever-clinics")
    page.select_option("#district", "220122")
    page.check("input[name=feature][value=children]")
    page.click("#where-form button[type=submit]")
    assert "农安县" in page.inner_text("#list-title")
    items = page.locator("#clinic-list li.clinic")
    assert items.count() > 0
    for i in range(items.count()):
        assert "儿童发热门诊" in items.nth(i).inner_text()
    page.goto(page_server + "/fever-clinics?district=220122&lang=en")
    assert "Fever clinic navigation" in page.inner_text("h1")
    bad = page.goto(page_server + "/fever-clinics?district=110101")
    assert bad.status == 400


def test_console_sets_a_clinic_status(page_server, page_server_store, page):
    load(page_server_store, _province(6))
    page.set_extra_http_headers({"X-Hutong-Role": "operator"})
    page.goto(page_server + "/console/registry/fever-clinics")
    row = page.locator("tr[data-service=s2]")
    row.locator("select").select_option("closed")
    row.locator("input[name=note]").fill("院区改造")
    row.locator("button").click()
    page.wait_for_url("**/console/registry/fever-clinics*")
    assert "已更新发热门诊状态" in page.inner_text(".flashes")
    assert "关闭" in page.inner_text("tr[data-service=s2]")
    with page_server_store.read() as tx:
        assert "s2" not in {h.service_id for h in clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=50)}
    assert page.console_errors == []
