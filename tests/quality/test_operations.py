"""The operations console: the node's own health from the same figures as /metrics, and alerts
raised by thresholds (over HTTP and in Chromium)."""

from __future__ import annotations

import httpx

from hutong.quality import operations

OPERATOR = {"X-Hutong-Role": "operator", "X-Hutong-Client": "op-li"}


def test_operations_api_counts_requests_and_raises_a_lag_alert(server, fhir, monkeypatch):
    for _ in range(3):
        assert fhir.post("/Patient", json={"resourceType": "Patient", "gender": "male"}).status_code == 201
    assert fhir.get("/Patient/nobody").status_code == 404
    with httpx.Client(base_url=server, timeout=60) as http:
        calm = http.get("/api/quality/operations").json()
        row = next(r for r in calm["interfaces"] if r["interface"] == "fhir")
        assert row["requests"] >= 4 and row["errors4xx"] >= 1 and row["meanMs"] > 0
        assert {c["name"] for c in calm["consumers"]} >= {"quality"} and calm["head"] >= 3
        assert all(a["id"] != "consumer-lag" for a in calm["alerts"])  # three events behind: below 10,000
        monkeypatch.setitem(operations.THRESHOLDS, "consumer-lag",
                            operations.Threshold("consumer-lag", "变更日志消费者滞后超过 %(limit)s 条事件", 0))
        lagging = [c["name"] for c in calm["consumers"] if c["lag"] > 0]
        alerted = http.get("/api/quality/operations").json()["alerts"]
        assert {a["subject"] for a in alerted if a["id"] == "consumer-lag"} == set(lagging)
        assert all("变更日志消费者滞后超过 0 条事件" == a["text"] for a in alerted if a["id"] == "consumer-lag")
        assert http.get("/api/quality/operations", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_operations_page(page_server, page_server_store, page, screenshot, monkeypatch):
    page_server_store.create({"resourceType": "Patient", "gender": "female"})
    monkeypatch.setitem(operations.THRESHOLDS, "consumer-lag",
                        operations.Threshold("consumer-lag", "变更日志消费者滞后超过 %(limit)s 条事件", 0))
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + "/console/operations")
    page.wait_for_selector("#alerts")
    assert "变更日志消费者滞后" in page.inner_text("#alerts")
    assert "quality" in page.inner_text("#consumers")
    page.reload()
    assert "page" in page.inner_text("#interfaces")  # the page's first request was counted
    screenshot(page, "quality-operations")
    page.goto(page_server + "/console/operations?lang=en")
    assert "Alerts" in page.inner_text("body")
    assert page.console_errors == []
