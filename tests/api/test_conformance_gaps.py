"""What real FHIR clients hit: $lastn, FHIRPath Patch, _summary on read, history totals, conditional
delete of nothing, content negotiation, chain depth, offline docs, CORS, and clear errors everywhere."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import SHARED_DATA, LiveServer, fresh_database

LAB = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}


def _patient(fhir, **extra) -> str:
    return fhir.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "赵", "given": ["敏"]}],
                                       "gender": "female", **extra}).json()["id"]


def _obs(fhir, pid, code, day, value, codings=None):
    coding = codings or [{"system": "http://loinc.org", "code": code}]
    return fhir.post("/Observation", json={
        "resourceType": "Observation", "status": "final", "category": [{"coding": [LAB]}],
        "code": {"coding": coding}, "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"{day}T08:00:00+08:00", "valueQuantity": {"value": value, "unit": "mmol/L"}}).json()["id"]


# ---------------------------------------------------------------------------------------------- $lastn
def test_lastn_latest_per_code_with_max_and_ties(fhir):
    pid, other = _patient(fhir), _patient(fhir)
    _obs(fhir, pid, "2345-7", "2026-01-01", 5.0)
    newest = _obs(fhir, pid, "2345-7", "2026-03-01", 6.0)
    second = _obs(fhir, pid, "2345-7", "2026-02-01", 5.5)
    k = _obs(fhir, pid, "2823-3", "2026-02-10", 4.1)
    _obs(fhir, other, "2345-7", "2026-04-01", 9.9)
    one = fhir.get("/Observation/$lastn", params={"patient": f"Patient/{pid}", "category": "laboratory"}).json()
    assert one["type"] == "searchset" and {e["resource"]["id"] for e in one["entry"]} == {newest, k}
    two = fhir.get("/Observation/$lastn", params={"patient": pid, "category": "laboratory", "max": "2"}).json()
    assert [e["resource"]["id"] for e in two["entry"] if e["resource"]["code"]["coding"][0]["code"] == "2345-7"] == \
        [newest, second]
    tie = _obs(fhir, pid, "2823-3", "2026-02-10", 4.3)
    tied = fhir.get(f"/Patient/{pid}/Observation/$lastn", params={"category": "laboratory"}).json()
    assert {e["resource"]["id"] for e in tied["entry"]} == {newest, k, tie}  # the tie at the cut is kept


def test_lastn_groups_codes_that_share_a_coding(fhir):
    pid = _patient(fhir)
    a = _obs(fhir, pid, "a", "2026-01-01", 1, [{"system": "urn:x", "code": "a"}])
    ac = _obs(fhir, pid, "a", "2026-01-02", 2, [{"system": "urn:x", "code": "a"}, {"system": "urn:x", "code": "c"}])
    b = _obs(fhir, pid, "b", "2026-01-03", 3, [{"system": "urn:x", "code": "b"}])
    got = fhir.get("/Observation/$lastn", params={"patient": pid, "category": "laboratory"}).json()
    assert {e["resource"]["id"] for e in got["entry"]} == {ac, b} and a


def test_lastn_refuses_a_request_without_subject_or_code(fhir):
    r = fhir.get("/Observation/$lastn", params={"category": "laboratory"})
    assert r.status_code == 400 and "subject" in r.json()["issue"][0]["diagnostics"]
    assert fhir.get("/Observation/$lastn", params={"patient": "Patient/x"}).status_code == 400


# ---------------------------------------------------------------------------------------------- FHIRPath Patch
def _patch_cases():
    path = SHARED_DATA / "conformance" / "fhir_patch" / "fhir-patch-tests.json"
    if not path.exists():
        return []
    return [c for c in json.loads(path.read_text()) if c.get("mode") in ("both", "forwards")]


@pytest.mark.parametrize("case", _patch_cases(), ids=lambda c: c["name"])
def test_fhirpath_patch_conformance_suite(case):
    """The FHIRPath Patch cases of fhir-test-cases, applied by the node's patch engine."""
    from hutong.core.errors import FhirError
    from hutong.fhir.patch import patch_function

    apply = patch_function(case["diff"], "application/fhir+json")
    if case.get("error"):
        with pytest.raises(FhirError) as err:
            apply(case["input"])
        assert err.value.status == 422
        return
    assert apply(case["input"]) == case["output"]


def test_fhirpath_patch_over_http(fhir):
    pid = _patient(fhir, birthDate="1990-01-01")
    body = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "1991-02-03"}]}]}
    r = fhir.patch(f"/Patient/{pid}", json=body, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200 and r.json()["birthDate"] == "1991-02-03"
    bad = fhir.patch(f"/Patient/{pid}", json={"op": "replace"})
    assert bad.status_code == 400
    msg = bad.json()["issue"][0]["diagnostics"]
    assert "JSON Patch" in msg and "FHIRPath Patch" in msg


# ---------------------------------------------------------------------------------------------- read, history, delete
def test_summary_and_elements_on_read(fhir):
    pid = _patient(fhir, birthDate="1990-01-01", text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"})
    el = fhir.get(f"/Patient/{pid}", params={"_elements": "gender"}).json()
    assert el["gender"] == "female" and "birthDate" not in el and "name" not in el
    assert any(t["code"] == "SUBSETTED" for t in el["meta"]["tag"])
    data = fhir.get(f"/Patient/{pid}", params={"_summary": "data"}).json()
    assert "text" not in data and data["birthDate"] == "1990-01-01"
    assert fhir.get(f"/Patient/{pid}", params={"_summary": "bogus"}).status_code == 400
    assert fhir.get(f"/Patient/{pid}", params={"name": "x"}).status_code == 400


def test_history_bundles_carry_total(fhir):
    pid = _patient(fhir)
    fhir.put(f"/Patient/{pid}", json={"resourceType": "Patient", "id": pid, "gender": "male"})
    hist = fhir.get(f"/Patient/{pid}/_history").json()
    assert hist["total"] == 2 and len(hist["entry"]) == 2
    assert fhir.get("/Patient/_history", params={"_count": "1"}).json()["total"] >= 2


def test_conditional_delete_of_nothing_is_204_and_of_many_deletes_all(fhir):
    r = fhir.delete("/Patient", params={"identifier": "urn:none|nothing"})
    assert r.status_code == 204 and r.content == b""
    for _ in range(3):
        _patient(fhir, identifier=[{"system": "urn:dup", "value": "d"}])
    r = fhir.delete("/Patient", params={"identifier": "urn:dup|d"})
    assert r.status_code == 200
    assert fhir.get("/Patient", params={"identifier": "urn:dup|d"}).json()["total"] == 0


# ---------------------------------------------------------------------------------------------- formats, limits
def test_xml_is_406_with_a_json_outcome(fhir):
    for r in (fhir.get("/metadata", params={"_format": "xml"}),
              fhir.get("/Patient", headers={"Accept": "application/fhir+xml"})):
        assert r.status_code == 406
        assert r.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("/metadata", headers={"Accept": "application/fhir+json, application/fhir+xml;q=0.5"}).status_code == 200
    assert fhir.get("/metadata", headers={"Accept": "text/html,*/*"}).status_code == 200


def test_deep_chains_are_refused_with_400(fhir):
    deep = ".".join(["subject"] + ["organization.partof"] * 4) + ".name"
    r = fhir.get("/Observation", params={f"{deep}": "x"})
    assert r.status_code == 400 and "levels deep" in r.json()["issue"][0]["diagnostics"]
    assert fhir.get("/Observation", params={"subject:Patient.name": "赵"}).status_code == 200


def test_too_deep_json_is_400(fhir):
    doc: dict = {"resourceType": "Patient", "extension": []}
    node = doc
    for _ in range(300):
        child: dict = {"url": "urn:x", "extension": []}
        node["extension"] = [child]
        node = child
    r = fhir.post("/Patient", content=json.dumps(doc), headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400 and "nested" in r.json()["issue"][0]["diagnostics"]


# ---------------------------------------------------------------------------------------------- outside /fhir
def test_errors_outside_fhir_are_clear(server):
    api = httpx.Client(base_url=server, timeout=60)
    bad_json = api.post("/api/mpi/merge", content=b'{"source": ', headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    msg = bad_json.json()["issue"][0]["diagnostics"]
    assert "not valid JSON" in msg and "decode error" not in msg
    charset = api.post("/api/mpi/merge", content=b"{}", headers={"Content-Type": "application/json; charset=latin-1"})
    assert charset.status_code == 415
    assert api.get("/api/mpi/review", params={"status": "bogus"}).status_code == 400
    assert api.get("/api/mpi/patients/nobody/linked").status_code == 404
    assert api.delete("/health").status_code == 405
    verify_bad = api.post("/api/card/verify", content=b"[1,", headers={"Content-Type": "application/json"})
    assert verify_bad.status_code == 400 and "not valid JSON" in verify_bad.json()["issue"][0]["diagnostics"]


def test_too_large_bodies_are_413_on_every_route(store, tmp_path):
    from dataclasses import replace

    from hutong.api.app import create_app

    small = replace(store.settings, max_body_bytes=1000)
    store.settings = small
    with LiveServer(create_app(small, store)) as live:
        big = b"{" + b" " * 5000 + b"}"
        for path in ("/fhir/Patient", "/api/card/verify", "/api/mpi/merge"):
            r = httpx.post(live.url + path, content=big, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, path
            assert r.json()["resourceType"] == "OperationOutcome"


def test_card_verification_accepts_the_institution_as_a_reference(server):
    body = {"qr_text": "HTC1:AAAA", "institution": "Organization/h1", "terminal": "counter", "purpose": "registration"}
    r = httpx.post(server + "/api/card/verify", json=body)
    assert r.status_code in (400, 422) and r.json()["issue"][0]["details"]["coding"][0]["code"] == "malformed"
    r = httpx.post(server + "/api/card/verify", json={**body, "institution": "Location/h1"})
    assert r.status_code == 400 and "institution" in r.json()["issue"][0]["diagnostics"]


def test_api_docs_work_offline(server):
    page = httpx.get(server + "/docs").text
    assert "cdn" not in page.lower() and "<script>" not in page  # no inline script, nothing remote
    for asset in ("/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css", "/static/docs/swagger-init.js"):
        assert asset in page
        assert httpx.get(server + asset).status_code == 200
    redoc = httpx.get(server + "/redoc").text
    assert "/static/docs/redoc.standalone.js" in redoc and "cdn" not in redoc.lower()
    spec = httpx.get(server + "/openapi.json").json()
    assert "/fhir/{type}/{id}" in spec["paths"] and "/api/card/verify" in spec["paths"]
    assert "$ref" in json.dumps(spec["paths"]["/api/card/verify"]["post"]["requestBody"])


def test_cors_is_off_by_default_and_on_for_configured_origins(backend, tmp_path):
    from dataclasses import replace

    from hutong.api.app import create_app, node_store

    with fresh_database(backend, tmp_path) as settings:
        for origins, allowed in (("", False), ("https://portal.example.cn", True)):
            cfg = replace(settings, cors_origins=origins)
            st = node_store(cfg)
            try:
                with LiveServer(create_app(cfg, st)) as live:
                    r = httpx.options(live.url + "/fhir/metadata", headers={
                        "Origin": "https://portal.example.cn", "Access-Control-Request-Method": "GET"})
                    got = r.headers.get("access-control-allow-origin")
                    assert (got == "https://portal.example.cn") is allowed
            finally:
                st.close()
