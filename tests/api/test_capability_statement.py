"""The CapabilityStatement tells the truth: every interaction and operation it declares answers over
HTTP (never 404 or 405), and something it does not declare does not."""

from __future__ import annotations

import gzip

import httpx
import pytest

PATIENT = {"resourceType": "Patient", "name": [{"family": "王", "given": ["芳"]}], "gender": "female",
           "identifier": [{"system": "urn:test:mrn", "value": "cs-1"}]}


@pytest.fixture
def seeded(fhir, server_store):
    """A Patient with an Observation and a Group, so instance-level requests have a target."""
    pid = fhir.post("/Patient", json=PATIENT).json()["id"]
    obs = {"resourceType": "Observation", "status": "final", "category": [{"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-11-01T08:00:00+08:00",
        "valueQuantity": {"value": 5.4, "unit": "mmol/L"}}
    fhir.post("/Observation", json=obs)
    gid = fhir.post("/Group", json={"resourceType": "Group", "type": "person", "actual": True,
                                    "member": [{"entity": {"reference": f"Patient/{pid}"}}]}).json()["id"]
    from tests.federation.test_subscriptions import _subscription

    sid = fhir.post("/Subscription", json=_subscription("", channel="websocket")).json()["id"]
    server_store.run_consumers()  # the patient index links the Patient (PIXm answers from it)
    return {"Patient": pid, "Group": gid, "Subscription": sid}


def _request_for(fhir, res_type: str | None, code: str, ids: dict) -> httpx.Response:
    """One real request exercising ``code`` (an interaction or ``$operation``) on ``res_type``."""
    rid = ids.get(res_type or "", "")
    body = {"resourceType": res_type, "id": rid} if res_type else None
    if code == "read":
        return fhir.get(f"/{res_type}/{rid or 'x'}")
    if code == "vread":
        return fhir.get(f"/{res_type}/{rid or 'x'}/_history/1")
    if code == "update":
        return fhir.put(f"/{res_type}/{rid or 'cs-new'}", json=body or {"resourceType": res_type})
    if code == "patch":
        return fhir.patch(f"/{res_type}/{rid or 'x'}", json=[{"op": "test", "path": "/id", "value": rid}],
                          headers={"Content-Type": "application/json-patch+json"})
    if code == "delete":  # on a resource of its own, so the others keep their targets
        return fhir.delete(f"/{res_type}/cs-deleted-{res_type.lower()}")
    if code == "history-instance":
        return fhir.get(f"/{res_type}/{rid or 'x'}/_history")
    if code == "history-type":
        return fhir.get(f"/{res_type}/_history")
    if code == "create":
        return fhir.post(f"/{res_type}", json={"resourceType": res_type})
    if code == "search-type":
        return fhir.get(f"/{res_type}", params={"_count": "1"})
    if code in ("transaction", "batch"):
        return fhir.post("", json={"resourceType": "Bundle", "type": code, "entry": []})
    if code == "history-system":
        return fhir.get("/_history", params={"_count": "1"})
    if code == "search-system":
        return fhir.get("", params={"_type": "Patient", "_count": "1"})
    raise AssertionError(f"no request for {code}")


_OPERATION_REQUESTS = {
    ("Patient", "everything"): lambda f, ids: f.get(f"/Patient/{ids['Patient']}/$everything"),
    ("Patient", "match"): lambda f, ids: f.post("/Patient/$match", json={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": PATIENT}]}),
    ("Patient", "ihe-pix"): lambda f, ids: f.get("/Patient/$ihe-pix", params={"sourceIdentifier": "urn:test:mrn|cs-1"}),
    ("Patient", "export"): lambda f, ids: f.get("/Patient/$export", headers={"Prefer": "respond-async"}),
    ("Group", "export"): lambda f, ids: f.get(f"/Group/{ids['Group']}/$export", headers={"Prefer": "respond-async"}),
    ("Observation", "lastn"): lambda f, ids: f.get("/Observation/$lastn", params={
        "patient": f"Patient/{ids['Patient']}", "category": "laboratory"}),
    (None, "export"): lambda f, ids: f.get("/$export", headers={"Prefer": "respond-async"}),
    (None, "viewdefinition-run"): lambda f, ids: f.post("/$viewdefinition-run", json={
        "resourceType": "Parameters", "parameter": [{"name": "viewResource", "resource": {
            "resourceType": "ViewDefinition", "resource": "Patient", "status": "active",
            "select": [{"column": [{"name": "id", "path": "getResourceKey()"}]}]}}]}),
    ("Subscription", "status"): lambda f, ids: f.get(f"/Subscription/{ids['Subscription']}/$status"),
    ("Subscription", "events"): lambda f, ids: f.get(f"/Subscription/{ids['Subscription']}/$events"),
    ("Subscription", "get-ws-binding-token"): lambda f, ids: f.get(
        f"/Subscription/{ids['Subscription']}/$get-ws-binding-token"),
}


def _operation_request(fhir, res_type, name, ids):
    if name == "validate":
        return fhir.post(f"/{res_type}/$validate", json={"resourceType": res_type})
    make = _OPERATION_REQUESTS.get((res_type, name))
    assert make is not None, f"the test has no request for ${name} on {res_type or 'the system'}: add one"
    return make(fhir, ids)


def test_every_declared_interaction_and_operation_answers(fhir, seeded):
    cs = fhir.get("/metadata").json()
    rest = cs["rest"][0]
    checked = 0
    for res in rest["resource"]:
        t = res["type"]
        # The generic interactions are the same rows for every type: check them on a few types,
        # and every operation on the type that declares it.
        if t in ("Patient", "Observation", "Group", "Organization"):
            for inter in res["interaction"]:
                r = _request_for(fhir, t, inter["code"], seeded)
                assert r.status_code not in (404, 405) or (
                    inter["code"] in ("read", "vread", "patch", "history-instance", "delete")
                    and r.json()["issue"][0]["code"] == "not-found"), (t, inter["code"], r.status_code, r.text[:300])
                checked += 1
        for op in res.get("operation", []):
            if op["name"] == "validate" and t not in ("Patient", "Observation"):
                continue
            r = _operation_request(fhir, t, op["name"], seeded)
            assert r.status_code not in (404, 405), (t, op["name"], r.status_code, r.text[:300])
            checked += 1
    for inter in rest["interaction"]:
        r = _request_for(fhir, None, inter["code"], seeded)
        assert r.status_code not in (404, 405), (inter["code"], r.status_code, r.text[:300])
        checked += 1
    for op in rest["operation"]:
        r = _operation_request(fhir, None, op["name"], seeded)
        assert r.status_code not in (404, 405), (op["name"], r.status_code, r.text[:300])
        checked += 1
    assert checked > 30


def test_undeclared_interactions_are_404_or_405(fhir):
    assert fhir.get("/Patient/$no-such-operation").status_code == 404
    assert fhir.post("/$no-such-operation", json={}).status_code == 404
    assert fhir.get("/NotAType").status_code == 404
    wrong_method = fhir.request("PATCH", "/metadata")
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["allow"]
    assert wrong_method.json()["resourceType"] == "OperationOutcome"
    assert fhir.put("/Patient/$match", json={}).status_code == 405


def test_operations_of_every_capability_are_declared(fhir):
    cs = fhir.get("/metadata").json()
    declared = {(r["type"], o["name"]) for r in cs["rest"][0]["resource"] for o in r.get("operation", [])}
    declared |= {(None, o["name"]) for o in cs["rest"][0]["operation"]}
    for want in [("Patient", "match"), ("Patient", "ihe-pix"), ("Patient", "everything"), ("Patient", "export"),
                 ("Group", "export"), (None, "export"), ("Observation", "lastn"), ("Patient", "validate")]:
        assert want in declared, want
    assert cs["format"] == ["application/fhir+json", "json"]
    assert "application/fhir+json" in cs["patchFormat"]
    assert all(r["conditionalDelete"] == "multiple" for r in cs["rest"][0]["resource"])


def test_capability_statement_is_gzip_compressed_when_accepted(server):
    raw = httpx.get(server + "/fhir/metadata", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    plain = httpx.get(server + "/fhir/metadata", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with httpx.stream("GET", server + "/fhir/metadata", headers={"Accept-Encoding": "gzip"}) as r:
        body = b"".join(r.iter_raw())
    assert gzip.decompress(body).startswith(b'{"resourceType":"CapabilityStatement"')
