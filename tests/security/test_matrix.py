"""The authorization matrix, written out by hand (not generated from the policy it tests): caller ×
resource × interaction, allowed and refused, over the live routes on both backends.

Callers: institution systems (SMART tokens with scopes), a resident, a doctor, an operator, a
statistician and a kiosk (people, declared through the configured trusted gateway), and nobody.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from hutong.security import audit
from tests.conftest import TEST_GATEWAY_KEY
from tests.security.conftest import get_token


def _person(role, **kw):
    h = {"X-Hutong-Gateway-Key": TEST_GATEWAY_KEY, "X-Hutong-Role": role}
    for key, value in kw.items():
        h["X-Hutong-" + key.capitalize()] = value
    return h


RESIDENT = _person("resident", patient="p1", client="resident-p1")
DOCTOR = _person("clinician", institution="h2", client="dr-li")
OPERATOR = _person("operator", client="op-zhang")
STATISTICIAN = _person("statistician", client="stat-wu")
KIOSK = _person("terminal", institution="h1", client="kiosk-1")


def _obs(patient, code="8310-5"):
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}}


@pytest.fixture
def world(secure, institution, server_store):
    """p1 (the resident), p2; Observation o1 about p1 written by h1, o2 about p2 written by h2."""
    for pid in ("p1", "p2"):
        server_store.update("Patient", pid, {"resourceType": "Patient", "id": pid, "gender": "female",
                                             "name": [{"family": "王", "given": ["芳"]}]})
    server_store.update("Organization", "h1", {"resourceType": "Organization", "id": "h1", "name": "一院"})
    his1 = institution("system/*.cruds", institution="h1")
    his2 = institution("system/*.cruds", institution="h2")
    reader = institution("system/Patient.rs")
    with httpx.Client(base_url=secure + "/fhir") as c:
        t1 = {"Authorization": "Bearer " + get_token(httpx, secure, his1, "system/*.cruds")}
        t2 = {"Authorization": "Bearer " + get_token(httpx, secure, his2, "system/*.cruds")}
        tr = {"Authorization": "Bearer " + get_token(httpx, secure, reader, "system/Patient.rs")}
        assert c.put("/Observation/o1", json={**_obs("p1"), "id": "o1"}, headers=t1).status_code == 201
        assert c.put("/Observation/o2", json={**_obs("p2"), "id": "o2"}, headers=t2).status_code == 201
    return {"base": secure + "/fhir", "his1": t1, "his2": t2, "reader": tr, "store": server_store}


# (caller, method, path, expected status) — each line one cell of the matrix
MATRIX = [
    ("nobody", "GET", "/Patient/p1", 401),
    ("nobody", "GET", "/Observation?patient=p1", 401),
    ("nobody", "GET", "/metadata", 200),
    ("reader", "GET", "/Patient/p1", 200),
    ("reader", "GET", "/Patient?gender=female", 200),
    ("reader", "GET", "/Observation/o1", 403),
    ("reader", "GET", "/Observation?patient=p1", 403),
    ("reader", "DELETE", "/Patient/p2", 403),
    ("reader", "GET", "/Patient/p1/$everything", 403),
    ("his1", "GET", "/Observation/o2", 200),         # reads what its scopes allow
    ("his2", "DELETE", "/Observation/o1", 403),      # but writes only what it is the source of
    ("his1", "GET", "/$export", 202),            # system/*.rs implies Bulk Data export
    ("his1", "GET", "/Patient/$export", 202),
    ("resident", "GET", "/Patient/p1", 200),
    ("resident", "GET", "/Patient/p2", 403),
    ("resident", "GET", "/Observation/o1", 200),
    ("resident", "GET", "/Observation/o2", 403),
    ("resident", "GET", "/Patient/p1/$everything", 200),
    ("resident", "GET", "/Patient/p2/$everything", 403),
    ("resident", "GET", "/Patient/p2/Observation", 403),
    ("resident", "GET", "/Patient/p1/Observation", 200),
    ("resident", "GET", "/?_type=Observation", 403),
    ("resident", "GET", "/Observation/_history", 403),
    ("resident", "DELETE", "/Observation/o1", 403),
    ("resident", "GET", "/Organization/h1", 200),
    ("doctor", "GET", "/Observation?patient=p1", 403),  # no care relationship
    ("doctor", "GET", "/Observation", 403),             # must name the patient
    ("doctor", "GET", "/Patient/p1/$everything", 403),
    ("doctor", "GET", "/Observation/o1", 403),
    ("doctor", "GET", "/Organization?name=一院", 200),
    ("operator", "GET", "/Patient/p1", 200),
    ("statistician", "GET", "/Patient/p1", 403),
    ("statistician", "GET", "/Observation?patient=p1", 403),
    ("kiosk", "GET", "/Patient?gender=female", 403),
]
_HEADERS = {"resident": RESIDENT, "doctor": DOCTOR, "operator": OPERATOR, "statistician": STATISTICIAN,
            "kiosk": KIOSK, "nobody": {}}


def test_matrix(world):
    failures = []
    with httpx.Client(base_url=world["base"]) as c:
        for who, method, path, want in MATRIX:
            headers = world.get(who) if who in ("his1", "his2", "reader") else _HEADERS[who]
            extra = {"Prefer": "respond-async"} if "$export" in path else {}
            r = c.request(method, path, headers={**headers, **extra})
            if r.status_code != want:
                failures.append(f"{who} {method} {path}: {r.status_code} (want {want}) {r.text[:160]}")
            elif want in (401, 403):
                assert r.json()["resourceType"] == "OperationOutcome"
    assert not failures, "\n".join(failures)


def test_institution_cannot_write_another_institutions_data(world):
    with httpx.Client(base_url=world["base"]) as c:
        r = c.put("/Observation/o1", json={**_obs("p1"), "id": "o1", "status": "amended"}, headers=world["his2"])
        assert r.status_code == 403
        r = c.put("/Observation/o1", json={**_obs("p1"), "id": "o1", "status": "amended"}, headers=world["his1"])
        assert r.status_code == 200
        # meta.source comes from the caller, never from the body
        forged = {**_obs("p2"), "meta": {"source": "urn:hutong:org:h2"}}
        r = c.post("/Observation", json=forged, headers=world["his1"])
        assert r.status_code == 201 and r.json()["meta"]["source"] == "urn:hutong:org:h1"
        own = c.post("/Observation", json={**_obs("p2"), "meta": {"source": "urn:hutong:org:h1#lis"}},
                     headers=world["his1"])
        assert own.json()["meta"]["source"] == "urn:hutong:org:h1#lis"  # its own sending system is kept
        assert c.delete(f"/Observation/{r.json()['id']}", headers=world["his2"]).status_code == 403
        # inside a transaction Bundle, each entry is checked the same way
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {**_obs("p1"), "id": "o1"}, "request": {"method": "PUT", "url": "Observation/o1"}}]}
        assert c.post("", json=bundle, headers=world["his2"]).status_code == 403


def test_resident_search_confined_to_their_compartment(world):
    with httpx.Client(base_url=world["base"]) as c:
        for path in ("/Observation", "/Observation?code=8310-5", "/Observation?patient=p2",
                     "/Observation?_include=Observation:subject", "/Patient", "/Patient?_has:Observation:patient:code=8310-5"):
            r = c.get(path, headers=RESIDENT)
            assert r.status_code == 200, (path, r.text)
            bundle = r.json()
            ids = {e["resource"]["id"] for e in bundle.get("entry", [])}
            assert ids <= {"p1", "o1"}, (path, ids)
            if "total" in bundle:
                assert bundle["total"] == len([e for e in bundle.get("entry", [])
                                               if e.get("search", {}).get("mode", "match") == "match"]), path
        assert c.get("/Observation?patient=p2", headers=RESIDENT).json().get("total", 0) == 0


def test_doctor_needs_care_relationship_or_breaks_the_glass(world):
    store = world["store"]
    with httpx.Client(base_url=world["base"]) as c:
        refused = c.get("/Observation?patient=p1", headers=DOCTOR)
        assert refused.status_code == 403
        assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "no-care-relationship"
        glass = c.get("/Observation?patient=p1", headers={**DOCTOR, "X-Hutong-Break-Glass": quote("患者昏迷急诊抢救")})
        assert glass.status_code == 200 and glass.json()["entry"][0]["resource"]["id"] == "o1"
        from hutong.share.launch import record_care

        record_care(store, "dr-li", "h2", "p2", "card-scan")  # a card scan at the doctor's institution
        assert c.get("/Observation?patient=p2", headers=DOCTOR).status_code == 200
        assert c.get("/Patient/p2/$everything", headers=DOCTOR).status_code == 200
        assert c.get("/Observation?patient=p1", headers=DOCTOR).status_code == 403  # still not p1
    auditor = {"X-Hutong-Gateway-Key": TEST_GATEWAY_KEY, "X-Hutong-Role": "auditor", "X-Hutong-Client": "aud-1"}
    r = httpx.get(world["base"][:-5] + "/api/security/audit", params={"break_glass": "true"}, headers=auditor)
    flagged = [e["resource"] for e in r.json()["entry"]]
    assert flagged and all(e["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT" for e in flagged)
    assert any(e.get("purposeOfEvent", [{}, {}])[1].get("text") == "患者昏迷急诊抢救" for e in flagged)
    assert audit.verify(store).ok


def test_personal_data_masked_by_role(world):
    store = world["store"]
    store.update("Patient", "p3", {"resourceType": "Patient", "id": "p3", "name": [{"family": "王", "given": ["小明"]}],
                                   "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                                                   "value": "220112198001013126"}],
                                   "telecom": [{"system": "phone", "value": "13812345678"}]})
    with httpx.Client(base_url=world["base"]) as c:
        masked = c.get("/Patient/p3", headers=OPERATOR).json()
        assert masked["identifier"][0]["value"] == "220112********3126"
        assert masked["telecom"][0]["value"] == "138****5678"
        assert masked["name"][0]["family"] == "王**" and "given" not in masked["name"][0]
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "MASKED"} in \
            masked["meta"]["security"]
        listed = c.get("/Patient?_id=p3", headers=OPERATOR).json()["entry"][0]["resource"]
        assert listed["telecom"][0]["value"] == "138****5678"
        clear = c.get("/Patient/p3", headers=world["reader"]).json()  # an institution system: in clear
        assert clear["identifier"][0]["value"] == "220112198001013126"
    with store.read() as tx:  # stored in clear
        assert tx.read("Patient", "p3").resource["telecom"][0]["value"] == "13812345678"
