"""Two-way referral and five-level telemedicine, through the service functions (both backends)."""

from __future__ import annotations

import pytest

from hutong.consult import directory, queues, referral, schedule, sla, stats, telemed
from hutong.core.clock import now_us
from hutong.core.errors import FhirError

VILLAGE, TOWN, COUNTY, PROV = ("Organization/org-village", "Organization/org-town", "Organization/org-county",
                               "Organization/org-prov")


def test_levels_of_the_demo_institutions(province):
    with province.store.read() as tx:
        levels = [directory.org_level(directory.organization(tx, o)) for o in (PROV, COUNTY, TOWN, VILLAGE)]
    assert levels == ["province", "county", "township", "village"]


def test_no_slot_is_visible_to_the_sender_and_redirected(province):
    env, store = province.env, province.store
    ref = referral.refer_patient(env, patient="Patient/pat-1", sender="PractitionerRole/prr-town", sender_org=TOWN,
                                 receiver_org=COUNTY, reason="胸闷气短加重，需上级医院评估冠心病", records=["Observation/obs-ecg"])
    assert ref["status"] == "requested" and ref["subkind"] == "up"
    assert [r["id"] for r in queues.inbox(store, COUNTY)] == [ref["id"]]
    with pytest.raises(FhirError) as err:  # only the receiving side declines
        referral.decline_referral(env, ref["id"], by="PractitionerRole/prr-town", by_org=TOWN, reason="no-slot")
    assert err.value.status == 403
    referral.decline_referral(env, ref["id"], by="PractitionerRole/prr-county", by_org=COUNTY, reason="no-slot",
                              note="心内科本周无号")
    out = queues.outbox(store, TOWN)
    assert out[0]["id"] == ref["id"] and out[0]["status"] == "no-slot"
    task = store.get("Task", ref["id"])
    assert task["status"] == "on-hold" and task["statusReason"]["coding"][0]["code"] == "no-slot"
    assert any(r == TOWN and "改转" in t for r, t, _ in province.notifier.sent)
    assert queues.coordinator_view(store)["awaiting_sender"][0]["id"] == ref["id"]

    new = referral.redirect_referral(env, ref["id"], by="PractitionerRole/prr-town", by_org=TOWN, receiver_org=PROV)
    assert store.get("Task", ref["id"])["businessStatus"]["coding"][0]["code"] == "redirected"
    moved = referral.referral_view(store, new["redirected_to"])
    assert moved["target_org"] == PROV and moved["parent"] == ref["id"] and moved["shared"] == ["Observation/obs-ecg"]
    sr = store.get("ServiceRequest", moved["request"].split("/")[1])
    assert sr["replaces"][0]["reference"] == ref["request"]
    assert store.get("ServiceRequest", ref["request"].split("/")[1])["status"] == "revoked"


def test_accepted_referral_returns_down_with_a_follow_up_plan(province):
    env, store = province.env, province.store
    by = {"by": "PractitionerRole/prr-cardio1", "by_org": PROV}
    ref = referral.refer_patient(env, patient="Patient/pat-1", sender="PractitionerRole/prr-county",
                                 sender_org=COUNTY, receiver_org=PROV, reason="急性冠脉综合征待排")
    slots = schedule.publish_slots(store, PROV, "2026-12-10T09:00", 2)
    referral.accept_referral(env, ref["id"], **by)
    booked = referral.book_referral(env, ref["id"], slot=f"Slot/{slots['slots'][0]}", **by)
    assert store.get("Slot", slots["slots"][0])["status"] == "busy"
    appt = store.get("Appointment", booked["appointment"].split("/")[1])
    assert appt["status"] == "booked" and appt["start"].startswith("2026-12-10T01:00")
    with pytest.raises(FhirError) as err:
        referral.book_referral(env, ref["id"], slot=f"Slot/{slots['slots'][0]}", **by)  # taken already
    assert err.value.status == 409
    referral.mark_arrived(env, ref["id"], **by)
    referral.complete_referral(env, ref["id"], summary="冠脉造影：前降支狭窄70%，已植入支架", **by)
    back = referral.return_patient(env, ref["id"], plan="阿司匹林+氯吡格雷12个月；每月社区随访血压血脂", **by)
    assert store.get("Task", ref["id"])["businessStatus"]["coding"][0]["code"] == "returned"
    down = referral.referral_view(store, back["downward"])
    assert down["subkind"] == "down" and down["target_org"] == COUNTY and down["shared"] == [back["care_plan"]]
    assert store.get("CarePlan", back["care_plan"].split("/")[1])["description"].startswith("阿司匹林")
    steps = [s["status"] for s in referral.referral_view(store, ref["id"])["steps"]]
    assert steps == ["requested", "accepted", "booked", "arrived", "completed", "returned"]
    figures = stats.consult_statistics(store)["referrals"]
    assert figures["by_direction"] == {"up": 1, "down": 1} and figures["returned"] == 1


def test_referral_direction_and_shared_records_are_checked(province):
    env = province.env
    with pytest.raises(FhirError) as err:  # "up" to a lower level
        referral.refer_patient(env, patient="Patient/pat-1", sender="PractitionerRole/prr-county", sender_org=COUNTY,
                               receiver_org=VILLAGE, reason="x")
    assert err.value.status == 422
    with pytest.raises(FhirError) as err:  # a record of someone else
        referral.refer_patient(env, patient="Patient/pat-child", sender="PractitionerRole/prr-town", sender_org=TOWN,
                               receiver_org=COUNTY, reason="x", records=["Observation/obs-ecg"])
    assert err.value.status == 422


def test_an_unanswered_referral_is_flagged(province):
    env, store = province.env, province.store
    ref = referral.refer_patient(env, patient="Patient/pat-1", sender="PractitionerRole/prr-town", sender_org=TOWN,
                                 receiver_org=COUNTY, reason="高血压控制不佳")
    assert sla.escalate_overdue(env, now_us() + 49 * 3600 * 1_000_000) == [ref["id"]]
    row = referral.referral_view(store, ref["id"])
    assert row["breached"] and row["steps"][-1]["action"] == "overdue" and row["status"] == "requested"
    assert {r for r, t, i in province.notifier.sent if i == ref["id"] and "时限" in t} >= {TOWN, COUNTY}


def test_village_teleconsultation_answered_by_county_with_access_limited_to_what_was_shared(province):
    env, store = province.env, province.store
    with pytest.raises(FhirError) as err:  # telemedicine goes up, never sideways or down
        telemed.request_teleconsult(env, requester="PractitionerRole/prr-county", patient="Patient/pat-1",
                                    target_org=VILLAGE, tele_kind="consultation", question="?")
    assert err.value.status == 422
    req = telemed.request_teleconsult(env, requester="PractitionerRole/prr-village",
                                      patient="urn:oid:2.16.156.10011.1.3|220122196003010012",
                                      target_org=COUNTY, tele_kind="ecg", question="心电图ST段改变，请协助判读",
                                      records=["Observation/obs-ecg"])
    assert req["patient"] == "Patient/pat-1" and req["levels"] == ["village", "county"]
    slots = schedule.publish_slots(store, "PractitionerRole/prr-county", "2026-12-03T14:00", 3, minutes=20)
    free = schedule.free_slots(store, "PractitionerRole/prr-county")
    assert len(free) == 3
    done = telemed.schedule_teleconsult(env, req["id"], by_org=COUNTY, consultant="PractitionerRole/prr-county",
                                        slot=free[0]["id"], room_link="https://video.example/room/abc")
    appt = store.get("Appointment", done["appointment"].split("/")[1])
    assert appt["extension"][0]["valueUrl"] == "https://video.example/room/abc" and len(slots["slots"]) == 3

    county = "PractitionerRole/prr-county"
    assert telemed.shared_records(store, req["id"], county) == ["Observation/obs-ecg"]
    assert telemed.shared_record(env, req["id"], county, "Observation/obs-ecg")["valueString"].startswith("窦性")
    with pytest.raises(FhirError) as err:  # not shared
        telemed.shared_record(env, req["id"], county, "Observation/obs-other")
    assert err.value.status == 403
    with pytest.raises(FhirError) as err:  # another doctor
        telemed.shared_record(env, req["id"], "PractitionerRole/prr-cardio1", "Observation/obs-ecg")
    assert err.value.status == 403

    telemed.start_session(env, req["id"], by=county)
    out = telemed.report_teleconsult(env, req["id"], by=county, conclusion="下壁导联ST段压低，考虑心肌缺血，建议上转")
    report = store.get("DiagnosticReport", out["report"].split("/")[1])
    assert report["status"] == "final" and report["basedOn"][0]["reference"] == req["request"]
    task = store.get("Task", req["id"])
    assert task["status"] == "completed" and "executionPeriod" in task
    assert [s["action"] for s in telemed.telemed_steps(store, req["id"])] == [
        "open", "schedule", "view-shared", "start", "report"]
    assert stats.consult_statistics(store)["telemedicine"]["by_status"] == {"reported": 1}


def test_family_doctor_contract_for_a_year_counts_in_statistics(province):
    from hutong.consult import family

    env, store = province.env, province.store
    with pytest.raises(FhirError) as err:  # a tertiary hospital does not sign family-doctor contracts
        family.sign_contract(env, patient="Patient/pat-1", team=["PractitionerRole/prr-cardio1"], programmes=[])
    assert err.value.status == 422
    signed = family.sign_contract(env, patient="Patient/pat-1", team=["PractitionerRole/prr-town"],
                                  programmes=["hypertension", "diabetes"], by_org=TOWN)
    team = store.get("CareTeam", signed["id"])
    assert team["subject"]["reference"] == "Patient/pat-1"
    assert int(team["period"]["end"][:4]) == int(team["period"]["start"][:4]) + 1
    assert len(signed["care_plans"]) == 2
    with pytest.raises(FhirError) as err:
        family.sign_contract(env, patient="Patient/pat-1", team=["PractitionerRole/prr-town"], programmes=[])
    assert err.value.status == 409
    listed = family.contracted_residents(store, TOWN)
    assert [r["patient"] for r in listed] == ["Patient/pat-1"] and listed[0]["next_follow_up"]
    assert family.is_contracted_team_member(store, "PractitionerRole/prr-town", "Patient/pat-1")
    assert not family.is_contracted_team_member(store, "PractitionerRole/prr-county", "Patient/pat-1")
    assert stats.consult_statistics(store)["family_doctor_contracts"]["by_programme"] == {"hypertension": 1,
                                                                                          "diabetes": 1}
    family.end_contract(env, signed["id"], by_org=TOWN)
    assert family.contracted_residents(store, TOWN) == []
