"""The console's assessment pages in Chromium: the province ranking with estimated levels, one
institution's page saying what holds it back, with its lab results without units and examples."""

from __future__ import annotations

from tests.quality.province import lab, organization, patient, visit

OPERATOR = {"X-Hutong-Role": "operator", "X-Hutong-Client": "op-li"}


def _province(store) -> str:
    for oid, name, city in (("h1", "长春市第一医院", "长春市"), ("h2", "吉林市中心医院", "吉林市"), ("h3", "四平市人民医院", "四平市")):
        store.create(organization(oid, name, city), res_id=oid)
    bad = ""
    for org in ("h1", "h2"):
        pid = store.create(patient(org, 11 if org == "h1" else 12)).stored.res_id
        store.create(visit(org, pid))
        for k in range(3):
            rid = store.create(lab(org, pid, unit=not (org == "h2" and k == 0))).stored.res_id
            bad = bad or (rid if org == "h2" and k == 0 else "")
    store.run_consumers()
    return bad


def _today() -> str:
    from hutong.core.clock import local_day, now_us

    return local_day(now_us())


def test_overview_ranks_institutions_and_the_institution_page_explains(page_server, page_server_store, page, screenshot):
    bad = _province(page_server_store)
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + f"/console/quality?day={_today()}")
    page.wait_for_selector("body[data-charts-ready]")
    ranking = page.inner_text("#ranking")
    for name in ("长春市第一医院", "吉林市中心医院", "四平市人民医院"):
        assert name in ranking
    first = page.locator("#ranking tbody tr").first.inner_text()
    assert "长春市第一医院" in first and "三级" in first  # everything it sends is coded and complete
    second = page.locator("#ranking tbody tr").nth(1).inner_text()
    assert "吉林市中心医院" in second and "二级" in second  # a lab result without a unit holds it at 二级
    last = page.locator("#ranking tbody tr").last.inner_text()
    assert "四平市人民医院" in last and "未达一级" in last  # registered, never sent
    screenshot(page, "quality-overview")

    page.click("#ranking >> text=吉林市中心医院")
    page.wait_for_selector("#level")
    assert "晋级" in page.inner_text("#level")
    assert page.locator("#missing li").count() >= 1
    row = page.locator("#rules tr", has_text="检验结果缺少单位").inner_text()
    assert "1" in row and bad in row
    assert "FHIR" in page.inner_text("#interfaces")
    screenshot(page, "quality-institution")
    assert page.console_errors == []


def test_pages_in_english(page_server, page_server_store, page):
    _province(page_server_store)
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + f"/console/quality/h1?lang=en&day={_today()}")
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "Estimated level" in text and "lab result" in text.lower()
    assert page.console_errors == []
