"""The registry's rules on FHIR writes (USCC check character, GB/T 2260 division, level and title codes):
a bad Organization, Location or Practitioner is refused with 422 naming the element, and nothing is
stored. Also the system history's ``_type`` filter, which mCSD change feeds rely on."""

from hutong.registry import vocab
from tests.registry.helpers import location, organization, uscc


def _refused(r, expression: str) -> dict:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert any(expression in (i.get("expression") or []) for i in body["issue"]), body
    return body


def test_bad_unified_social_credit_code_is_refused_and_nothing_stored(fhir):
    good = organization("x", "长春测试医院", "220102", "3A")
    bad = dict(good, identifier=[{"system": vocab.USCC, "value": good["identifier"][0]["value"][:-1] + (
        "0" if good["identifier"][0]["value"][-1] != "0" else "1")}])
    bad.pop("id")
    body = _refused(fhir.post("/Organization", json=bad), "Organization.identifier[0].value")
    assert "统一社会信用代码" in body["issue"][0]["diagnostics"]
    assert fhir.get("/Organization", params={"name": "长春测试医院"}).json()["total"] == 0
    created = fhir.post("/Organization", json={k: v for k, v in good.items() if k != "id"})
    assert created.status_code == 201, created.text


def test_unknown_division_and_level_codes_are_refused_on_update_and_patch(fhir):
    org = organization("o-chk", "吉林测试卫生院", "220102", "1A")
    assert fhir.put("/Organization/o-chk", json=org).status_code in (200, 201)
    bad = dict(org, extension=[{"url": vocab.EXT_DIVISION, "valueCode": "229999"}])
    _refused(fhir.put("/Organization/o-chk", json=bad), "Organization.extension[0].valueCode")
    patch = [{"op": "replace", "path": "/type/2/coding/0/code", "value": "4A"}]
    _refused(fhir.patch("/Organization/o-chk", json=patch, headers={"Content-Type": "application/json-patch+json"}),
             "Organization.type[2].coding[0].code")
    now = fhir.get("/Organization/o-chk").json()
    assert now["meta"]["versionId"] == "1" and now["type"][2]["coding"][0]["code"] == "1A"


def test_swapped_positions_and_bad_practitioner_codes_are_refused(fhir):
    assert fhir.put("/Organization/o-loc", json=organization("o-loc", "位置医院", "220102")).status_code in (200, 201)
    # A pair typed with latitude and longitude swapped (the common slip copying from a map service).
    swapped = location("l-bad", "o-loc", 125.3245, 43.8868)
    _refused(fhir.put("/Location/l-bad", json=swapped), "Location.position.latitude")
    assert fhir.get("/Location/l-bad").status_code in (404, 410)
    assert fhir.put("/Location/l-ok", json=location("l-ok", "o-loc", 43.8868, 125.3245)).status_code == 201
    # A referral hospital outside the province is a valid position (and so is test data from abroad).
    assert fhir.put("/Location/l-bj", json=location("l-bj", "o-loc", 39.9042, 116.4074)).status_code == 201
    doc = {"resourceType": "Practitioner", "name": [{"text": "王医生"}],
           "identifier": [{"system": vocab.LICENSE, "value": "110220000012345"}],
           "qualification": [{"code": {"coding": [{"system": vocab.TITLE, "code": "professor"}]}}]}
    _refused(fhir.post("/Practitioner", json=doc), "Practitioner.qualification[0].code[0].coding[0].code")
    doc["qualification"][0]["code"]["coding"][0]["code"] = "attending"
    doc["identifier"][0]["value"] = "12AB"
    _refused(fhir.post("/Practitioner", json=doc), "Practitioner.identifier[0].value")
    doc["identifier"][0]["value"] = "110220000012345"
    assert fhir.post("/Practitioner", json=doc).status_code == 201


def test_bad_entry_in_a_transaction_rolls_the_whole_bundle_back(fhir):
    ok = organization("t-ok", "事务医院", "220102")
    bad = organization("t-bad", "事务坏医院", "220102", code=uscc("220102")[:-1] + "?")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": ok, "request": {"method": "PUT", "url": "Organization/t-ok"}},
        {"resource": bad, "request": {"method": "PUT", "url": "Organization/t-bad"}}]}
    r = fhir.post("", json=bundle)
    assert r.status_code == 422, r.text
    assert fhir.get("/Organization/t-ok").status_code == 404


def test_system_history_filters_by_type(fhir):
    assert fhir.put("/Organization/h-org", json=organization("h-org", "历史医院", "220102")).status_code == 201
    assert fhir.put("/Location/h-loc", json=location("h-loc", "h-org", 43.9, 125.3)).status_code == 201
    b = fhir.get("/_history", params={"_type": "Location"}).json()
    assert b["type"] == "history" and b["entry"]
    assert {e["resource"]["resourceType"] for e in b["entry"]} == {"Location"} and b["total"] == len(b["entry"])
    both = fhir.get("/_history", params={"_type": "Location,Organization"}).json()
    assert {e["resource"]["resourceType"] for e in both["entry"]} == {"Location", "Organization"}
    r = fhir.get("/_history", params={"_type": "Nonsense"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
