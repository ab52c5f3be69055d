"""Protection: rate limits per address and per client (429 OperationOutcome with Retry-After), and
credential stuffing, scraping and scanning counted as security events — on both backends, over HTTP."""

from __future__ import annotations

import dataclasses
import time

import httpx
import pytest

from hutong.security.protection import RateLimiter, WindowCounter
from tests.conftest import LiveServer, bootstrap_token
from tests.security.conftest import Institution


def test_token_bucket_allows_a_burst_then_refuses_until_it_refills():
    limiter = RateLimiter(rate=2, burst_s=2)  # 4 requests at once, then 2 per second
    assert [limiter.take("a", now=100.0) for _ in range(4)] == [0.0] * 4
    wait = limiter.take("a", now=100.0)
    assert wait == pytest.approx(0.5)
    assert limiter.take("b", now=100.0) == 0.0  # another key has its own bucket
    assert limiter.take("a", now=100.6) == 0.0  # refilled by 1.2 tokens
    assert limiter.take("a", now=100.6) > 0
    assert RateLimiter(rate=0).take("a") == 0.0  # 0: no limit


def test_window_counter_says_once_per_window():
    counter = WindowCounter(limit=3, window_s=60)
    assert counter.distinct("x", ["p1", "p2"], now=10) is None
    assert counter.distinct("x", ["p2"], now=11) is None  # the same patient again does not count
    assert counter.distinct("x", ["p3"], now=12) == 3
    assert counter.distinct("x", ["p4"], now=13) is None  # flagged already in this window
    assert counter.distinct("x", ["p1", "p2", "p3"], now=70) == 3  # a new window
    assert [counter.count("y", now=200) for _ in range(3)] == [None, None, 3]


def _server(store, **settings):
    from hutong.api.app import create_app

    changed = dataclasses.replace(store.settings, **settings)
    return LiveServer(create_app(settings=changed, store=store), credentials=False)


def _wait_for(client, base: str, headers: dict, kind: str) -> dict:
    """The security events summary once ``kind`` has been counted (events are written in the background)."""
    deadline = time.monotonic() + 10
    while True:
        summary = client.get(base + "/api/security/events", headers=headers).json()
        if summary["totals"].get(kind) or time.monotonic() > deadline:
            return summary
        time.sleep(0.1)


def test_rate_limit_per_address(server_store):
    with _server(server_store, security_rate_address=2.0, security_rate_burst_s=2.0,
                 security_rate_exempt="none") as live, httpx.Client() as c:
        statuses = [c.get(live.url + "/health").status_code for _ in range(12)]
        assert statuses[:4] == [200] * 4  # the burst
        assert 429 in statuses
        r = next(c.get(live.url + "/fhir/metadata") for _ in range(3))
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "throttled"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_rate_limit_per_client_and_loopback_exempt_in_development(server_store):
    token = bootstrap_token(server_store, frozenset({"system/*.rs"}))
    auth = {"Authorization": f"Bearer {token}"}
    with _server(server_store, security_rate_client=1.0, security_rate_burst_s=3.0, security_rate_address=0.0,
                 security_rate_exempt="none") as live, httpx.Client() as c:
        statuses = [c.get(live.url + "/fhir/Patient", headers=auth).status_code for _ in range(8)]
        assert statuses[:3] == [200] * 3 and statuses[-1] == 429
        r = c.get(live.url + "/fhir/Patient", headers=auth)
        assert r.status_code == 429 and r.json()["issue"][0]["code"] == "throttled" and "retry-after" in r.headers
        # another client is not throttled by the first one's use (no address limit here)
        assert c.get(live.url + "/fhir/metadata").status_code == 200
        summary = _wait_for(c, live.url, _auditor(server_store), "rate-limited")
        assert summary["totals"]["rate-limited"] >= 1
    # development (the default): loopback is exempt, so the suite and benchmarks are never throttled
    with _server(server_store, security_rate_client=1.0, security_rate_burst_s=1.0,
                 security_rate_address=1.0) as live, httpx.Client() as c:
        assert {c.get(live.url + "/fhir/Patient", headers=auth).status_code for _ in range(10)} == {200}


def _auditor(store) -> dict:
    return {"X-Hutong-Gateway-Key": store.settings.security_gateway_key, "X-Hutong-Role": "auditor",
            "X-Hutong-Client": "auditor-wang"}


def test_scanning_is_counted(server_store):
    with _server(server_store, security_scanning_refusals=5) as live, httpx.Client() as c:
        for i in range(6):
            assert c.get(live.url + f"/fhir/Patient/nobody-{i}").status_code in (401, 404)
        summary = _wait_for(c, live.url, _auditor(server_store), "scanning")
        assert summary["totals"]["scanning"] == 1  # once per address and window, not once per request
        recent = c.get(live.url + "/api/security/events/recent?kind=scanning", headers=_auditor(server_store)).json()
        assert recent["events"][0]["address"] == "127.0.0.1"


def test_credential_stuffing_is_counted(server_store):
    stranger = Institution(server_store, "system/*.rs")
    with _server(server_store, security_stuffing_names=3) as live, httpx.Client() as c:
        for name in ("c-aaaa", "c-bbbb", "c-cccc"):
            form = stranger.form(live.url + "/auth/token", iss=name, sub=name)
            r = c.post(live.url + "/auth/token", data=form)
            assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        summary = _wait_for(c, live.url, _auditor(server_store), "credential-stuffing")
        assert summary["totals"]["credential-stuffing"] == 1
        assert summary["totals"]["token-refused"] == 3


def test_scraping_is_counted(server_store):
    for i in range(4):
        server_store.create({"resourceType": "Patient", "gender": "female"}, res_id=f"s{i}")
    token = bootstrap_token(server_store, frozenset({"system/*.rs"}))
    auth = {"Authorization": f"Bearer {token}"}
    with _server(server_store, security_scraping_patients=4) as live, httpx.Client() as c:
        for i in range(3):
            assert c.get(live.url + f"/fhir/Patient/s{i}", headers=auth).status_code == 200
        # the same patients again are not "more patients"
        assert c.get(live.url + "/fhir/Patient/s0", headers=auth).status_code == 200
        time.sleep(1.2)  # the audit writer appends twice a second; detection runs there
        assert c.get(live.url + "/api/security/events", headers=_auditor(server_store)).json()["totals"][
            "scraping"] == 0
        assert c.get(live.url + "/fhir/Patient/s3", headers=auth).status_code == 200
        summary = _wait_for(c, live.url, _auditor(server_store), "scraping")
        assert summary["totals"]["scraping"] == 1
        recent = c.get(live.url + "/api/security/events/recent?kind=scraping", headers=_auditor(server_store)).json()
        assert recent["events"][0]["who"] == "test-bootstrap"
