"""The auditors' page of the audit trail in Chromium: search by patient and user, break-the-glass
events marked and filtered, the hash chain checked on request (and a changed row caught), bad dates
a clear error; refused to a doctor."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from hutong.core.caller import Caller
from hutong.security import audit
from hutong.security.tables import audit_event

AUDITOR = {"X-Hutong-Role": "auditor", "X-Hutong-Client": "auditor-wang"}


def _entries(store):
    trail = audit.AuditTrail(store, store.settings)
    dr = Caller(client_id="dr-zhao", institution="h-audit-1", roles=frozenset({"clinician"}), auth="session")
    his = Caller(client_id="his-audit", institution="h-audit-2", roles=frozenset({"system"}), auth="token")
    trail.enqueue(audit.Entry(audit.now_us(), "R", "read", his, "10.0.0.1", "TREAT", "0", ["pa-1"], []), None)
    trail.enqueue(audit.Entry(audit.now_us(), "R", "search-type", his, "10.0.0.1", "TREAT", "0", ["pa-2"], []), None)
    trail.enqueue(audit.Entry(audit.now_us(), "R", "read", dr, "10.0.0.2", "ETREAT", "0", ["pa-1"], [],
                              break_glass=True, reason="患者昏迷急诊抢救"), None)
    trail.drain()


def test_auditor_searches_the_trail_and_checks_the_chain(page_server, page_server_store, page, screenshot):
    _entries(page_server_store)
    page.set_extra_http_headers(AUDITOR)
    page.goto(page_server + "/console/audit?patient=pa-1")
    assert page.inner_text("h1") == "审计日志"
    rows = page.locator("#audit-rows tbody tr")
    assert rows.count() == 2  # both accesses to pa-1, none to pa-2
    text = page.inner_text("#audit-rows")
    assert "his-audit" in text and "dr-zhao" in text and "pa-2" not in text
    assert "患者昏迷急诊抢救" in text
    screenshot(page, "console-audit")

    page.select_option("#f-break_glass", "1")
    page.click("#audit-search button")
    page.wait_for_load_state()
    assert page.locator("#audit-rows tbody tr").count() == 1
    assert page.locator("#audit-rows tbody tr[data-break-glass=true]").count() == 1

    page.click("#verify-link")
    page.wait_for_load_state()
    assert "哈希链完整" in page.inner_text("#chain-check")

    # a changed row is caught by the same check, on the page
    with page_server_store.write() as tx:
        seq, body = tx.conn.execute(select(audit_event.c.seq, audit_event.c.event)
                                    .where(audit_event.c.agent == "dr-zhao")).first()
        tx.conn.execute(update(audit_event).where(audit_event.c.seq == seq)
                        .values(event=body.replace("10.0.0.2", "10.9.9.9")))
    try:
        page.goto(page_server + "/console/audit?verify=1")
        assert "哈希链被破坏" in page.inner_text("#chain-check") and str(seq) in page.inner_text("#chain-check")
        screenshot(page, "console-audit-broken-chain")
    finally:
        with page_server_store.write() as tx:
            tx.conn.execute(update(audit_event).where(audit_event.c.seq == seq).values(event=body))
    assert page.console_errors == []

    page.goto(page_server + "/console/audit?since=yesterday&lang=en")
    assert page.inner_text("h1") == "Audit trail"
    assert page.locator(".error-box").count() == 1


def test_audit_page_refused_to_a_doctor(page_server, page_server_store):
    key = page_server_store.settings.security_gateway_key
    r = httpx.get(page_server + "/console/audit",
                  headers={"X-Hutong-Gateway-Key": key, "X-Hutong-Role": "clinician", "X-Hutong-Client": "dr-li"})
    assert r.status_code == 403
