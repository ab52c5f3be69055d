"""Fixtures for the security tests: a live server whose requests carry no credentials by default,
and helpers that register clients and sign their assertions (RFC 7523) as an institution would."""

from __future__ import annotations

import secrets
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.conftest import LiveServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Institution:
    """A registered client system with its private key."""

    def __init__(self, store, scope: str, alg: str = "ES384", institution: str | None = None,
                 tenant: str | None = None, name: str = "测试医院 HIS"):
        from hutong.security.tokens import TokenService

        self.alg = alg
        kid = "k-" + secrets.token_hex(4)
        if alg.startswith("ES"):
            self.key = ECKey.generate_key("P-384", parameters={"kid": kid, "alg": alg})
        else:
            self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": alg})
        self.service = TokenService(store, store.settings)
        self.client_id = self.service.add_client(name, scope, jwks={"keys": [self.key.as_dict(private=False)]},
                                                 institution=institution, tenant=tenant)

    def assertion(self, aud: str, *, key=None, kid: str | None = None, exp_in: int = 240, jti: str | None = None,
                  extra_header: dict | None = None, **claims) -> str:
        now = int(time.time())
        body = {"iss": self.client_id, "sub": self.client_id, "aud": aud, "exp": now + exp_in, "iat": now,
                "jti": jti or secrets.token_urlsafe(16), **claims}
        header = {"alg": self.alg, "kid": kid or self.key.kid, "typ": "JWT", **(extra_header or {})}
        return jwt.encode(header, body, key or self.key, algorithms=[self.alg])

    def form(self, aud: str, scope: str = "system/Patient.rs", **kw) -> dict:
        return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(aud, **kw), "scope": scope}


@pytest.fixture
def secure(server_store):
    """Base URL of a live server on ``server_store``; requests to it carry nothing unless a test adds it."""
    from hutong.api.app import create_app

    with LiveServer(create_app(store=server_store), credentials=False) as live:
        yield live.url


@pytest.fixture
def institution(server_store):
    """``institution(scope, alg=..., institution=...)`` registers a client system."""
    return lambda scope, **kw: Institution(server_store, scope, **kw)


def get_token(client, base: str, inst: Institution, scope: str = "system/Patient.rs") -> str:
    r = client.post(base + "/auth/token", data=inst.form(base + "/auth/token", scope))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]
