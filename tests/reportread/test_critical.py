"""Critical values: a potassium of 7.2 mmol/L raises a Flag and a Communication the ordering doctor
sees, exactly once; acknowledgement closes it; an unacknowledged one escalates to the department;
counts and time to acknowledgement (both backends)."""

from __future__ import annotations

from hutong.core.clock import now_us
from hutong.reportread import critical
from tests.reportread.helpers import obs


def seed(store, value=7.2, oid="k1"):
    """A hospital, a doctor's role in a department, a patient and an encounter; then a potassium result.

    The node registers the consumer itself (``build_node``); a bare store needs it done here."""
    store.register_consumer(critical.CONSUMER, critical.consume, {"Observation"})  # same entry when already there
    with store.write() as tx:
        tx.update("Organization", "hosp1", {"resourceType": "Organization", "id": "hosp1", "name": "长春市第一医院"})
        tx.update("HealthcareService", "svc-neph", {"resourceType": "HealthcareService", "id": "svc-neph",
                                                     "providedBy": {"reference": "Organization/hosp1"}, "name": "肾内科"})
        tx.update("Practitioner", "dr1", {"resourceType": "Practitioner", "id": "dr1"})
        tx.update("PractitionerRole", "role1", {
            "resourceType": "PractitionerRole", "id": "role1", "practitioner": {"reference": "Practitioner/dr1"},
            "organization": {"reference": "Organization/hosp1"}, "healthcareService": [{"reference": "HealthcareService/svc-neph"}]})
        tx.update("Patient", "pat1", {"resourceType": "Patient", "id": "pat1", "gender": "male", "birthDate": "1960-05-01"})
        tx.update("Encounter", "enc1", {
            "resourceType": "Encounter", "id": "enc1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/pat1"}, "participant": [{"individual": {"reference": "PractitionerRole/role1"}}],
            "serviceProvider": {"reference": "Organization/hosp1"}})
    return write_result(store, value, oid)


def write_result(store, value, oid):
    o = obs(oid, "2823-3", "钾", value, "mmol/L", subject={"reference": "Patient/pat1"},
            encounter={"reference": "Encounter/enc1"})
    o.pop("id")
    with store.write() as tx:
        tx.update("Observation", oid, {**o, "id": oid})
    store.run_consumers()


def test_potassium_7_2_raises_a_flag_the_ordering_doctor_sees(store):
    seed(store)
    alerts = critical.list_alerts(store, doctor="PractitionerRole/role1")
    assert len(alerts) == 1
    a = alerts[0]
    assert a["analyte"] == "K" and a["direction"] == "critical-high" and a["value"] == 7.2 and a["status"] == "open"
    assert a["institution"] == "Organization/hosp1" and a["department"] == "HealthcareService/svc-neph"
    with store.read() as tx:
        comm = tx.read(*a["communication"].split("/")).resource
        flag = tx.read(*a["flag"].split("/")).resource
        by_recipient = tx.search_ids("Communication", [("recipient", "PractitionerRole/role1")])
        flags = tx.search_ids("Flag", [("patient", "Patient/pat1")])
    assert comm["status"] == "in-progress" and comm["priority"] == "stat"
    assert {"reference": "PractitionerRole/role1"} in comm["recipient"] and "7.2" in comm["payload"][0]["contentString"]
    assert flag["status"] == "active" and flag["subject"] == {"reference": "Patient/pat1"} and "危急值" in flag["code"]["text"]
    assert a["communication"].split("/")[1] in by_recipient and a["flag"].split("/")[1] in flags


def test_each_result_raises_one_alert_and_normal_results_none(store):
    seed(store)
    write_result(store, 7.4, "k1")        # an amended critical value of the same result
    store.run_consumers()
    write_result(store, 4.2, "k2")        # a normal result
    write_result(store, 2.1, "k3")        # a critically low one
    alerts = critical.list_alerts(store)
    assert sorted(a["observation"] for a in alerts) == ["Observation/k1", "Observation/k3"]
    assert {a["direction"] for a in alerts} == {"critical-high", "critical-low"}


def test_acknowledge_closes_the_alert_and_counts_the_time(store):
    seed(store)
    a = critical.list_alerts(store)[0]
    done = critical.acknowledge(store, a["id"], "PractitionerRole/role1", "已电话通知患者复查", at_us=a["created_us"] + 120_000_000)
    assert done["status"] == "acknowledged" and done["seconds_to_ack"] == 120.0
    with store.read() as tx:
        assert tx.read(*a["communication"].split("/")).resource["status"] == "completed"
        assert tx.read(*a["flag"].split("/")).resource["status"] == "inactive"
    import pytest

    from hutong.core.errors import FhirError
    with pytest.raises(FhirError) as err:
        critical.acknowledge(store, a["id"])
    assert err.value.status == 409
    assert critical.escalate_overdue(store, at_us=now_us() + 3600 * 10**6) == []
    s = critical.statistics(store)
    assert s["total"] == 1 and s["acknowledged"] == 1 and s["acknowledged_in_time"] == 1
    assert s["seconds_to_ack"]["median"] == 120.0 and s["by_item"] == {"K": 1}


def test_unacknowledged_alert_escalates_to_the_department_once(store):
    seed(store)
    a = critical.list_alerts(store)[0]
    assert critical.escalate_overdue(store, at_us=a["deadline_us"] - 1) == []
    assert critical.escalate_overdue(store, at_us=a["deadline_us"] + 1) == [a["id"]]
    assert critical.escalate_overdue(store, at_us=a["deadline_us"] + 2) == []
    again = critical.list_alerts(store)[0]
    assert again["status"] == "escalated" and again["escalation"]
    with store.read() as tx:
        esc = tx.read(*again["escalation"].split("/")).resource
    assert {"reference": "HealthcareService/svc-neph"} in esc["recipient"]
    assert esc["partOf"] == [{"reference": a["communication"]}] and "超时未确认" in esc["payload"][0]["contentString"]
    late = critical.acknowledge(store, a["id"], "PractitionerRole/role1", at_us=a["deadline_us"] + 60_000_000)
    assert late["status"] == "acknowledged"
    s = critical.statistics(store)
    assert s["escalated"] == 1 and s["acknowledged_in_time"] == 0
