"""Read by id is answered by ``ReadFastPath`` (outside the router); it must answer exactly as the
routed read does: same caller check, same headers, same errors, and only for plain ``GET Type/id``."""

from __future__ import annotations

from hutong.api.fast_read import _READ

PATIENT = {"resourceType": "Patient", "name": [{"family": "王", "given": ["芳"]}]}


def test_fast_path_takes_only_plain_reads():
    assert _READ.match("/fhir/Patient/abc-1.2")
    for path in ("/fhir/Patient/$everything", "/fhir/Patient/_history", "/fhir/metadata",
                 "/fhir/Patient/a/_history/1", "/api/card/keys", "/fhir/Patient/" + "x" * 65):
        assert not _READ.match(path), path


def test_read_answers_like_the_routed_read(fhir):
    pid = fhir.post("/Patient", json=PATIENT).json()["id"]
    plain = fhir.get(f"/Patient/{pid}")
    # A query string sends the same read through the router (here a no-op _format).
    routed = fhir.get(f"/Patient/{pid}", params={"_format": "json"})
    assert plain.status_code == routed.status_code == 200
    assert plain.json() == routed.json()
    for header in ("etag", "last-modified", "content-type", "content-location"):
        assert plain.headers[header] == routed.headers[header], header
    assert fhir.get(f"/Patient/{pid}", headers={"If-None-Match": plain.headers["etag"]}).status_code == 304


def test_read_errors_are_operation_outcomes(fhir):
    missing = fhir.get("/Patient/does-not-exist")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    unknown_type = fhir.get("/Nonsense/abc")
    assert unknown_type.status_code == 404 and unknown_type.json()["issue"][0]["code"] == "not-supported"
    pid = fhir.post("/Patient", json=PATIENT).json()["id"]
    assert fhir.delete(f"/Patient/{pid}").status_code in (200, 204)
    assert fhir.get(f"/Patient/{pid}").status_code == 410


def test_read_goes_through_the_caller_check(fhir):
    pid = fhir.post("/Patient", json=PATIENT).json()["id"]
    bad = fhir.get(f"/Patient/{pid}", headers={"X-Hutong-Role": "king"})
    assert bad.status_code == 400 and "unknown role" in bad.json()["issue"][0]["diagnostics"]
    assert fhir.get(f"/Patient/{pid}", headers={"X-Hutong-Role": "clinician"}).status_code == 200
