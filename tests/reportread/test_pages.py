"""Report interpretation in the pages, in Chromium: a resident opens their own lab report and reads it
item by item (interval and its source, flag, explanation) on a 360 px phone, cannot open another
person's report, and a doctor sees a potassium of 7.2 on the critical-value desk and acknowledges it."""

from __future__ import annotations

from hutong.reportread import critical
from hutong.share import demo
from tests.reportread.test_critical import seed

RESIDENT = {"X-Hutong-Role": "resident", "X-Hutong-Patient": "demo-p3"}


def test_a_resident_reads_their_report_item_by_item_on_a_phone(page_server, page_server_store, page, screenshot):
    demo.load_demo(page_server_store)
    page.set_viewport_size({"width": 360, "height": 780})
    page.set_extra_http_headers(RESIDENT)
    page.goto(page_server + "/portal/reports")
    links = page.locator("#reports a")
    assert links.count() >= 2  # reports from more than one of the person's hospitals
    links.first.click()
    page.wait_for_selector("#items")
    items = page.locator("#items li")
    assert items.count() >= 1
    text = page.inner_text("#items")
    assert "参考区间" in text and "来源" in text
    assert page.inner_text("#summary").strip()
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "portal-report-explained-360px")
    assert page.console_errors == []


def test_another_persons_report_is_not_found(page_server, page_server_store, page):
    demo.load_demo(page_server_store)
    seed(page_server_store)  # pat1's potassium result, in a report of nobody's record here
    with page_server_store.write() as tx:
        tx.update("DiagnosticReport", "other", {"resourceType": "DiagnosticReport", "id": "other", "status": "final",
                                                "code": {"text": "电解质"}, "subject": {"reference": "Patient/pat1"},
                                                "result": [{"reference": "Observation/k1"}]})
    page.set_extra_http_headers(RESIDENT)
    response = page.goto(page_server + "/portal/reports/other")
    assert response.status == 404
    assert "电解质" not in page.inner_text("body")


def test_a_doctor_acknowledges_a_critical_potassium_on_the_desk(page_server, page_server_store, page, screenshot):
    seed(page_server_store)
    page.set_extra_http_headers({"X-Hutong-Role": "clinician", "X-Hutong-Institution": "hosp1"})
    page.goto(page_server + "/workstation/critical")
    row = page.locator("#critical-table tbody tr[data-status='open']")
    assert row.count() == 1 and "7.2" in row.inner_text()
    screenshot(page, "workstation-critical-values")
    row.locator("button").click()
    page.wait_for_selector("#critical-table tbody tr[data-status='acknowledged']")
    assert "已确认危急值" in page.inner_text("body")
    assert critical.list_alerts(page_server_store, institution="Organization/hosp1")[0]["status"] == "acknowledged"
    # Another institution's desk does not see it.
    page.set_extra_http_headers({"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2"})
    page.goto(page_server + "/workstation/critical")
    assert "7.2" not in page.inner_text("#critical-table")
