"""Online index on the store (both backends) and its HTTP interfaces."""

from __future__ import annotations

import httpx

from hutong.mpi import linked_patients, person_for_patient, service

RID = "urn:oid:2.16.156.10011.1.3"
ID = "220102198503041230"


def _patient(pid, family, given, birth, idn, phone, system):
    ident = [{"system": system, "value": "MRN-" + pid}] + ([{"system": RID, "value": idn}] if idn else [])
    return {"resourceType": "Patient", "id": pid, "identifier": ident, "name": [{"family": family, "given": [given]}],
            "gender": "male", "birthDate": birth, "telecom": [{"system": "phone", "value": phone}]}


def _load(store):
    store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})
    store.update("Patient", "a1", _patient("a1", "张", "伟", "1985-03-04", ID, "13900001111", "urn:h1"))
    store.update("Patient", "b1", _patient("b1", "張", "偉", "1985-04-03", ID[:6] + ID[8:17], "13900001111", "urn:h2"))
    store.update("Patient", "c1", _patient("c1", "李", "娜", "1990-01-01", "", "13700002222", "urn:h3"))
    # possible: same name, birth month differs, no ID, other phone
    store.update("Patient", "d1", _patient("d1", "张", "伟", "1985-05-04", "", "13500003333", "urn:h4"))
    store.run_consumers()


def test_consumer_links_through_change_log(store):
    _load(store)
    pa = person_for_patient(store, "a1")
    assert pa and pa == person_for_patient(store, "b1")
    assert person_for_patient(store, "c1") not in (None, pa)
    assert [p["id"] for p in linked_patients(store, "b1")][:1] == ["b1"]
    assert {p["id"] for p in linked_patients(store, "a1")} >= {"a1", "b1"}
    person = store.get("Person", pa)
    assert {lk["target"]["reference"] for lk in person["link"]} >= {"Patient/a1", "Patient/b1"}
    assert person["link"][0]["extension"][0]["valueCode"] in ("certain", "probable", "possible")
    # an update is re-linked, a delete unlinks
    store.update("Patient", "c1", _patient("c1", "李", "娜", "1990-01-02", "", "13700002222", "urn:h3"))
    store.delete("Patient", "c1")
    store.run_consumers()
    assert person_for_patient(store, "c1") is None


def test_review_merge_unmerge_roundtrip(store):
    _load(store)
    items = service.review_list(store)
    pairs = {(i["patient_id"], i["candidate_id"]) for i in items}
    assert any("d1" in p for p in pairs), items
    item = next(i for i in items if "d1" in (i["patient_id"], i["candidate_id"]))
    detail = service.review_get(store, item["id"])
    assert detail["left"]["resource"] and detail["right"]["resource"] and detail["evidence"]
    before = {p: person_for_patient(store, p) for p in ("a1", "b1", "d1")}
    done = service.review_decide(store, item["id"], "link")
    assert person_for_patient(store, "d1") == person_for_patient(store, "a1")
    audit = store.get("AuditEvent", done["audit"])
    assert audit["subtype"][0]["code"] == "merge"
    service.unmerge(store, audit=done["audit"])
    after = {p: person_for_patient(store, p) for p in ("a1", "b1", "d1")}
    assert after == before


def test_pix_and_match_over_http(server, server_store):
    _load(server_store)
    with httpx.Client(base_url=server, timeout=30) as c:
        r = c.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": "urn:h1|MRN-a1", "targetSystem": "urn:h2"})
        assert r.status_code == 200, r.text
        params = r.json()["parameter"]
        assert {"name": "targetIdentifier", "valueIdentifier": {"system": "urn:h2", "value": "MRN-b1"}} in params
        assert any(p["name"] == "targetId" and p["valueReference"]["reference"] == "Patient/b1" for p in params)
        assert c.get("/fhir/Patient/$ihe-pix", params={"sourceIdentifier": "urn:h1|nope"}).status_code == 404
        body = {"resourceType": "Parameters", "parameter": [
            {"name": "resource", "resource": _patient("q", "张", "伟", "1985-03-04", ID, "13900001111", "urn:q")},
            {"name": "count", "valueInteger": 5}]}
        r = c.post("/fhir/Patient/$match", json=body)
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["type"] == "searchset" and b["entry"]
        top = b["entry"][0]["search"]
        assert top["score"] > 0.9 and top["extension"][0]["valueCode"] == "certain"
        assert c.post("/fhir/Patient/$match", json={"resourceType": "Parameters"}).status_code == 400
        r = c.get("/api/mpi/review")
        assert r.status_code == 200 and r.json()["items"]
        r = c.post("/api/mpi/merge", json={"source": "Patient/c1", "target": "Patient/a1"})
        assert r.status_code == 200, r.text
        r = c.post("/api/mpi/unmerge", json={"audit": r.json()["audit"]})
        assert r.status_code == 200, r.text
        assert service.person_for_patient(server_store, "c1") != service.person_for_patient(server_store, "a1")


def test_review_explains_a_family_pair_in_words(store):
    """Twins at one address with one phone, no IDs: not linked, reviewed, and the reason says why."""
    store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})
    for pid, given in (("tw1", "子涵"), ("tw2", "子轩")):
        p = _patient(pid, "李", given, "2019-08-08", "", "13900001111", "urn:h1")
        p["address"] = [{"text": "吉林省长春市朝阳区红旗街100号3栋2单元"}]
        store.update("Patient", pid, p)
    store.run_consumers()
    assert person_for_patient(store, "tw1") != person_for_patient(store, "tw2")
    items = [i for i in service.review_list(store) if {i["patient_id"], i["candidate_id"]} == {"tw1", "tw2"}]
    assert items, service.review_list(store)
    reasons = service.review_get(store, items[0]["id"])["reasons"]
    assert "twins" in {r["code"] for r in reasons}
    assert any("双胞胎" in r["zh"] for r in reasons)
