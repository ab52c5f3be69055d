"""The shared record's pages for people who use a keyboard, a screen reader, no JavaScript, English or a
360 px phone — in headless Chromium under the strict CSP."""

from __future__ import annotations

import re

from hutong.share import demo

DOCTOR_H2 = {"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2", "X-Hutong-Client": "dr-li"}
RESIDENT = {"X-Hutong-Role": "resident", "X-Hutong-Patient": "demo-p1"}
UNLABELLED = """() => [...document.querySelectorAll('input,select,textarea')]
    .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length"""
CJK = re.compile(r"[\u4e00-\u9fff]")


def _load(store):
    demo.load_demo(store, extra=150)
    demo.publish_demo_document(store)


def test_workstation_by_keyboard_with_headings_and_labels(page_server, page_server_store, page, screenshot):
    _load(page_server_store)
    page.set_extra_http_headers(DOCTOR_H2)
    for path in ("/workstation/patient/demo-p1", "/workstation/patient/demo-p1/lab", "/workstation/search?q=王丽华"):
        page.goto(page_server + path)
        assert page.locator("h1").count() == 1, path
        assert page.evaluate(UNLABELLED) == 0, path
    page.goto(page_server + "/workstation/patient/demo-p1")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # From the main content the keyboard reaches the filters, then the link to every lab result.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-inst"
    link = page.locator("a[href='/workstation/patient/demo-p1/lab']")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/workstation/patient/demo-p1/lab")
    assert page.locator("#lab-table tbody tr").count() == 100
    page.locator("nav.pager a[rel='next']").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**page=2")
    screenshot(page, "workstation-lab-section-page-2")
    assert page.console_errors == []


def test_workstation_without_javascript_shows_everything(page_server, page_server_store, page):
    _load(page_server_store)
    page.set_extra_http_headers(DOCTOR_H2)
    page.route("**/*.js*", lambda route: route.abort())
    page.goto(page_server + "/workstation/patient/demo-p1")
    assert page.locator("body[data-charts-ready]").count() == 0  # no script ran
    assert "王丽华" in page.inner_text(".patient-banner")
    fallback = page.locator("#labs figure.chart .chart-fallback table").first
    assert fallback.is_visible() and fallback.locator("tbody tr").count() > 2
    assert page.locator("#lab-table tbody tr").first.is_visible()
    page.click("a[href='/workstation/patient/demo-p1/lab']")
    assert page.locator("#lab-table tbody tr").count() == 100
    page.goto(page_server + "/workstation/patient/demo-p1/document")
    page.click("#doc-table a")
    assert "头晕、头痛两周" in page.inner_text("#doc-body")


def test_workstation_in_english(page_server, page_server_store, page, screenshot):
    _load(page_server_store)
    page.set_extra_http_headers(DOCTOR_H2)
    page.goto(page_server + "/workstation/patient/demo-p1?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    headings = page.locator("main h2").all_inner_texts()
    assert "Lab results" in " ".join(headings)
    assert not [h for h in headings if CJK.search(h)], headings
    labels = page.locator("main form label").all_inner_texts()
    assert labels and not [x for x in labels if CJK.search(x)], labels
    assert page.locator("a[href^='/workstation/patient/demo-p1/lab']").inner_text().startswith("All ")
    page.goto(page_server + "/workstation/patient/demo-p1/encounter")
    assert page.locator("h1").inner_text() == "All visits"
    screenshot(page, "workstation-encounters-en")


def test_every_portal_page_fits_a_360px_phone(page_server, page_server_store, page, screenshot):
    _load(page_server_store)
    page.set_viewport_size({"width": 360, "height": 780})
    page.set_extra_http_headers(RESIDENT)
    for path in ("/portal/record", "/portal/results", "/portal/documents", "/portal/card"):
        page.goto(page_server + path)
        assert page.locator("h1").count() == 1, path
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
    page.goto(page_server + "/portal/documents")
    page.click("#doc-table a")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    screenshot(page, "portal-document-360px")
    assert page.console_errors == []
