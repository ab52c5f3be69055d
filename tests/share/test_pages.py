"""Done-when of the shared record, in Chromium: one merged history with sources on the workstation and the
portal, a CDA document published at one hospital opened by a doctor at another, the review page linking
two records and the history updating, the HIS launch, the card's single state message."""

from __future__ import annotations

import time
import uuid

from hutong.card import service as card_service
from hutong.share import demo, launch

DOCTOR_H2 = {"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2", "X-Hutong-Client": "dr-li"}


def _setup(store):
    demo.load_demo(store)
    demo.publish_demo_document(store)


def test_workstation_shows_one_merged_history_and_opens_another_hospitals_document(
        page_server, page_server_store, page, screenshot):
    _setup(page_server_store)
    page.set_extra_http_headers(DOCTOR_H2)
    page.goto(page_server + "/workstation/search?q=王丽华")
    assert page.locator("#results tbody tr").count() == 3
    page.goto(page_server + "/workstation/patient/demo-p2")
    page.wait_for_selector("body[data-charts-ready]")
    timeline = page.inner_text("#timeline")
    for hospital in ("长春市第一医院", "吉林市中心医院", "四平市人民医院"):
        assert hospital in timeline
    labs = page.locator("#lab-table tbody tr")
    merged = labs.filter(has_text="7.2").filter(has_text="空腹血糖")
    assert merged.count() == 1 and "长春市第一医院" in merged.inner_text() and "四平市人民医院" in merged.inner_text()
    assert page.locator("#lab-table tr.row-high").count() >= 3
    assert "青霉素" in page.inner_text(".patient-banner")
    assert page.locator("#imaging-table a[href^='https://pacs.demo-h2.example']").count() == 1
    screenshot(page, "workstation-patient")
    page.click("#doc-table a")
    page.wait_for_selector("#doc-body")
    assert "头晕、头痛两周" in page.inner_text("#doc-body") and "长春市第一医院" in page.inner_text("main")
    screenshot(page, "workstation-document-cda")
    page.goto(page_server + "/workstation/patient/demo-p2?inst=demo-h1")
    assert "四平市人民医院" not in page.inner_text("#timeline")
    assert page.console_errors == []


def test_linking_on_the_review_page_updates_the_history(page_server, page_server_store, page):
    _setup(page_server_store)
    demo.add_unlinked_record(page_server_store)
    page.set_extra_http_headers(DOCTOR_H2)
    page.goto(page_server + "/workstation/patient/demo-p1")
    assert "肺炎" not in page.inner_text("#timeline")
    page.set_extra_http_headers({"X-Hutong-Role": "operator"})
    page.goto(page_server + "/console/mpi")
    page.locator("#review-queue a").first.click()
    page.once("dialog", lambda d: d.accept())
    page.click("text=是同一人：合并")
    page.wait_for_selector("#audit-event")
    page.set_extra_http_headers(DOCTOR_H2)  # the shared record is the doctor's to open, not the operator's
    page.goto(page_server + "/workstation/patient/demo-p1")
    assert "肺炎" in page.inner_text("#timeline")  # the fourth record's emergency visit


def test_resident_portal_on_a_phone(page_server, page_server_store, page, screenshot):
    _setup(page_server_store)
    card, _token = card_service.issue_card(page_server_store, "Patient/demo-p1", phone=demo.PHONE)
    page.set_viewport_size({"width": 360, "height": 780})
    page.set_extra_http_headers({"X-Hutong-Role": "resident", "X-Hutong-Patient": "demo-p3"})
    page.goto(page_server + "/portal/record")
    visits = page.inner_text("#visits")
    assert "长春市第一医院" in visits and "吉林市中心医院" in visits and "四平市人民医院" in visits
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(page, "portal-record-360px")
    page.goto(page_server + "/portal/results")
    assert "偏高" in page.inner_text("#results") and "高于参考范围" in page.inner_text("#results")
    screenshot(page, "portal-results-360px")
    page.goto(page_server + "/portal/documents")
    page.click("#doc-table a")
    assert "头晕、头痛两周" in page.inner_text("#doc-body")
    page.goto(page_server + "/portal/card")
    assert page.inner_text("#card-state") == "健康卡可以使用"
    assert "王*" in page.inner_text("main") and "138****0000" in page.inner_text("main")
    card_service.set_status(page_server_store, card["card_id"], "frozen")
    page.reload()
    state = page.locator("#card-state")
    assert state.count() == 1 and "已冻结" in state.inner_text() and "可以使用" not in page.inner_text("main")
    screenshot(page, "portal-card-frozen-360px")
    card_service.set_status(page_server_store, card["card_id"], "revoked")
    page.reload()
    assert "已注销" in page.inner_text("#card-state") and "冻结" not in page.inner_text("#card-state")
    assert page.console_errors == []


def test_portal_needs_a_resident(page_server, page):
    resp = page.goto(page_server + "/portal/record")
    assert resp.status == 401 and "请先登录" in page.inner_text("h1")


def test_his_launch_opens_the_record_once_and_records_the_care_relationship(page_server, page_server_store, page):
    _setup(page_server_store)
    key = launch.launch_key(page_server_store, "demo-h2")
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    sig = launch.sign_launch(key, "demo-h2", "MR002002222", "dr-wang", ts, nonce)
    url = f"{page_server}/workstation/launch?org=demo-h2&mrn=MR002002222&user=dr-wang&ts={ts}&nonce={nonce}&sig={sig}"
    page.goto(url)
    assert page.url.endswith("/workstation/patient/demo-p2")
    assert launch.has_care_relationship(page_server_store, "dr-wang", "demo-p1")  # the same person
    assert page.goto(url).status == 401  # a launch link works once
    bad = url.replace(f"sig={sig}", "sig=" + sig[::-1])
    assert page.goto(bad.replace(nonce, uuid.uuid4().hex)).status == 401


def test_card_qr_page_shows_one_message_when_frozen(page_server, page_server_store, page):
    _setup(page_server_store)
    card, token = card_service.issue_card(page_server_store, "Patient/demo-p1")
    card_service.set_status(page_server_store, card["card_id"], "frozen")
    page.goto(f"{page_server}{card['page']}#t={token}")
    page.wait_for_selector("#message:has-text('冻结')")  # (no string predicates: the page's CSP forbids eval)
    page.wait_for_timeout(1200)  # past a countdown tick
    text = page.inner_text("main")
    assert "正在生成" not in text and "已过期" not in text
