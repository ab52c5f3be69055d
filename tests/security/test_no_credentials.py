"""No credentials, no data: 401 with WWW-Authenticate as an OperationOutcome; X-Hutong-* headers are
not believed without the gateway's key; the open routes stay open."""

from __future__ import annotations

import httpx

from tests.conftest import TEST_GATEWAY_KEY


def test_unauthenticated_gets_401(secure, server_store):
    server_store.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    for method, path in [("GET", "/fhir/Patient/p1"), ("GET", "/fhir/Patient"), ("GET", "/fhir"),
                         ("POST", "/fhir/Patient"), ("GET", "/fhir/Patient/p1/$everything"),
                         ("GET", "/fhir/$export"), ("GET", "/api/security/whoami"), ("GET", "/api/card/stats/scans"),
                         ("POST", "/api/card/verify")]:
        r = httpx.request(method, secure + path, json={"resourceType": "Patient"} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["resourceType"] == "OperationOutcome"


def test_identity_headers_not_believed(secure, server_store):
    server_store.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    forged = {"X-Hutong-Role": "system", "X-Hutong-Client": "his", "X-Hutong-Tenant": "22"}
    assert httpx.get(secure + "/fhir/Patient/p1", headers=forged).status_code == 401
    wrong = {**forged, "X-Hutong-Gateway-Key": "guess"}
    assert httpx.get(secure + "/fhir/Patient/p1", headers=wrong).status_code == 401
    # the configured gateway (its own shared key) may declare the caller
    good = {**forged, "X-Hutong-Gateway-Key": TEST_GATEWAY_KEY}
    assert httpx.get(secure + "/fhir/Patient/p1", headers=good).status_code == 200
    who = httpx.get(secure + "/api/security/whoami", headers={**good, "X-Hutong-Role": "clinician"}).json()
    assert who["roles"] == ["clinician"] and who["auth"] == "gateway"


def test_open_routes(secure):
    for path in ["/fhir/metadata", "/health", "/.well-known/jwks.json", "/.well-known/smart-configuration",
                 "/fhir/.well-known/smart-configuration", "/login", "/openapi.json"]:
        r = httpx.get(secure + path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["x-content-type-options"] == "nosniff"


def test_bad_bearer_token(secure):
    for value in ("Bearer nonsense", "Bearer a.b.c", "Basic dXNlcjpwYXNz"):
        r = httpx.get(secure + "/fhir/Patient", headers={"Authorization": value})
        assert r.status_code == 401
        assert "Bearer" in r.headers["www-authenticate"]
