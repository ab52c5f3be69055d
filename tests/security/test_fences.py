"""City tenants, consent and guardians are applied inside the query: total, paging, _include,
_revinclude, chains, _has, read by id and $everything never show a fenced-off resource (both backends)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TEST_GATEWAY_KEY


def _gw(**kw):
    h = {"X-Hutong-Gateway-Key": TEST_GATEWAY_KEY, "X-Hutong-Role": kw.pop("role", "system")}
    for key, value in kw.items():
        h["X-Hutong-" + key.capitalize()] = value
    return h


CHANGCHUN = _gw(tenant="2201", client="city-2201")
JILIN = _gw(tenant="2202", client="city-2202")
PROVINCE = _gw(client="province")


def _org(oid, division):
    from hutong.registry import vocab

    return {"resourceType": "Organization", "id": oid, "name": oid,
            "extension": [{"url": vocab.EXT_DIVISION, "valueCode": division}]}


@pytest.fixture
def province(secure, server_store):
    """Two cities: h1 (长春 220102) with patient p1 and o1, h2 (吉林 220202) with p2 and o2."""
    s = server_store
    s.update("Organization", "h1", _org("h1", "220102"))
    s.update("Organization", "h2", _org("h2", "220202"))
    for pid, org in (("p1", "h1"), ("p2", "h2")):
        s.update("Patient", pid, {"resourceType": "Patient", "id": pid, "name": [{"family": "王", "given": ["芳"]}],
                                  "managingOrganization": {"reference": f"Organization/{org}"}})
    for i, (pid, org) in enumerate((("p1", "h1"), ("p1", "h1"), ("p2", "h2"), ("p2", "h2"), ("p2", "h2"))):
        s.update("Observation", f"o{i}", {
            "resourceType": "Observation", "id": f"o{i}", "status": "final",
            "meta": {"source": f"urn:hutong:org:{org}#lis"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory" if i % 2 == 0 else "social-history"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
            "subject": {"reference": f"Patient/{pid}"}, "performer": [{"reference": f"Organization/{org}"}]})
    with httpx.Client(base_url=secure + "/fhir") as c:
        yield c


def _ids(bundle, mode="match"):
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode)


def test_city_sees_only_its_city(province):
    c = province
    r = c.get("/Observation", headers=CHANGCHUN).json()
    assert r["total"] == 2 and _ids(r) == ["o0", "o1"]
    assert c.get("/Observation", headers=JILIN).json()["total"] == 3
    assert c.get("/Observation", headers=PROVINCE).json()["total"] == 5
    # paging counts only the city's
    page = c.get("/Observation", params={"_count": 1}, headers=JILIN).json()
    assert page["total"] == 3 and len(_ids(page)) == 1
    seen = set(_ids(page))
    while any(link["relation"] == "next" for link in page["link"]):
        nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
        page = httpx.get(nxt, headers=JILIN).json()
        seen |= set(_ids(page))
    assert seen == {"o2", "o3", "o4"}
    # _include / _revinclude never bring another city's resources
    inc = c.get("/Observation", params={"_include": "Observation:performer"}, headers=CHANGCHUN).json()
    assert _ids(inc, "include") == ["h1"]
    rev = c.get("/Patient", params={"_revinclude": "Observation:subject"}, headers=CHANGCHUN).json()
    assert _ids(rev) == ["p1"] and _ids(rev, "include") == ["o0", "o1"]
    # a chain or _has through another city's resource finds nothing
    chained = c.get("/Observation", params={"subject.organization": "Organization/h2"}, headers=CHANGCHUN).json()
    assert chained["total"] == 0
    has = c.get("/Patient", params={"_has:Observation:subject:code": "8310-5"}, headers=CHANGCHUN).json()
    assert _ids(has) == ["p1"]
    assert c.get("/Organization", headers=CHANGCHUN).json()["total"] == 1
    # read by id of another city's resource: 404, as if it did not exist; own city's: 200
    assert c.get("/Observation/o2", headers=CHANGCHUN).status_code == 404
    assert c.get("/Patient/p2", headers=CHANGCHUN).status_code == 404
    assert c.get("/Patient/p1", headers=CHANGCHUN).status_code == 200
    assert c.get("/Patient/p2/$everything", headers=CHANGCHUN).status_code == 404
    ev = c.get("/Patient/p1/$everything", headers=CHANGCHUN).json()
    assert {"p1", "o0", "o1"} <= set(_ids(ev)) and "o2" not in _ids(ev)
    # history across resources would read around the fence
    assert c.get("/Observation/_history", headers=CHANGCHUN).status_code == 403
    # a city's write is its own; it cannot change another city's data
    assert c.delete("/Observation/o2", headers=CHANGCHUN).status_code == 404


def test_city_resident_seen_across_cities(province, server_store):
    """A Changchun resident's result written by a hospital of Jilin city is part of Changchun's view."""
    server_store.update("Observation", "ox", {
        "resourceType": "Observation", "id": "ox", "status": "final", "meta": {"source": "urn:hutong:org:h2"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]}, "subject": {"reference": "Patient/p1"}})
    assert "ox" in _ids(province.get("/Observation", headers=CHANGCHUN).json())
    assert "ox" in _ids(province.get("/Observation", headers=JILIN).json())  # written by Jilin's hospital


def _consent(cid, patient, provision):
    return {"resourceType": "Consent", "id": cid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"}, "provision": provision}


def test_consent_hides_an_institutions_data_from_others(province):
    c = province
    h3 = _gw(institution="h3", client="his-h3")
    assert c.get("/Observation", params={"subject": "Patient/p2"}, headers=h3).json()["total"] == 3
    consent = _consent("c1", "p2", {"type": "deny", "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}]},
        "reference": {"reference": "Organization/h2"}}]})
    assert c.put("/Consent/c1", json=consent, headers=PROVINCE).status_code == 201
    r = c.get("/Observation", params={"subject": "Patient/p2"}, headers=h3).json()
    assert r["total"] == 0 and not _ids(r)
    assert c.get("/Observation/o2", headers=h3).status_code == 404
    rev = c.get("/Patient", params={"_id": "p2", "_revinclude": "Observation:subject"}, headers=h3).json()
    assert _ids(rev) == ["p2"] and _ids(rev, "include") == []
    has = c.get("/Patient", params={"_has:Observation:subject:code": "8310-5"}, headers=h3).json()
    assert "p2" not in _ids(has)
    ev = c.get("/Patient/p2/$everything", headers=h3).json()
    assert _ids(ev) == ["p2"]
    # the source institution itself, and the resident, still see it
    h2 = _gw(institution="h2", client="his-h2")
    assert c.get("/Observation", params={"subject": "Patient/p2"}, headers=h2).json()["total"] == 3
    me = _gw(role="resident", patient="p2", client="resident-p2")
    assert c.get("/Observation", headers=me).json()["total"] == 3


def test_consent_hides_a_category(province):
    c = province
    consent = _consent("c2", "p2", {"type": "permit", "provision": [{"type": "deny", "code": [{"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "social-history"}]}]}]})
    assert c.put("/Consent/c2", json=consent, headers=PROVINCE).status_code == 201
    h3 = _gw(institution="h3", client="his-h3")
    r = c.get("/Observation", params={"subject": "Patient/p2", "_count": 1}, headers=h3).json()
    assert r["total"] == 2  # o3 (social-history) hidden
    assert c.get("/Observation/o3", headers=h3).status_code == 404
    assert c.get("/Observation/o2", headers=h3).status_code == 200


def test_guardian_reads_dependant_nothing_else(province, server_store):
    from sqlalchemy import insert

    from hutong.card.tables import card_card

    with server_store.write() as tx:
        for card, patient, guardian in (("G1", "p1", None), ("D1", "p2", "G1")):
            tx.conn.execute(insert(card_card).values(
                card_id=card, tenant="22", subject=card, patient=f"Patient/{patient}", status="active",
                channel="guardian" if guardian else "self", guardian_card=guardian, holder_token_hash="x" * 64,
                created_us=0, updated_us=0))
    c = province
    guardian = _gw(role="resident", patient="p1", client="resident-p1")
    assert c.get("/Patient/p2", headers=guardian).status_code == 200
    assert c.get("/Observation", headers=guardian).json()["total"] == 5
    dependant = _gw(role="resident", patient="p2", client="resident-p2")
    assert c.get("/Patient/p1", headers=dependant).status_code == 403
    assert c.get("/Observation", headers=dependant).json()["total"] == 3


def test_city_export_carries_the_fence(province, secure, institution):
    import time

    from tests.security.conftest import get_token

    city = institution("system/*.rs", tenant="2201")
    auth = {"Authorization": "Bearer " + get_token(httpx, secure, city, "system/*.rs")}
    c = province
    kick = c.get("/Patient/$export", headers={**auth, "Prefer": "respond-async"})
    assert kick.status_code == 202, kick.text
    status = kick.headers["Content-Location"]
    for _ in range(300):  # bounded wait for the export runner (not a timed assertion)
        r = httpx.get(status, headers=auth)
        if r.status_code != 202:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text
    files = {o["type"]: o for o in r.json()["output"]}
    assert files["Patient"]["count"] == 1 and files["Observation"]["count"] == 2
    body = httpx.get(files["Observation"]["url"], headers=auth).text
    assert '"o2"' not in body and '"o0"' in body
    # a gateway-declared city caller has no registration for the job to keep its fence: refused
    assert c.get("/Patient/$export", headers={**CHANGCHUN, "Prefer": "respond-async"}).status_code == 403
