"""The operations console in Chromium: institutions, the patient index review (link, AuditEvent, undo), cards."""

from __future__ import annotations

from hutong.card import service as card_service
from hutong.mpi import service as mpi
from hutong.share import demo
from hutong.web import console

OPERATOR = {"X-Hutong-Role": "operator", "X-Hutong-Client": "op-zhang"}


def test_institutions_show_connection_status_and_volumes(page_server, page_server_store, page, screenshot):
    demo.load_demo(page_server_store)
    console.forget_cache()
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + "/console/institutions")
    page.wait_for_selector("body[data-charts-ready]")
    table = page.inner_text("#institutions")
    assert "长春市第一医院" in table and "吉林市中心医院" in table
    row = page.locator("#institutions tr", has_text="四平市人民医院")
    assert "正常" in row.inner_text()  # data arrived just now
    screenshot(page, "console-institutions")
    page.goto(page_server + "/console/health")
    assert page.locator(".stat-value").first.inner_text() != "0"
    screenshot(page, "console-health")
    assert page.console_errors == []


def test_review_page_links_two_records_and_shows_the_audit_event(page_server, page_server_store, page, screenshot):
    demo.load_demo(page_server_store)
    demo.add_unlinked_record(page_server_store)
    assert mpi.person_for_patient(page_server_store, "demo-p4") != mpi.person_for_patient(page_server_store, "demo-p1")
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + "/console/mpi")
    assert page.locator("#review-queue tbody tr").count() >= 1
    page.locator("#review-queue a").first.click()
    compare = page.inner_text("#compare")
    assert "王丽华" in compare and "王丽桦" in compare
    assert page.locator("#compare tr.diff").count() >= 2  # name, phone (and more) differ
    screenshot(page, "console-mpi-review")
    page.once("dialog", lambda d: d.accept())
    page.click("text=是同一人：合并")
    page.wait_for_selector("#audit-event")
    assert "已合并为同一人" in page.inner_text(".flashes")
    assert "merge" in page.inner_text("#audit-event")
    screenshot(page, "console-mpi-linked")
    assert mpi.person_for_patient(page_server_store, "demo-p4") == mpi.person_for_patient(page_server_store, "demo-p1")
    # Undo: the record is its own person again, and that is audited too.
    page.once("dialog", lambda d: d.accept())
    page.click("text=撤销这次合并")
    page.wait_for_selector("text=已撤销合并")
    assert mpi.person_for_patient(page_server_store, "demo-p4") != mpi.person_for_patient(page_server_store, "demo-p1")
    assert page.console_errors == []


def test_card_administration_freezes_and_reissues(page_server, page_server_store, page, screenshot):
    demo.load_demo(page_server_store)
    card, _token = card_service.issue_card(page_server_store, "Patient/demo-p1", phone="13804310000")
    page.set_extra_http_headers(OPERATOR)
    page.goto(page_server + "/console/cards")
    page.fill("#f-card", card["card_id"])
    page.click("text=查找")
    assert page.url.endswith("/console/cards/" + card["card_id"])
    assert "王*" in page.inner_text("main") and "138****0000" in page.inner_text("main")
    page.fill("#f-reason", "居民报告手机丢失")
    page.click("button:text('冻结')")
    assert "健康卡已冻结" in page.inner_text(".flashes")
    assert card_service.card_status(page_server_store, card["card_id"]) == "frozen"
    page.once("dialog", lambda d: d.accept())
    page.click("text=补发新卡")
    link = page.inner_text("#holder-link")
    assert link.startswith("/card/") and "#t=" in link
    assert card_service.card_status(page_server_store, card["card_id"]) == "revoked"
    screenshot(page, "console-card-reissued")
    page.goto(page_server + "/console/cards")
    screenshot(page, "console-cards")
    assert page.console_errors == []


def test_console_pages_need_permissions_and_refuse_bad_input(page_server, page):
    page.set_extra_http_headers({"X-Hutong-Role": "clinician"})
    resp = page.goto(page_server + "/console/cards/NOTACARD")
    assert resp.status == 404 and "未找到" in page.inner_text("h1")
    resp = page.goto(page_server + "/console/mpi?status=bogus")
    assert resp.status == 403  # the review queue is the operators' (security policy), not a doctor's
    page.set_extra_http_headers({"X-Hutong-Role": "operator"})
    resp = page.goto(page_server + "/console/mpi?status=bogus")
    assert resp.status == 400
