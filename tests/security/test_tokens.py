"""SMART Backend Services over real HTTP: discovery, the token endpoint and each refusal the spec
names, and access tokens on the FHIR API. Both backends."""

from __future__ import annotations

import httpx
from joserfc.jwk import ECKey

from tests.security.conftest import ASSERTION_TYPE, get_token


def test_discovery_at_fhir_base_and_root(secure):
    for url in (secure + "/fhir/.well-known/smart-configuration", secure + "/.well-known/smart-configuration"):
        r = httpx.get(url)
        assert r.status_code == 200
        doc = r.json()
        assert doc["token_endpoint"] == secure + "/auth/token"
        assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
        assert {"RS384", "ES384"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
        assert "client-confidential-asymmetric" in doc["capabilities"]
    jwks = httpx.get(secure + "/.well-known/jwks.json").json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])


def test_token_then_fhir_read(secure, institution, server_store):
    server_store.update("Patient", "p1", {"resourceType": "Patient", "id": "p1", "gender": "female"})
    for alg in ("ES384", "RS384"):
        inst = institution("system/Patient.rs system/Observation.rs", alg=alg)
        with httpx.Client() as c:
            r = c.post(secure + "/auth/token", data=inst.form(secure + "/auth/token", "system/Patient.rs"))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["token_type"] == "bearer" and body["expires_in"] <= 300 and body["scope"] == "system/Patient.rs"
            assert r.headers["cache-control"] == "no-store"
            auth = {"Authorization": "Bearer " + body["access_token"]}
            assert c.get(secure + "/fhir/Patient/p1", headers=auth).status_code == 200
            # within its scopes only: Observation was registered but not asked for
            denied = c.get(secure + "/fhir/Observation", headers=auth)
            assert denied.status_code == 403
            assert denied.json()["resourceType"] == "OperationOutcome"
            # a write needs a write scope
            assert c.post(secure + "/fhir/Patient", json={"resourceType": "Patient"}, headers=auth).status_code == 403


def _refused(secure, form, error="invalid_client", status=401):
    r = httpx.post(secure + "/auth/token", data=form)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert "resourceType" not in body  # OAuth2 JSON, not an OperationOutcome
    return body["error_description"]


def test_each_refusal(secure, institution):
    inst = institution("system/Patient.rs")
    aud = secure + "/auth/token"
    assert "aud" in _refused(secure, inst.form("https://elsewhere.example/auth/token"))
    assert "expired" in _refused(secure, inst.form(aud, exp_in=-120))
    assert "5 minutes" in _refused(secure, inst.form(aud, exp_in=3600))
    assert "kid" in _refused(secure, inst.form(aud, kid="no-such-kid"))
    other = ECKey.generate_key("P-384", parameters={"kid": inst.key.kid})
    assert "signature" in _refused(secure, inst.form(aud, key=other))
    form = inst.form(aud, jti="once")
    assert httpx.post(aud, data=form).status_code == 200
    assert "replayed" in _refused(secure, inst.form(aud, jti="once"))
    assert "jku" in _refused(secure, inst.form(aud, extra_header={"jku": "https://attacker.example/jwks"}))
    wrong_grant = {**inst.form(aud), "grant_type": "password"}
    _refused(secure, wrong_grant, "unsupported_grant_type", 400)
    _refused(secure, inst.form(aud, scope="system/Observation.rs"), "invalid_scope", 400)
    _refused(secure, inst.form(aud, scope="system/Patient.cruds"), "invalid_scope", 400)
    _refused(secure, {**inst.form(aud), "client_assertion_type": "password"}, "invalid_request", 400)
    _refused(secure, inst.form(aud, sub="someone-else"))
    # the refusals are security events
    from hutong.security.events import SecurityEvents
    from hutong.security.tables import security_event  # noqa: F401

    assert SecurityEvents(inst.service.store).total("token-replay") == 1
    assert SecurityEvents(inst.service.store).total("token-refused") >= 8


def test_disabled_client_refused_and_tokens_stop(secure, institution):
    inst = institution("system/Patient.rs")
    token = get_token(httpx, secure, inst)
    auth = {"Authorization": "Bearer " + token}
    assert httpx.get(secure + "/fhir/Patient", headers=auth).status_code == 200
    inst.service.set_status(inst.client_id, "disabled")
    _refused(secure, inst.form(secure + "/auth/token"))
    # the serving node caches a client's status for at most 10 s; a fresh node sees it at once
    from hutong.core.errors import FhirError
    from hutong.security.tokens import TokenService

    try:
        TokenService(inst.service.store, inst.service.settings).caller(token)
        raise AssertionError("a disabled client's token was accepted")
    except FhirError as exc:
        assert exc.status == 401


def test_public_url_is_the_audience(server_store, institution, tmp_path):
    """Behind a proxy the assertion's aud is the configured public URL, not the internal address."""
    from dataclasses import replace

    from hutong.api.app import create_app
    from tests.conftest import LiveServer

    settings = replace(server_store.settings, public_url="https://hutong.jl.example")
    inst = institution("system/Patient.rs")
    with LiveServer(create_app(settings=settings, store=server_store), credentials=False) as live:
        internal = live.url + "/auth/token"
        assert httpx.post(internal, data=inst.form(internal)).status_code == 401
        ok = httpx.post(internal, data=inst.form("https://hutong.jl.example/auth/token"))
        assert ok.status_code == 200, ok.text
        doc = httpx.get(live.url + "/fhir/.well-known/smart-configuration").json()
        assert doc["token_endpoint"] == "https://hutong.jl.example/auth/token"


def test_form_only(secure):
    r = httpx.post(secure + "/auth/token", json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert ASSERTION_TYPE
