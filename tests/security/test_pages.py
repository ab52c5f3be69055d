"""The security-events page in Chromium: counts by kind and day and the latest events, for operators
and auditors, in Chinese and in English; refused to a doctor."""

from __future__ import annotations

import httpx

from hutong.security.events import SecurityEvents

AUDITOR = {"X-Hutong-Role": "auditor", "X-Hutong-Client": "auditor-wang"}


def test_security_events_page(page_server, page_server_store, page, screenshot):
    events = SecurityEvents(page_server_store)
    for _ in range(3):
        events.record("login-failed", "13800138000", "10.0.0.7", "bad-credentials")
    events.record("scraping", "c-his-01", "10.0.0.9", "1000 distinct patients read within 600 s")
    events.record("scanning", "", "10.0.0.66", "200 answers 401/403/404 within 600 s")
    page.set_extra_http_headers(AUDITOR)
    page.goto(page_server + "/console/security")
    assert "安全事件" in page.inner_text("h1")
    totals = page.inner_text("#totals")
    assert "登录失败" in totals and "批量抓取" in totals and "扫描探测" in totals
    by_day = page.locator("#by-day tbody tr").first.inner_text()
    assert "3" in by_day and "1" in by_day
    recent = page.inner_text("#recent")
    assert "c-his-01" in recent and "10.0.0.66" in recent
    assert "13800138000" not in recent and "138****8000" in recent  # a phone typed as a user name is masked
    screenshot(page, "security-events")
    assert page.console_errors == []

    page.goto(page_server + "/console/security?lang=en")
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "Security events" in text and "Scraping" in text and "Failed sign-in" in text
    screenshot(page, "security-events-en")
    assert page.console_errors == []


def test_security_events_page_refused_to_a_doctor(page_server, page_server_store):
    key = page_server_store.settings.security_gateway_key
    r = httpx.get(page_server + "/console/security",
                  headers={"X-Hutong-Gateway-Key": key, "X-Hutong-Role": "clinician", "X-Hutong-Client": "dr-li"})
    assert r.status_code == 403
