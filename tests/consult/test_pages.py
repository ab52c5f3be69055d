"""Done-when in Chromium: a resident's question (on a 360 px phone) reaches the department's queue,
the doctor answers and the resident's open page shows the answer live, the consultation closes and
is rated; red flags tell the resident to call 120; a referral declined for "no slot" shows in the
sender's outbox and is redirected; the coordinator sees open items."""

from __future__ import annotations

from tests.consult.conftest import seed

RESIDENT = {"X-Hutong-Role": "resident", "X-Hutong-Patient": "pat-1", "X-Hutong-Client": "Patient/pat-1"}
CARDIO = {"X-Hutong-Role": "clinician", "X-Hutong-Client": "PractitionerRole/prr-cardio1",
          "X-Hutong-Institution": "org-prov"}


def _tab(browser_context, headers):
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.console_errors = errors
    tab.set_extra_http_headers(headers)
    return tab


def test_resident_asks_doctor_answers_live(page_server, page_server_store, page, browser_context, screenshot):
    seed(page_server_store)
    page.set_viewport_size({"width": 360, "height": 740})
    page.set_extra_http_headers(RESIDENT)
    page.goto(page_server + "/portal/consult/ask")
    page.fill("#f-text", "高血压五年，最近血压150/100，头有点胀，降压药要调整吗")
    page.fill("#f-age", "62")
    page.select_option("#f-department", "03.04")
    screenshot(page, "consult-resident-ask-360")
    page.click("#ask-form button[type=submit]")
    page.wait_for_selector("#status")
    assert "待接诊" in page.inner_text("#status") and page.locator("#expect").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling on a phone
    url = page.url
    page.wait_for_selector("body[data-live=sse]")

    doctor = _tab(browser_context, CARDIO)
    try:
        doctor.goto(page_server + "/workstation/consult")
        waiting = doctor.locator("#waiting tbody tr")
        assert waiting.count() == 1 and "高血压五年" in waiting.inner_text()
        screenshot(doctor, "consult-doctor-desk")
        doctor.click("#waiting tbody a")
        doctor.click("#accept-form button")
        doctor.wait_for_selector("#composer")
        page.wait_for_selector("text=接诊医生：王心")  # the resident's page reloaded on the status event
        page.wait_for_selector("body[data-live=sse]")
        doctor.fill("#composer textarea", "请问目前吃的是什么降压药？")
        doctor.click("#composer button")
        page.wait_for_selector(".msg:has-text('请问目前吃的是什么降压药？')")  # live, no reload
        page.fill("#composer textarea", "氨氯地平5mg，每天一次")
        page.click("#composer button")
        doctor.wait_for_selector(".msg:has-text('氨氯地平5mg，每天一次')")
        screenshot(page, "consult-resident-conversation-360")
        screenshot(doctor, "consult-doctor-conversation")
        doctor.fill("#close-form textarea", "氨氯地平加至10mg，每日监测血压，两周后复诊")
        doctor.click("#close-form button")
        doctor.wait_for_selector("#closed tbody a")
        assert doctor.console_errors == []
    finally:
        doctor.close()
    page.goto(url)
    assert "两周后复诊" in page.inner_text("#advice")
    page.select_option("#f-stars", "5")
    page.click("#rate-form button")
    page.wait_for_selector("#rated")
    assert "5" in page.inner_text("#rated")
    assert page.console_errors == []


def test_red_flags_tell_the_resident_to_call_120(page_server, page_server_store, page, screenshot):
    seed(page_server_store)
    page.set_viewport_size({"width": 360, "height": 740})
    page.set_extra_http_headers(RESIDENT)
    page.goto(page_server + "/portal/consult/ask")
    page.fill("#f-text", "突然一侧手脚没力气，说话不清楚，嘴歪了")
    page.fill("#f-age", "70")
    page.click("#ask-form button[type=submit]")
    page.wait_for_selector("#emergency")
    assert "120" in page.inner_text("#emergency")
    assert page.locator("#emergency a[href='tel:120']").count() == 1
    screenshot(page, "consult-resident-emergency-360")
    page.goto(page_server + "/portal/consult")
    assert page.locator("#my-items .badge-high").count() == 1
    assert page.console_errors == []


def test_no_slot_referral_is_visible_to_the_sender_and_redirected(page_server, page_server_store, page,
                                                                   browser_context, screenshot):
    from hutong.consult import referral
    from hutong.consult.work import Env

    seed(page_server_store)
    env = Env(page_server_store, page_server_store.settings)
    ref = referral.refer_patient(env, patient="Patient/pat-1", sender="PractitionerRole/prr-town",
                                 sender_org="Organization/org-town", receiver_org="Organization/org-county",
                                 reason="糖尿病血糖控制差，需上级调整方案", records=["Observation/obs-ecg"])
    page.set_extra_http_headers({"X-Hutong-Role": "clinician", "X-Hutong-Client": "PractitionerRole/prr-county",
                                 "X-Hutong-Institution": "org-county"})
    page.goto(page_server + "/workstation/referrals")
    page.click("#inbox tbody a")
    page.select_option("#f-reason", "no-slot")
    page.click("#decline-form button")
    page.wait_for_selector("#status:has-text('无号源')")

    sender = _tab(browser_context, {"X-Hutong-Role": "clinician", "X-Hutong-Client": "PractitionerRole/prr-town",
                                    "X-Hutong-Institution": "org-town"})
    try:
        sender.goto(page_server + "/workstation/referrals")
        row = sender.locator("#outbox tbody tr").first
        assert "无号源" in row.inner_text() and "row-high" in (row.get_attribute("class") or "")
        row.locator("a").click()
        screenshot(sender, "consult-referral-no-slot")
        sender.fill("#redirect-form input[name=receiver]", "Organization/org-prov")
        sender.click("#redirect-form button")
        sender.wait_for_selector("#status:has-text('已改转')")
        assert sender.console_errors == []
    finally:
        sender.close()
    assert referral.referral_view(page_server_store, ref["id"])["status"] == "redirected"

    page.set_extra_http_headers({"X-Hutong-Role": "operator"})
    page.goto(page_server + "/console/consult")
    assert "转诊" in page.inner_text("main")
    screenshot(page, "consult-coordinator")
    assert page.console_errors == []
