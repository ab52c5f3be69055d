"""Epidemic pages in Chromium: the report form (errors shown, nothing stored), review, the dashboards."""

from datetime import datetime, timedelta

from hutong.core.clock import SHANGHAI
from hutong.epidemic import cards
from tests.epidemic.test_reporting import _card, _setup, _stored


def _fill(page, values: dict) -> None:
    for k, v in values.items():
        sel = f"#f-{k}"
        if page.locator(f"select{sel}").count():
            page.select_option(sel, v)
        else:
            page.fill(sel, v)


def test_report_form_review_and_dashboards(page_server, page_server_store, page, screenshot):
    _setup(page_server_store)
    page.set_extra_http_headers({"X-Hutong-Role": "clinician", "X-Hutong-Institution": "h1"})
    page.goto(page_server + "/epidemic/report")
    card = _card()
    card.pop("phone")
    wrong = dict(card, onset_date=(datetime.now(SHANGHAI) + timedelta(days=3)).date().isoformat(),
                 address_division="123")
    _fill(page, {k: v for k, v in wrong.items() if k != "institution"})
    page.click("#card-form button[type=submit]")
    box = page.inner_text(".error-box")
    assert "发病日期不能晚于今天" in box and "行政区划代码" in box
    assert page.input_value("#f-patient_name") == "张三"  # what was typed is kept
    assert _stored(page_server_store) == (0, 0)
    screenshot(page, "epidemic-report-errors")
    page.fill("#f-onset_date", card["onset_date"])
    page.fill("#f-address_division", "220102")
    page.click("#card-form button[type=submit]")
    assert "报告卡已提交" in page.inner_text(".flashes")
    assert _stored(page_server_store) == (1, 1)
    # the county CDC approves it in the console
    page.set_extra_http_headers({"X-Hutong-Role": "operator"})
    page.goto(page_server + "/console/epidemic")
    page.click("#review-queue button[value=approve]")
    assert "报告卡已处理" in page.inner_text(".flashes")
    page_server_store.run_consumers()
    page.goto(page_server + "/console/epidemic")
    page.wait_for_selector("body[data-charts-ready]")
    assert page.get_attribute("body", "data-charts-ready") == "2"
    assert "长春市" in page.inner_text("#city-table") and "1" in page.inner_text("#totals")
    screenshot(page, "epidemic-console")
    # the open page shows aggregates only: one case is below the threshold
    page.set_extra_http_headers({})
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(page_server + "/epidemic")
    page.wait_for_selector("body[data-charts-ready]")
    assert "少于5" in page.inner_text("#totals") and "张三" not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "epidemic-public-360px")
    # the refused form answers 422 (Chromium logs the status); nothing else went wrong
    assert [e for e in page.console_errors if "422" not in e] == []


def test_public_page_in_english(page_server, page_server_store, page):
    _setup(page_server_store)
    cards.submit(page_server_store, cards.CardInput(**_card()))
    page.goto(page_server + "/epidemic?lang=en")
    assert page.inner_text("h1") == "Live epidemic data"
