"""CDS Hooks client trust: a JWT per request from a registered client, keys at its registered jku
(served over real HTTP here), aud, exp, jti once (both backends)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select

from hutong.recognition.cdsauth import register_client
from hutong.recognition.tables import recognition_offer
from tests.recognition.helpers import CBC_ORDER, cbc_report, order, seed
from tests.recognition.test_cdshooks_http import request


@pytest.fixture
def jwks_server():
    """A hospital system's key set, published over HTTP on loopback."""
    key = ECKey.generate_key("P-384", parameters={"kid": "his-b-1"})
    doc = {"keys": [key.as_dict(private=False)]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield key, f"http://127.0.0.1:{srv.server_address[1]}/jwks.json", doc
    finally:
        srv.shutdown()


def token(key, aud: str, *, iss: str = "his-b", jku: str | None = None, exp: float | None = None,
          jti: str | None = None, alg: str = "ES384") -> str:
    header = {"alg": alg, "typ": "JWT", "kid": key.kid}
    if jku:
        header["jku"] = jku
    now = int(time.time())
    claims = {"iss": iss, "sub": iss, "aud": aud, "iat": now, "exp": int(exp if exp is not None else now + 120),
              "jti": jti or str(uuid.uuid4())}
    return jwt.encode(header, claims, key, algorithms=[alg])


def test_signed_requests_from_a_registered_client(server, server_store, jwks_server):
    key, jku, _doc = jwks_server
    seed(server_store)
    with server_store.write() as tx:
        tx.update("DiagnosticReport", "rep-a", cbc_report("rep-a", "pa", "hosp-a", 1))
    server_store.run_consumers()
    register_client(server_store, "his-b", "hosp-b", jku=jku)
    url = f"{server}/cds-services/recognition-order-sign"
    body = request("order-sign", [order("sr1", "B0042", CBC_ORDER)], "B0042")
    with httpx.Client(timeout=60) as c:
        # no X-Hutong-Institution: the institution comes from the registered client
        r = c.post(url, json=body, headers={"Authorization": f"Bearer {token(key, url, jku=jku)}"})
        assert r.status_code == 200, r.text
        assert len(r.json()["cards"]) == 1
        card = r.json()["cards"][0]

        reused = token(key, url, jti="once")
        assert c.post(url, json=body, headers={"Authorization": f"Bearer {reused}"}).status_code == 200
        other = ECKey.generate_key("P-384", parameters={"kid": "his-b-1"})
        rsa = RSAKey.generate_key(2048, parameters={"kid": "his-b-1"})
        bad = {
            "replayed jti": reused,
            "wrong aud": token(key, f"{server}/cds-services/other"),
            "expired": token(key, url, exp=time.time() - 600),
            "too long": token(key, url, exp=time.time() + 3600),
            "unknown iss": token(key, url, iss="his-x"),
            "foreign jku": token(key, url, jku="http://127.0.0.1:9/evil.json"),
            "wrong key": token(other, url),
            "HS256": "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJoaXMtYiJ9.c2ln",
            "rsa key not in the set": token(rsa, url, alg="RS384"),
            "garbage": "not-a-jwt",
        }
        for name, tok in bad.items():
            r = c.post(url, json=body, headers={"Authorization": f"Bearer {tok}"})
            assert r.status_code == 401, (name, r.status_code, r.text)
            assert r.json()["resourceType"] == "OperationOutcome"
        assert c.post(url, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
        # the jti is recorded in the answer's own transaction: a refused (replayed) call wrote no offer
        with server_store.read() as tx:
            assert tx.conn.execute(select(func.count()).select_from(recognition_offer)).scalar() == 2
        # feedback with a token for the feedback URL
        fb_url = f"{url}/feedback"
        fb = {"feedback": [{"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T08:00:00Z"}]}
        r = c.post(fb_url, json=fb, headers={"Authorization": f"Bearer {token(key, fb_url)}"})
        assert r.status_code == 200, r.text
