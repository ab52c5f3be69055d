"""The shared record: $everything and searches across linked identities; the same result once, look-alikes twice."""

from __future__ import annotations

import pytest

from hutong.mpi import service as mpi
from hutong.search.everything import SOURCE_RECORD_URL
from hutong.share import demo
from hutong.share.record import flag, lab_series, load_record


@pytest.fixture
def linked_store(store):
    demo.load_demo(store)
    return store


def test_the_patient_index_links_the_three_hospital_records(linked_store):
    person = mpi.person_for_patient(linked_store, "demo-p1")
    assert person is not None
    assert {p["id"] for p in mpi.linked_patients(linked_store, "demo-p2")} == {"demo-p1", "demo-p2", "demo-p3"}


def test_everything_returns_every_linked_record_with_its_source(linked_store, fhir):
    bundle = fhir.get("/Patient/demo-p1/$everything", params={"_count": 500}).json()
    entries = bundle["entry"]
    refs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries}
    assert {"Patient/demo-p1", "Patient/demo-p2", "Patient/demo-p3"} <= refs
    assert {"Encounter/demo-e1", "Encounter/demo-e2", "Encounter/demo-e3", "AllergyIntolerance/demo-a1"} <= refs
    by_ref = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e for e in entries}
    allergy = by_ref["AllergyIntolerance/demo-a1"]
    assert allergy["extension"] == [{"url": SOURCE_RECORD_URL, "valueReference": {"reference": "Patient/demo-p2"}}]
    assert allergy["resource"]["meta"]["source"] == "urn:hutong:org:demo-h2"
    assert bundle["total"] == len(entries)
    # The switch: only the one record, as before.
    single = fhir.get("/Patient/demo-p1/$everything", params={"_count": 500, "linked": "false"}).json()
    single_refs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in single["entry"]}
    assert "Encounter/demo-e2" not in single_refs and "Encounter/demo-e1" in single_refs
    assert all("extension" not in e for e in single["entry"])
    assert fhir.get("/Patient/demo-p1/$everything", params={"linked": "maybe"}).status_code == 400


def test_everything_pages_across_linked_records(linked_store, fhir):
    seen = []
    url = "/Patient/demo-p3/$everything?_count=5"
    while url:
        page = fhir.get(url).json()
        seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in page.get("entry", [])]
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
        if url:
            url = url.split("/fhir", 1)[1]
    assert len(seen) == len(set(seen)) and "Encounter/demo-e1" in seen


def test_patient_linked_modifier_searches_the_persons_records(linked_store, fhir):
    plain = fhir.get("/Observation", params={"patient": "Patient/demo-p2", "_count": 100}).json()
    assert {e["resource"]["id"] for e in plain["entry"]} == {"demo-o3", "demo-o4", "demo-o5"}
    linked = fhir.get("/Observation", params={"patient:linked": "Patient/demo-p2", "_count": 100}).json()
    ids = {e["resource"]["id"] for e in linked["entry"]}
    assert {"demo-o1", "demo-o3", "demo-o6", "demo-o9"} <= ids
    assert "patient%3Alinked" in linked["link"][0]["url"] or "patient:linked" in linked["link"][0]["url"]
    subject = fhir.get("/Encounter", params={"subject:linked": "demo-p1"}).json()
    assert {e["resource"]["id"] for e in subject["entry"]} == {"demo-e1", "demo-e2", "demo-e3"}
    bad = fhir.get("/Observation", params={"patient:linked": "Organization/x/y"})
    assert bad.status_code == 400


def test_same_result_from_two_institutions_shows_once_with_both_sources(linked_store):
    record = load_record(linked_store, "demo-p1")
    sept = [i for i in record.labs() if i.resource["effectiveDateTime"].startswith("2024-09-02")
            and i.resource["code"]["text"] == "空腹血糖"]
    assert len(sept) == 1
    assert {s.institution for s in sept[0].sources} == {"demo-h1", "demo-h3"}
    assert {s.institution_name for s in sept[0].sources} == {"长春市第一医院", "四平市人民医院"}
    assert record.merged_duplicates == 1


def test_results_that_only_look_alike_stay_two(linked_store):
    record = load_record(linked_store, "demo-p2")
    june = [i for i in record.labs() if i.resource["effectiveDateTime"].startswith("2024-06-18")
            and i.resource["code"]["text"] == "空腹血糖"]
    assert sorted(i.resource["valueQuantity"]["value"] for i in june) == [8.9, 11.2]
    assert all(len(i.sources) == 1 for i in june)


def test_single_record_mode_and_flags(linked_store):
    one = load_record(linked_store, "demo-p3", linked=False)
    assert {i.record for i in one.items} == {"demo-p3"}
    everyone = load_record(linked_store, "demo-p3")
    assert {i.record for i in everyone.items} == {"demo-p1", "demo-p2", "demo-p3"}
    glucose = lab_series(everyone.labs())["http://loinc.org|2345-7"]
    assert [p[1] for p in glucose["points"]] == [6.8, 8.9, 11.2, 7.2]
    assert flag(glucose["points"][0][2].resource) == "high"
    assert glucose["low"] == 3.9 and glucose["high"] == 6.1
