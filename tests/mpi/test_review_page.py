"""The console's review page (share/web's) shows why a pair was flagged, in Chinese and in English."""

from __future__ import annotations

from hutong.mpi import service

OPERATOR = {"X-Hutong-Role": "operator"}


def _twins(store):
    store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})
    for pid, given in (("tw1", "子涵"), ("tw2", "子轩")):
        store.update("Patient", pid, {
            "resourceType": "Patient", "id": pid, "name": [{"family": "李", "given": [given]}], "gender": "male",
            "birthDate": "2019-08-08", "telecom": [{"system": "phone", "value": "13900001111"}],
            "address": [{"text": "吉林省长春市朝阳区红旗街100号3栋2单元"}]})
    store.run_consumers()
    return next(i for i in service.review_list(store) if {i["patient_id"], i["candidate_id"]} == {"tw1", "tw2"})


def test_review_page_shows_the_reasons(page_server, page_server_store, page, screenshot):
    item = _twins(page_server_store)
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + f"/console/mpi/{item['id']}")
    reasons = page.locator("#reasons li[data-code='twins']")
    assert reasons.count() == 1 and "疑似双胞胎" in reasons.inner_text()
    assert "13900001111" not in page.inner_text("#reasons")  # reasons never quote the phone
    screenshot(page, "mpi-review-reasons")
    page.goto(page_server + f"/console/mpi/{item['id']}?lang=en")
    text = page.inner_text("#reasons")
    assert "probably twins" in text and "双胞胎" not in text
    assert page.console_errors == []
