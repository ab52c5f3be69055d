"""The FHIR REST API over real HTTP, on both backends (``fhir`` is an httpx client on a live server)."""

from __future__ import annotations

import pytest

PATIENT = {"resourceType": "Patient", "name": [{"family": "李", "given": ["娜"]}], "gender": "female"}


def create(fhir, resource=PATIENT, **kwargs):
    r = fhir.post(f"/{resource['resourceType']}", json=resource, **kwargs)
    assert r.status_code == 201, r.text
    return r


def assert_outcome(r, status, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] in ("error", "fatal") and issue["diagnostics"]
    if code:
        assert issue["code"] == code
    return body


def test_create_read_vread_with_etag_and_location(fhir):
    r = create(fhir)
    assert r.headers["etag"] == 'W/"1"'
    assert "/fhir/Patient/" in r.headers["location"] and r.headers["location"].endswith("/_history/1")
    pid = r.json()["id"]
    read = fhir.get(f"/Patient/{pid}")
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"' and "last-modified" in read.headers
    assert read.json()["name"] == PATIENT["name"]
    assert fhir.get(f"/Patient/{pid}/_history/1").json()["id"] == pid
    assert fhir.get(f"/Patient/{pid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304


def test_prefer_return(fhir):
    minimal = fhir.post("/Patient", json=PATIENT, headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["location"]
    outcome = fhir.post("/Patient", json=PATIENT, headers={"Prefer": "return=OperationOutcome"})
    assert outcome.json()["resourceType"] == "OperationOutcome"


def test_update_if_match_and_stale_412(fhir):
    pid = create(fhir).json()["id"]
    ok = fhir.put(f"/Patient/{pid}", json={**PATIENT, "id": pid, "active": True}, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    stale = fhir.put(f"/Patient/{pid}", json={**PATIENT, "id": pid, "active": False}, headers={"If-Match": 'W/"1"'})
    assert_outcome(stale, 412)


def test_create_on_update_with_client_id(fhir):
    r = fhir.put("/Patient/hospital-a.123", json={**PATIENT, "id": "hospital-a.123"})
    assert r.status_code == 201
    assert fhir.get("/Patient/hospital-a.123").status_code == 200


def test_patch(fhir):
    pid = create(fhir).json()["id"]
    r = fhir.patch(f"/Patient/{pid}", content=b'[{"op": "replace", "path": "/gender", "value": "male"}]',
                   headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["gender"] == "male"


def test_delete_then_gone_and_history(fhir):
    pid = create(fhir).json()["id"]
    assert fhir.delete(f"/Patient/{pid}").status_code == 200
    assert_outcome(fhir.get(f"/Patient/{pid}"), 410)
    history = fhir.get(f"/Patient/{pid}/_history").json()
    assert history["type"] == "history"
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]


def test_type_and_system_history_with_since_and_count(fhir):
    for _ in range(5):
        create(fhir)
    page = fhir.get("/Patient/_history", params={"_count": 2}).json()
    assert len(page["entry"]) == 2
    nxt = [link["url"] for link in page["link"] if link["relation"] == "next"][0]
    page2 = fhir.get(nxt.split("/fhir", 1)[1]).json()
    assert {e["fullUrl"] for e in page["entry"]}.isdisjoint({e["fullUrl"] for e in page2["entry"]})
    assert fhir.get("/_history", params={"_since": "2000-01-01T00:00:00Z"}).json()["entry"]
    assert_outcome(fhir.get("/_history", params={"_since": "yesterday"}), 400)


@pytest.mark.parametrize(
    "path,body,headers,status",
    [
        ("/Patient", b"{not json", {}, 400),
        ("/Patient", b'{"resourceType": "Observation"}', {}, 400),
        ("/Patient", b"[1, 2]", {}, 400),
        ("/Patient", b"<Patient/>", {"Content-Type": "application/fhir+xml"}, 415),
        ("/Unicorn", b'{"resourceType": "Unicorn"}', {}, 404),
    ],
)
def test_bad_input_is_a_4xx_operation_outcome(fhir, path, body, headers, status):
    headers = {"Content-Type": "application/fhir+json", **headers}
    assert_outcome(fhir.post(path, content=body, headers=headers), status)


def test_id_mismatch_is_400(fhir):
    assert_outcome(fhir.put("/Patient/abc", json={**PATIENT, "id": "xyz"}), 400)


def test_bad_id_and_bad_etag(fhir):
    assert_outcome(fhir.put("/Patient/bad_id!", json=PATIENT), 400)
    pid = create(fhir).json()["id"]
    assert_outcome(fhir.put(f"/Patient/{pid}", json={**PATIENT, "id": pid}, headers={"If-Match": "yesterday"}), 400)


def test_oversized_body_is_413(fhir):
    big = b'{"resourceType": "Patient", "text": "' + b"x" * (65 * 1024 * 1024) + b'"}'
    r = fhir.post("/Patient", content=big, headers={"Content-Type": "application/fhir+json"})
    assert_outcome(r, 413)


def test_unknown_interaction(fhir):
    assert_outcome(fhir.delete("/Patient"), 405)
    assert fhir.request("TRACE", "/Patient").status_code in (404, 405)


def test_transaction_resolves_urn_uuid_and_answers_in_entry_order(fhir):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:obs", "resource": {"resourceType": "Observation", "status": "final",
                                                     "code": {"text": "血红蛋白"},
                                                     "subject": {"reference": "urn:uuid:pat"}},
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:pat", "resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    r = fhir.post("", json=bundle)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    obs_loc, pat_loc = (e["response"]["location"] for e in body["entry"])
    assert "/Observation/" in obs_loc and "/Patient/" in pat_loc
    obs = fhir.get(obs_loc.split("/fhir", 1)[1].rsplit("/_history", 1)[0]).json()
    assert obs["subject"]["reference"] == "Patient/" + pat_loc.split("/Patient/")[1].split("/")[0]


def test_failing_transaction_writes_nothing_and_names_the_entry(fhir):
    before = len(fhir.get("/_history").json().get("entry", []))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:a", "resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {**PATIENT, "id": "bad id"}, "request": {"method": "PUT", "url": "Patient/bad id"}},
        ],
    }
    r = fhir.post("", json=bundle)
    body = assert_outcome(r, 400)
    assert "Bundle.entry[1]" in body["issue"][0]["diagnostics"]
    assert len(fhir.get("/_history").json().get("entry", [])) == before


def test_batch_runs_entries_independently(fhir):
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient", "id": "x"}, "request": {"method": "PUT", "url": "Patient/y"}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        ],
    }
    body = fhir.post("", json=bundle).json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses[0].startswith("201") and statuses[1] == "400" and statuses[2] == "404"
    assert body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def test_metadata_is_a_capability_statement(fhir):
    cs = fhir.get("/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in cs["rest"][0]["resource"]}
    assert {"Patient", "Observation", "Organization"} <= types
    assert {"transaction", "batch"} <= {i["code"] for i in cs["rest"][0]["interaction"]}


def test_validate_operation(fhir):
    ok = fhir.post("/Patient/$validate", json=PATIENT)
    assert ok.status_code == 200 and ok.json()["issue"][0]["severity"] == "information"


def test_openapi_docs_served(server):
    import httpx

    assert httpx.get(server + "/docs").status_code == 200
    assert "/fhir/{type}/{id}" in httpx.get(server + "/openapi.json").json()["paths"]


def test_batch_failed_entry_leaves_no_trace_and_others_commit(fhir):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "id": "b1"}, "request": {"method": "PUT", "url": "Patient/b1"}},
        {"resource": {"resourceType": "Patient", "birthDate": "not-a-date"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "b2"}, "request": {"method": "PUT", "url": "Patient/b2"}},
    ]}
    statuses = [e["response"]["status"] for e in fhir.post("", json=bundle).json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1] == "400" and statuses[2].startswith("201")
    history = fhir.get("/Patient/_history").json()["entry"]
    assert sorted(e["resource"]["id"] for e in history) == ["b1", "b2"]


def test_head_read_has_headers_and_no_body(fhir):
    pid = create(fhir).json()["id"]
    r = fhir.head(f"/Patient/{pid}")
    assert r.status_code == 200 and r.headers["etag"] == 'W/"1"' and r.content == b""
