"""The recognition console page in Chromium: the catalog with windows and qualifications, what
recognition saved by institution and month with the override reasons, and the HL7 v2 review queue;
zh-CN first, English from the catalog."""

from __future__ import annotations

import uuid

from hutong.core.caller import Caller
from hutong.recognition import cdshooks, hl7v2
from tests.recognition.helpers import CBC_ORDER, cbc_report, order, seed
from tests.recognition.test_cdshooks_http import request

OPERATOR = {"X-Hutong-Role": "operator", "X-Hutong-Client": "op-zhang"}
DOCTOR_B = Caller(client_id="his-b", institution="hosp-b", roles=frozenset({"system"}))


def _province(store) -> None:
    """A result at A; three orders at B that it covers: one accepted, one overridden, one pending;
    one refused HL7 v2 message."""
    seed(store)
    with store.write() as tx:
        tx.update("DiagnosticReport", "rep-a", cbc_report("rep-a", "pa", "hosp-a", 1))
    store.run_consumers()
    cards = []
    for n in range(3):
        body = request("order-sign", [order(f"sr{n}", "B0042", CBC_ORDER)], "B0042")
        cards += cdshooks.answer(store, "recognition-order-sign", body, DOCTOR_B)["cards"]
    assert len(cards) == 3
    when = "2026-12-01T08:00:00+08:00"
    cdshooks.feedback(store, "recognition-order-sign", {"feedback": [
        {"card": cards[0]["uuid"], "outcome": "accepted", "outcomeTimestamp": when},
        {"card": cards[1]["uuid"], "outcome": "overridden", "outcomeTimestamp": when,
         "overrideReason": {"reason": {"system": cards[1]["overrideReasons"][3]["system"], "code": "emergency"}}}]},
        DOCTOR_B)
    assert hl7v2.receive(store, f"MSH|^~\\&|LIS|nowhere|HUTONG|JL|20261201||ORU^R01|BAD{uuid.uuid4().hex[:6]}|P|2.5\r"
                         .encode()).code == "AE"


def test_console_page_shows_catalog_savings_and_review(page_server, page_server_store, page, screenshot):
    _province(page_server_store)
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + "/console/recognition")
    page.wait_for_selector("body[data-charts-ready]")
    totals = page.inner_text("#totals")
    assert "3" in totals and "33.3%" in totals  # three recognisable orders, one recognised
    row = page.locator("#by-institution tbody tr", has_text="长春乙医院").inner_text()
    assert "33.3%" in row
    assert "急诊、急救等紧急情况" in page.inner_text("#overrides")
    cbc = page.locator("#catalog tbody tr", has_text="血常规").first.inner_text()
    assert "临床血液" in cbc and "58410-2" in cbc
    review = page.inner_text("#hl7-review")
    assert "nowhere" in review and "AE" in review and "no PID segment" in review
    screenshot(page, "recognition-console")
    assert page.console_errors == []

    page.goto(page_server + "/console/recognition?lang=en")
    page.wait_for_selector("body[data-charts-ready]")
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "Result mutual recognition" in text and "Recognition catalog" in text and "haematology" in text
    assert "emergency or rescue" in page.inner_text("#overrides")
    screenshot(page, "recognition-console-en")
    assert page.console_errors == []
