"""Search over real HTTP (``server``/``fhir`` fixtures, both backends): type, POST _search, compartment,
system search, handling preferences, Patient/$everything and Bulk Data $export."""

from __future__ import annotations

import time

import httpx
import pytest


@pytest.fixture
def loaded(fhir):
    fhir.put("/Organization/org1", json={"resourceType": "Organization", "id": "org1", "name": "长春医院"})
    for pid, fam in (("p1", "李"), ("p2", "刘")):
        fhir.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "name": [{"family": fam}],
                                          "managingOrganization": {"reference": "Organization/org1"}})
    for i in range(5):
        fhir.put(f"/Observation/o{i}", json={
            "resourceType": "Observation", "id": f"o{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "subject": {"reference": "Patient/p1" if i < 4 else "Patient/p2"},
            "effectiveDateTime": f"2020-01-0{i + 1}",
        })
    fhir.put("/Group/g1", json={"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
                                "member": [{"entity": {"reference": "Patient/p2"}}]})
    return fhir


def test_type_search_and_paging_links(loaded):
    r = loaded.get("/Observation", params={"patient": "p1", "_count": "2", "_sort": "date"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    b = r.json()
    assert b["type"] == "searchset" and b["total"] == 4
    assert [e["resource"]["id"] for e in b["entry"]] == ["o0", "o1"]
    nxt = next(link["url"] for link in b["link"] if link["relation"] == "next")
    b2 = httpx.get(nxt).json()
    assert [e["resource"]["id"] for e in b2["entry"]] == ["o2", "o3"]
    assert all(e["fullUrl"].endswith("/fhir/Observation/" + e["resource"]["id"]) for e in b2["entry"])


def test_post_search_with_form_body(loaded):
    r = loaded.post("/Patient/_search", data={"name": "李"})
    assert r.status_code == 200
    assert [e["resource"]["id"] for e in r.json()["entry"]] == ["p1"]


def test_compartment_and_system_search(loaded):
    b = loaded.get("/Patient/p1/Observation").json()
    assert sorted(e["resource"]["id"] for e in b["entry"]) == ["o0", "o1", "o2", "o3"]
    b = loaded.get("", params={"_type": "Patient", "_id": "p2"}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["p2"]


def test_strict_and_lenient_handling(loaded):
    r = loaded.get("/Patient", params={"bogus": "1"}, headers={"Prefer": "handling=strict"})
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome" and "bogus" in r.text
    r = loaded.get("/Patient", params={"bogus": "1"})
    assert r.status_code == 200
    assert any(e["search"]["mode"] == "outcome" for e in r.json()["entry"])
    assert loaded.get("/Patient", params={"birthdate": "19x"}).status_code == 400


def test_patient_everything(loaded):
    b = loaded.get("/Patient/p1/$everything").json()
    got = sorted((e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"])
    assert got == [("Observation", f"o{i}") for i in range(4)] + [("Patient", "p1")]
    b = loaded.get("/Patient/p1/$everything", params={"_type": "Observation", "_count": "3"}).json()
    assert len(b["entry"]) == 3
    nxt = next(link["url"] for link in b["link"] if link["relation"] == "next")
    assert len(httpx.get(nxt).json()["entry"]) == 1
    assert loaded.get("/Patient/nope/$everything").status_code == 404
    b = loaded.get("/Patient/p1/$everything", params={"_since": "2100-01-01"}).json()
    assert "entry" not in b
    b = loaded.get("/Patient/$everything", params={"_type": "Patient"}).json()
    assert sorted(e["resource"]["id"] for e in b["entry"]) == ["p1", "p2"]


def _wait(client: httpx.Client, url: str) -> httpx.Response:
    deadline = time.time() + 30
    while time.time() < deadline:
        r = client.get(url)
        if r.status_code != 202:
            return r
        assert "x-progress" in r.headers
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def test_bulk_export_system_patient_group(loaded):
    assert loaded.get("/$export").status_code == 400  # Prefer: respond-async is required
    r = loaded.get("/$export", params={"_type": "Patient,Observation"}, headers={"Prefer": "respond-async"})
    assert r.status_code == 202
    status_url = r.headers["content-location"]
    done = _wait(loaded, status_url)
    assert done.status_code == 200
    manifest = done.json()
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts == {"Patient": 2, "Observation": 5}
    obs = next(o for o in manifest["output"] if o["type"] == "Observation")
    lines = httpx.get(obs["url"]).text.strip().split("\n")
    assert len(lines) == 5 and all('"resourceType":"Observation"' in line for line in lines)

    r = loaded.get("/Group/g1/$export", headers={"Prefer": "respond-async"})
    manifest = _wait(loaded, r.headers["content-location"]).json()
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts == {"Patient": 1, "Observation": 1, "Group": 1}  # Group is in the Patient compartment

    r = loaded.get("/Patient/$export", params={"_since": "2000-01-01"}, headers={"Prefer": "respond-async"})
    manifest = _wait(loaded, r.headers["content-location"]).json()
    assert {o["type"]: o["count"] for o in manifest["output"]} == {"Patient": 2, "Observation": 5, "Group": 1}
    assert loaded.delete(r.headers["content-location"]).status_code == 202
    assert loaded.get(r.headers["content-location"]).status_code == 404


def test_capability_statement_lists_search_params(loaded):
    cs = loaded.get("/metadata").json()
    obs = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Observation")
    names = {p["name"] for p in obs["searchParam"]}
    assert {"code", "subject", "patient", "date", "value-quantity", "code-value-quantity", "_id"} <= names
    assert "_query" not in names
