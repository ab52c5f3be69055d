"""Requests racing on one resource, released together at a barrier against a live server, on both
backends: conditional creates make one resource, patches without If-Match all apply, concurrent
creates of one id by PUT become one create and updates."""

from __future__ import annotations

import threading

import httpx

THREADS = 10
ROUNDS = 3


def _race(fn, n: int = THREADS) -> list:
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i):
        barrier.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _patient(ident: str, **extra) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:race", "value": ident}], **extra}


def _count(base: str, ident: str) -> int:
    return httpx.get(f"{base}/fhir/Patient", params={"identifier": f"urn:race|{ident}", "_summary": "count"}).json()["total"]


def test_concurrent_conditional_creates_make_one_resource(server):
    for rnd in range(ROUNDS):
        ident = f"cc-{rnd}"
        with httpx.Client(base_url=server, timeout=60) as c:
            codes = _race(lambda i, c=c, ident=ident: c.post(
                "/fhir/Patient", json=_patient(ident), headers={"If-None-Exist": f"identifier=urn:race|{ident}"}).status_code)
        assert sorted(codes) == [200] * (THREADS - 1) + [201], codes
        assert _count(server, ident) == 1


def test_concurrent_transaction_if_none_exist_makes_one_resource(server):
    for rnd in range(ROUNDS):
        ident = f"tx-{rnd}"
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": "urn:uuid:8a8a6d8b-5b1f-4d0a-9f6b-000000000001", "resource": _patient(ident),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:race|{ident}"}}]}
        with httpx.Client(base_url=server, timeout=60) as c:
            results = _race(lambda i, c=c, b=bundle: c.post("/fhir", json=b).json())
        statuses = sorted(r["entry"][0]["response"]["status"][:3] for r in results)
        assert statuses == ["200"] * (THREADS - 1) + ["201"], statuses
        assert _count(server, ident) == 1


def test_concurrent_conditional_updates_make_one_resource(server):
    for rnd in range(ROUNDS):
        ident = f"cu-{rnd}"
        with httpx.Client(base_url=server, timeout=60) as c:
            codes = _race(lambda i, c=c, ident=ident: c.put(
                "/fhir/Patient", params={"identifier": f"urn:race|{ident}"},
                json=_patient(ident, gender="female" if i % 2 else "male")).status_code)
        assert sorted(codes) == [200] * (THREADS - 1) + [201], codes
        assert _count(server, ident) == 1


def test_concurrent_patches_without_if_match_all_apply(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        pid = c.post("/fhir/Patient", json=_patient("patch-0")).json()["id"]
        codes = _race(lambda i, c=c: c.patch(
            f"/fhir/Patient/{pid}", json=[{"op": "add", "path": "/identifier/-",
                                           "value": {"system": "urn:race:p", "value": str(i)}}],
            headers={"Content-Type": "application/json-patch+json"}).status_code, n=20)
        assert codes == [200] * 20, codes
        final = c.get(f"/fhir/Patient/{pid}").json()
    assert final["meta"]["versionId"] == "21"
    assert sorted(int(i["value"]) for i in final["identifier"] if i["system"] == "urn:race:p") == list(range(20))


def test_concurrent_puts_creating_one_id_are_one_create_and_updates(server):
    for rnd in range(ROUNDS):
        rid = f"race-put-{rnd}"
        with httpx.Client(base_url=server, timeout=60) as c:
            codes = _race(lambda i, c=c, rid=rid: c.put(
                f"/fhir/Patient/{rid}", json={**_patient(rid), "id": rid, "gender": "female" if i % 2 else "male"}
            ).status_code)
            assert sorted(codes) == [200] * (THREADS - 1) + [201], codes
            history = c.get(f"/fhir/Patient/{rid}/_history").json()
        assert 1 <= history["total"] <= THREADS  # identical bodies make no new version


def test_concurrent_transactions_with_if_none_exist_across_worker_processes(settings):
    """Bundles run one at a time per process, so the race needs two processes: two workers here."""
    from tests.reliability.conftest import server_process

    with server_process(settings, workers=2) as (base, _proc):
        for rnd in range(ROUNDS):
            ident = f"txp-{rnd}"
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
                "fullUrl": "urn:uuid:8a8a6d8b-5b1f-4d0a-9f6b-000000000002", "resource": _patient(ident),
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:race|{ident}"}}]}
            # One client per thread: separate connections, spread over both worker processes.
            results = _race(lambda i, b=bundle: httpx.post(f"{base}/fhir", json=b, timeout=60).json())
            statuses = sorted(r["entry"][0]["response"]["status"][:3] for r in results)
            assert statuses == ["200"] * (THREADS - 1) + ["201"], statuses
            assert _count(base, ident) == 1
