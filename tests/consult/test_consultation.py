"""An online consultation from question to rating, as the service functions see it (both backends)."""

from __future__ import annotations

import pytest

from hutong.consult import consultation as cs
from hutong.consult import prescription as rx
from hutong.consult import queues, sla, stats
from hutong.core.clock import now_us
from hutong.core.errors import FhirError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_question_reaches_the_department_queue_and_is_answered(province):
    env, store = province.env, province.store
    asked = cs.ask_question(env, patient="Patient/pat-1", text="最近血糖控制不好，空腹血糖9点多，需要调整药物吗",
                            age=66, sex="male", hospital="Organization/org-prov", attachments=[("image/png", PNG)])
    assert asked["status"] == "waiting" and not asked["urgent"]
    assert asked["department"] == "03.07"  # triage: endocrinology, one the hospital's online doctors cover
    assert asked["attachments"] and store.get("Binary", asked["attachments"][0].split("/")[1])["contentType"] == "image/png"
    task = store.get("Task", asked["id"])
    assert task["status"] == "requested" and task["owner"]["reference"] == "Organization/org-prov"
    assert task["extension"][0]["valueDate"][:4] == str(int(task["authoredOn"][:4]) + 15)  # kept 15 years

    desk = queues.doctor_desk(store, "PractitionerRole/prr-endo")
    assert [w["id"] for w in desk["waiting"]] == [asked["id"]]
    assert queues.doctor_desk(store, "PractitionerRole/prr-resp")["waiting"] == []  # another department

    with pytest.raises(FhirError) as err:
        cs.accept_consultation(env, asked["id"], "PractitionerRole/prr-resp")
    assert err.value.status == 403
    cs.accept_consultation(env, asked["id"], "PractitionerRole/prr-endo")
    with pytest.raises(FhirError) as err:  # two doctors, one consultation: the second is refused
        cs.accept_consultation(env, asked["id"], "PractitionerRole/prr-endo")
    assert err.value.status == 409
    task = store.get("Task", asked["id"])
    assert task["status"] == "in-progress" and task["owner"]["reference"] == "PractitionerRole/prr-endo"
    enc = store.get("Encounter", task["encounter"]["reference"].split("/")[1])
    assert enc["class"]["code"] == "VR" and enc["status"] == "in-progress"

    m1 = cs.send_message(env, asked["id"], "PractitionerRole/prr-endo", "请问目前用什么药？")
    m2 = cs.send_message(env, asked["id"], "Patient/pat-1", "二甲双胍，每天两次")
    with pytest.raises(FhirError) as err:
        cs.send_message(env, asked["id"], "PractitionerRole/prr-resp", "插话")
    assert err.value.status == 403
    assert [m["text"] for m in cs.messages(store, asked["id"])] == ["请问目前用什么药？", "二甲双胍，每天两次"]
    assert [m["seq"] for m in cs.messages(store, asked["id"], after=m1["seq"])] == [m2["seq"]]
    comm = store.get("Communication", m2["id"])
    assert comm["partOf"][0]["reference"] == f"Task/{asked['id']}" and comm["sender"]["reference"] == "Patient/pat-1"
    assert (f"consult.item.{asked['id']}", {"type": "message", **m2}) in province.events

    with pytest.raises(FhirError):
        cs.rate_consultation(env, asked["id"], "Patient/pat-1", 5)  # not closed yet
    closed = cs.close_consultation(env, asked["id"], "PractitionerRole/prr-endo", "二甲双胍加量至1g每日两次，两周后复查血糖",
                                   appointment="两周后内分泌科门诊")
    assert closed["status"] == "closed"
    assert store.get("Encounter", enc["id"])["status"] == "finished"
    cs.rate_consultation(env, asked["id"], "Patient/pat-1", 4, "回复及时")
    with pytest.raises(FhirError):
        cs.rate_consultation(env, asked["id"], "Patient/pat-1", 5)  # once
    view = cs.consultation_view(store, asked["id"])
    assert [s["action"] for s in view["steps"]] == ["open", "accept", "close", "rate"]
    assert view["rating"] == 4 and view["outputs"]["advice"] == ["二甲双胍加量至1g每日两次，两周后复查血糖"]

    figures = stats.consult_statistics(store)
    assert figures["consultations"]["consultations"] == 1 and figures["consultations"]["rating_avg"] == 4
    assert figures["by_doctor"]["PractitionerRole/prr-endo"]["answered"] == 1
    assert figures["consultations"]["response_s"]["median"] is not None


def test_red_flags_make_it_urgent_and_first_in_the_queue(province):
    env = province.env
    calm = cs.ask_question(env, patient="Patient/pat-1", text="血压有点高，140/90，要紧吗", hospital="Organization/org-prov",
                           department="03.04")
    urgent = cs.ask_question(env, patient="Patient/pat-1", text="胸口压榨样疼痛半小时，满头大汗，左臂发麻", age=66,
                             hospital="Organization/org-prov", department="03.04")
    assert urgent["urgent"] and "120" in urgent["advice"] and urgent["red_flags"]
    assert province.store.get("Task", urgent["id"])["priority"] == "stat"
    desk = queues.doctor_desk(province.store, "PractitionerRole/prr-cardio1")
    assert [w["id"] for w in desk["waiting"]] == [urgent["id"], calm["id"]]


def test_only_the_guardian_on_the_card_may_ask_for_a_dependant(province):
    from hutong.card import service as card

    env = province.env
    with pytest.raises(FhirError) as err:  # no guardian relation yet
        cs.ask_question(env, patient="Patient/pat-child", asker="Patient/pat-1", text="孩子咳嗽两天")
    assert err.value.status == 403 and "监护人" in err.value.diagnostics
    mine, _ = card.issue_card(province.store, "Patient/pat-1")
    card.issue_card(province.store, "Patient/pat-child", channel="guardian", guardian_card=mine["card_id"],
                    relationship="child")
    asked = cs.ask_question(env, patient="Patient/pat-child", asker="Patient/pat-1", text="孩子咳嗽两天")
    assert asked["id"]
    with pytest.raises(FhirError) as err:  # the child may not act for the guardian
        cs.ask_question(env, patient="Patient/pat-1", asker="Patient/pat-child", text="替家长问")
    assert err.value.status == 403


def test_no_online_first_visit(province):
    from hutong.card import service as card

    env = province.env
    mine, _ = card.issue_card(province.store, "Patient/pat-1")
    card.issue_card(province.store, "Patient/pat-child", channel="guardian", guardian_card=mine["card_id"])
    with pytest.raises(FhirError) as err:  # the child has never been seen in person
        cs.ask_question(env, patient="Patient/pat-child", asker="Patient/pat-1", text="孩子咳嗽两天", kind="followup")
    assert err.value.status == 422 and "复诊" in err.value.diagnostics
    follow = cs.ask_question(env, patient="Patient/pat-1", text="糖尿病复诊，想续开二甲双胍", kind="followup")
    assert follow["hospital"] == "Organization/org-prov" and follow["department"] == "03.07"
    assert follow["diagnosis"] == "2型糖尿病"


def test_e_prescription_valid_only_after_pharmacist_review(province):
    env, store = province.env, province.store
    free = cs.ask_question(env, patient="Patient/pat-1", text="血糖偏高怎么办", hospital="Organization/org-prov",
                           department="03.07")
    cs.accept_consultation(env, free["id"], "PractitionerRole/prr-endo")
    drugs = [{"name": "二甲双胍缓释片", "dosage": "0.5g 每日两次", "quantity": 60, "unit": "片"}]
    with pytest.raises(FhirError) as err:
        rx.issue_prescription(env, free["id"], "PractitionerRole/prr-endo", drugs)  # a free consultation
    assert err.value.status == 422

    follow = cs.ask_question(env, patient="Patient/pat-1", text="糖尿病复诊，续开药", kind="followup")
    cs.accept_consultation(env, follow["id"], "PractitionerRole/prr-endo")
    p = rx.issue_prescription(env, follow["id"], "PractitionerRole/prr-endo", drugs)
    assert p["status"] == "pending" and not rx.prescription_valid(store, p["id"])
    assert store.get("MedicationRequest", p["requests"][0].split("/")[1])["status"] == "draft"
    assert [r["id"] for r in rx.pending_reviews(store, "Organization/org-prov")] == [p["id"]]
    with pytest.raises(FhirError) as err:
        rx.review_prescription(env, p["id"], "PractitionerRole/prr-endo", "approve")  # not a pharmacist
    assert err.value.status == 403
    rx.review_prescription(env, p["id"], "PractitionerRole/prr-pharm", "approve", "剂量合适")
    assert rx.prescription_valid(store, p["id"])
    assert store.get("MedicationRequest", p["requests"][0].split("/")[1])["status"] == "active"
    with pytest.raises(FhirError):
        rx.review_prescription(env, p["id"], "PractitionerRole/prr-pharm", "reject", "again")


def test_missed_first_response_escalates_to_another_doctor(province):
    env, store = province.env, province.store
    asked = cs.ask_question(env, patient="Patient/pat-1", text="心慌胸闷一周了，活动后明显", doctor="PractitionerRole/prr-cardio1")
    assert asked["doctor"] == "PractitionerRole/prr-cardio1"
    row = cs.consultation_view(store, asked["id"])
    assert sla.escalate_overdue(env, now_us()) == []  # not due yet
    later = now_us() + 31 * 60 * 1_000_000
    assert sla.escalate_overdue(env, later) == [asked["id"]]
    view = cs.consultation_view(store, asked["id"])
    assert view["owner"] == "PractitionerRole/prr-cardio2" and view["breached"] and view["escalations"] == 1
    assert view["due"] > row["due"]
    texts = [t for r, t, i in province.notifier.sent if r == "Patient/pat-1" and i == asked["id"]]
    assert any("转交" in t for t in texts)
    assert stats.consult_statistics(store)["consultations"]["breaches"] == 1
    assert sla.escalate_overdue(env, later) == []  # once per deadline


def test_working_hours_deadline(province):
    import dataclasses
    from datetime import datetime

    from hutong.core.clock import SHANGHAI, to_us

    env = dataclasses.replace(province.env, settings=dataclasses.replace(province.env.settings, consult_hours="08:00-22:00"))
    night = to_us(datetime(2026, 12, 1, 23, 10, tzinfo=SHANGHAI))
    assert sla.response_due(env, night) == to_us(datetime(2026, 12, 2, 8, 30, tzinfo=SHANGHAI))
    late = to_us(datetime(2026, 12, 1, 21, 50, tzinfo=SHANGHAI))
    assert sla.response_due(env, late) == to_us(datetime(2026, 12, 2, 8, 20, tzinfo=SHANGHAI))


def test_doctors_off_duty_by_their_registry_hours_are_not_offered(province):
    from datetime import datetime

    from hutong.consult import directory
    from hutong.core.clock import SHANGHAI

    with province.store.write() as tx:
        role = tx.read("PractitionerRole", "prr-cardio2").resource
        role["availableTime"] = [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                                  "availableStartTime": "08:00:00", "availableEndTime": "17:00:00"}]
        tx.update("PractitionerRole", "prr-cardio2", role)
    with province.store.read() as tx:
        weekday = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)  # a Wednesday morning
        saturday = datetime(2026, 12, 5, 10, 0, tzinfo=SHANGHAI)
        on = [d.role for d in directory.online_doctors(tx, "Organization/org-prov", "03.04", at=weekday)]
        off = [d.role for d in directory.online_doctors(tx, "Organization/org-prov", "03.04", at=saturday)]
    assert on == ["PractitionerRole/prr-cardio1", "PractitionerRole/prr-cardio2"]
    assert off == ["PractitionerRole/prr-cardio1"]  # no hours recorded: follows the platform's hours
