"""Done-when of reporting and indicators, in Chromium: an institution fills the monthly report in the
console, a broken validation rule is shown, submission counts in completeness, the county approves;
the dashboard shows the province map and drills down to a county."""

from __future__ import annotations

from hutong.stats import indicators, reporting
from hutong.stats.datasets import BUILTIN

DIV = "https://hutong.example/fhir/StructureDefinition/division-code"
STAT = {"X-Hutong-Role": "statistician", "X-Hutong-Client": "stat-1"}


def _seed(store):
    for oid, name, div in (("h1", "长春市第一医院", "220102"), ("h2", "吉林市中心医院", "220202")):
        store.update("Organization", oid, {"resourceType": "Organization", "id": oid, "name": name,
                                           "extension": [{"url": DIV, "valueCode": div}]})
    with store.write() as tx:
        reporting.assign(tx, BUILTIN["HRMS_M"], ["h1", "h2"])


def test_fill_the_monthly_report_in_the_console_and_approve(page_server, page_server_store, page, screenshot):
    _seed(page_server_store)
    page.set_extra_http_headers({"X-Hutong-Role": "clinician", "X-Hutong-Institution": "h1"})
    page.goto(page_server + "/console/stats/reports/HRMS_M/h1/202611")
    page.fill("#v__OP_EM_VISITS__male_a15_64", "100")
    page.fill("#v__OP_VISITS__", "70")
    page.fill("#v__EM_VISITS__", "20")       # 70 + 20 ≠ 100: the rule is shown
    page.fill("#v__BEDS__", "十")             # not a number: the cell is marked, nothing saved
    page.click("button[value=save]")
    assert "不是数字" in page.inner_text("main")
    assert page.locator("tr.row-high").count() == 1
    page.fill("#v__BEDS__", "10")
    page.click("button[value=save]")
    assert "审核规则" in page.inner_text("#violations")
    assert "门急诊人次 = 门诊人次 + 急诊人次" in page.inner_text("#violations")
    screenshot(page, "stats-form-violation")
    page.on("dialog", lambda d: d.accept())
    page.click("button[value=submit]")
    assert page.locator("#entry input[disabled]").count() > 0

    page.set_extra_http_headers(STAT)
    page.goto(page_server + "/console/stats/reports?dataSet=HRMS_M&period=202611&unit=220102")
    row = page.locator("#completeness tbody tr").filter(has_text="长春市第一医院")
    assert row.locator("td").nth(1).inner_text() == "1"
    page.goto(page_server + "/console/stats/reports?dataSet=HRMS_M&period=202611")
    assert "50.0%" in page.inner_text(".stats")
    assert "长春市第一医院" in page.inner_text("#violations")
    screenshot(page, "stats-completeness")

    page.goto(page_server + "/console/stats/reports/HRMS_M/h1/202611")
    page.select_option("#f-level", "1")
    page.click("button[value=approve]")
    assert "县级已审核" in page.inner_text("main")
    # the one console message is the browser noting the intended 422 of the form with a bad cell
    assert [e for e in page.console_errors if "422" not in e] == []


def test_dashboard_map_and_drill_down(page_server, page_server_store, page, screenshot):
    _seed(page_server_store)
    store = page_server_store
    store.register_consumer(indicators.CONSUMER.name, indicators.CONSUMER.handler, indicators.CONSUMER.types)
    for org, n in (("h1", 7), ("h2", 3)):
        for _ in range(n):
            store.create({"resourceType": "Encounter", "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "serviceProvider": {"reference": f"Organization/{org}"},
                          "period": {"start": "2026-11-02T09:00:00+08:00"}})
    store.run_consumers()
    page.set_extra_http_headers(STAT)
    page.goto(page_server + "/console/stats?start=2026-11-01&end=2026-11-30")
    page.wait_for_selector("body[data-charts-ready='2']")
    assert "10" in page.inner_text(".stats")
    screenshot(page, "stats-dashboard")
    page.click("#drill a:has-text('长春市')")
    assert "南关区" in page.inner_text("#drill")
    page.click("#drill a:has-text('南关区')")
    assert "长春市第一医院" in page.inner_text("#drill")
    assert page.console_errors == []
