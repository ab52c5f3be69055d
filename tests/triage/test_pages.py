"""The triage page in Chromium, on a 360 px phone: a child's fever goes to paediatrics, crushing chest
pain with sweating shows the call-120 advice first, a report question links to report reading, and
bad input is a clear error on the page."""

from __future__ import annotations

RESIDENT = {"X-Hutong-Role": "resident"}


def _ask(page, base, text, age=""):
    page.goto(base + "/portal/triage")
    page.fill("#f-text", text)
    if age:
        page.fill("#f-age", age)
    page.click("form[action='/portal/triage'] button")
    page.wait_for_load_state()


def test_triage_on_a_phone(page_server, page, screenshot):
    page.set_viewport_size({"width": 360, "height": 780})
    page.set_extra_http_headers(RESIDENT)
    _ask(page, page_server, "孩子发烧三天咳嗽")
    assert page.locator("#departments li").first.get_attribute("data-code") == "07"
    assert page.get_attribute("#answer", "data-urgent") == "false"
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "portal-triage-child-360px")
    _ask(page, page_server, "胸口压榨样疼痛伴出汗半小时")
    assert page.get_attribute("#answer", "data-urgent") == "true"
    assert "120" in page.inner_text("#urgent")
    assert page.locator("#departments li").first.get_attribute("data-code") == "20"
    screenshot(page, "portal-triage-urgent-360px")
    _ask(page, page_server, "化验单上谷丙转氨酶偏高是什么意思")
    assert page.locator("#answer a[href='/portal/reports']").count() == 1
    assert page.console_errors == []


def test_a_bad_age_is_an_error_on_the_page(page_server, page):
    page.set_extra_http_headers(RESIDENT)
    _ask(page, page_server, "头痛", age="abc")
    assert "年龄请填写数字" in page.inner_text(".error-box")
    assert page.locator("#answer").count() == 0
    assert page.input_value("#f-text") == "头痛"  # nothing the resident typed is lost


def test_the_answer_in_english(page_server, page, screenshot):
    """With English chosen, departments, reasons and advice are English; the resident's words are quoted as said."""
    page.set_extra_http_headers(RESIDENT)
    page.goto(page_server + "/portal/triage?lang=en")
    _ask(page, page_server, "孩子发烧三天咳嗽")
    first = page.locator("#departments li").first
    assert first.get_attribute("data-code") == "07"
    assert "Paediatrics" in first.inner_text()
    assert "儿科" not in first.inner_text()
    assert "call 120" in page.inner_text("#answer")
    # text the page handler translates before rendering (the title) is English too
    assert page.inner_text("h1") == "Which department?"
    screenshot(page, "portal-triage-english")
