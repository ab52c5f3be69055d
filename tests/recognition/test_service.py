"""recognisable_results: what is offered and what is not (both backends)."""

from __future__ import annotations

from hutong.recognition.catalog import current_catalog
from hutong.recognition.service import order_codes, recognisable_results, resolve_patient
from tests.recognition.helpers import CBC_ORDER, IMAGING_LOCAL, LAB_LOCAL, cbc_report, imaging, order, seed


def _offers(store, codes, institution="hosp-b", patients=("pa", "pb")):
    with store.read() as tx:
        return recognisable_results(tx, list(patients), codes, institution)


def _put(store, *resources):
    with store.write() as tx:
        for r in resources:
            tx.update(r["resourceType"], r["id"], r)
    store.run_consumers()


def test_recent_result_at_another_hospital_is_offered(store):
    seed(store)
    _put(store, cbc_report("rep-a1", "pa", "hosp-a", 2), cbc_report("rep-a0", "pa", "hosp-a", 5))
    offers = _offers(store, order_codes(order("o1", "pb", CBC_ORDER)))
    assert [(o.item.key, o.reference, o.institution.id) for o in offers] == [
        ("recognition-cbc", "DiagnosticReport/rep-a1", "hosp-a")]  # the latest one, once
    assert offers[0].summary["conclusion"] == "血常规未见明显异常"
    assert offers[0].expires_us - offers[0].effective_us == 7 * 86_400_000_000
    # the ordering hospital's own result is not "another institution's"
    assert _offers(store, order_codes(order("o1", "pa", CBC_ORDER)), institution="hosp-a") == []


def test_too_old_unqualified_out_of_scope_and_hidden_are_not_offered(store):
    seed(store)
    # too old: the CBC window is 7 days
    _put(store, cbc_report("old", "pa", "hosp-a", 8))
    assert _offers(store, ["http://loinc.org|58410-2"]) == []
    # from a primary clinic: CBC qualifies 3A/3B/2A only
    _put(store, cbc_report("clinic", "pa", "clinic-d", 1))
    assert _offers(store, ["http://loinc.org|58410-2"]) == []
    # hidden by the patient (restricted confidentiality)
    _put(store, cbc_report("secret", "pa", "hosp-c", 1,
                           meta={"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                               "code": "R"}]}))
    assert _offers(store, ["http://loinc.org|58410-2"]) == []
    # preliminary results are not recognised
    _put(store, cbc_report("prelim", "pa", "hosp-a", 1, status="preliminary"))
    assert _offers(store, ["http://loinc.org|58410-2"]) == []
    # an order for something not in the catalog
    assert _offers(store, ["http://loinc.org|0000-0"]) == []
    # the ultrasound item is recognised within the consortium only: A's result counts at E, not at B
    _put(store, imaging("us-a", "pa", "hosp-a", "US-ABD", 3))
    us = [f"{IMAGING_LOCAL}|US-ABD"]
    assert _offers(store, us, institution="hosp-b") == []
    assert [o.reference for o in _offers(store, us, institution="hosp-e")] == ["ImagingStudy/us-a"]


def test_lapsed_qualification_stops_recognition_from_its_date(store):
    seed(store)
    _put(store, cbc_report("rep-c", "pa", "hosp-c", 3))
    assert [o.reference for o in _offers(store, ["http://loinc.org|58410-2"])] == ["DiagnosticReport/rep-c"]
    # C's own qualification for CBC lapsed four days ago: its result of three days ago is no longer recognised
    with store.write() as tx:
        item = tx.read("ActivityDefinition", "recognition-cbc").resource
        from tests.recognition.helpers import when
        item["extension"].append({"url": "https://hutong.example/fhir/StructureDefinition/recognition-qualified",
                                  "extension": [{"url": "institution", "valueReference": {"reference": "Organization/hosp-c"}},
                                                {"url": "period", "valuePeriod": {"start": "2022-03-01",
                                                                                  "end": when(4)}}]})
        tx.update("ActivityDefinition", "recognition-cbc", item)
    assert _offers(store, ["http://loinc.org|58410-2"]) == []
    # a result from before the lapse still counts
    _put(store, cbc_report("rep-c-old", "pa", "hosp-c", 5))
    assert [o.reference for o in _offers(store, ["http://loinc.org|58410-2"])] == ["DiagnosticReport/rep-c-old"]


def test_condition_shortens_the_window_and_city_scope(store):
    seed(store)
    _put(store, cbc_report("rep-a", "pa", "hosp-a", 5))
    assert len(_offers(store, [f"{LAB_LOCAL}|XCG"])) == 1
    # pregnancy: the CBC window is 3 days
    _put(store, {"resourceType": "Condition", "id": "preg", "subject": {"reference": "Patient/pb"},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                "code": "active"}]},
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "Z33"}]}})
    assert _offers(store, [f"{LAB_LOCAL}|XCG"]) == []
    # ECG is recognised within the city: from C (Jilin city) not at B (Changchun)
    ecg = {"resourceType": "Observation", "id": "ecg-c", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "11524-6"}], "text": "心电图"},
           "subject": {"reference": "Patient/pa"}, "effectiveDateTime": cbc_report("x", "pa", "hosp-c", 1)["effectiveDateTime"],
           "performer": [{"reference": "Organization/hosp-c"}], "valueString": "窦性心律"}
    _put(store, ecg)
    assert _offers(store, ["http://loinc.org|11524-6"]) == []
    ecg.update(id="ecg-a", performer=[{"reference": "Organization/hosp-a"}])
    _put(store, ecg)
    offers = _offers(store, ["http://loinc.org|11524-6"])
    assert [o.reference for o in offers] == ["Observation/ecg-a"] and offers[0].summary["value"] == "窦性心律"


def test_deleted_result_leaves_the_index_and_patient_resolution(store):
    seed(store)
    _put(store, cbc_report("rep-a", "pa", "hosp-a", 1))
    with store.write() as tx:
        tx.delete("DiagnosticReport", "rep-a")
    store.run_consumers()
    assert _offers(store, ["http://loinc.org|58410-2"]) == []
    with store.read() as tx:
        # by the prefetched Patient's resident ID, by B's own record number, by a platform id; each linked
        assert set(resolve_patient(tx, "x", {"identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                                                            "value": "220102199003071234"}]}, "hosp-b")) == {"pa", "pb"}
        assert set(resolve_patient(tx, "B0042", None, "hosp-b")) == {"pa", "pb"}
        assert set(resolve_patient(tx, "pb", None, None)) == {"pa", "pb"}
        assert resolve_patient(tx, "nobody", None, "hosp-b") == []
        assert resolve_patient(tx, "bad id with spaces", None, None) == []
        assert len(current_catalog(tx).items) == 18
