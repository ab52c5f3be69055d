"""Applying another node's changes: the position moves past what never flows here, so a peer shows
no lag when caught up, and nothing behind that position is applied twice (both backends, and the
province's HTTPS ingest refusing a bad ``through``)."""

from __future__ import annotations

import dataclasses

import httpx
import orjson
import pytest

from hutong.federation.envelope import Envelope
from hutong.federation.ingest import apply_envelopes, peer_position
from hutong.federation.status import federation_status

ACCEPT = frozenset({"Patient"})


def _env(seq: int, prev: int, rid: str, version: int = 1) -> Envelope:
    res = {"resourceType": "Patient", "id": rid, "gender": "female", "meta": {"source": "urn:hutong:org:h1"}}
    return Envelope("city-a", seq, prev, "2204", "Patient", rid, version, "create" if version == 1 else "update",
                    1_700_000_000_000_000 + seq, orjson.dumps(res).decode())


def _province(store):
    store.settings = dataclasses.replace(store.settings, default_tenant="22")
    return store


def test_position_moves_past_events_that_never_flow_here(store):
    store = _province(store)
    # The city's seqs 1 and 4 are Patients; 2, 3 and 5 are its own Person rows (never sent up).
    r = apply_envelopes(store, [_env(1, 0, "p1"), _env(4, 1, "p2")], direction="up", accept=ACCEPT,
                        heads={"city-a": (5, 0)}, scanned={"city-a": 5})
    assert (r.applied, r.gaps, r.through["city-a"]) == (2, 0, 5)
    peer = federation_status(store)["peers"][0]
    assert peer["events_behind"] == 0 and peer["applied_through"] == 5
    # A repeat of anything up to the position is dropped; the next event chains from it.
    r = apply_envelopes(store, [_env(4, 1, "p2"), _env(6, 5, "p3")], direction="up", accept=ACCEPT,
                        heads={"city-a": (7, 0)}, scanned={"city-a": 6})
    assert (r.applied, r.duplicates, r.gaps) == (1, 1, 0)
    # A heartbeat with nothing to send still moves the position (and never backwards).
    apply_envelopes(store, [], direction="up", accept=ACCEPT, heads={"city-a": (9, 0)}, scanned={"city-a": 9})
    apply_envelopes(store, [], direction="up", accept=ACCEPT, heads={"city-a": (9, 0)}, scanned={"city-a": 3})
    assert peer_position(store, "city-a") == 9
    assert federation_status(store)["peers"][0]["events_behind"] == 0
    with store.read() as tx:
        assert [tx.read("Patient", p).version_id for p in ("p1", "p2", "p3")] == [1, 1, 1]


def test_without_scanned_the_lag_counts_what_never_flows(store):
    store = _province(store)
    apply_envelopes(store, [_env(1, 0, "p1")], direction="up", accept=ACCEPT, heads={"city-a": (5, 0)})
    assert federation_status(store)["peers"][0]["events_behind"] == 4


@pytest.fixture
def server_store(store):
    """The live server is a province (tenant 22) without a broker."""
    store.settings = dataclasses.replace(store.settings, federation_role="province", default_tenant="22",
                                         nats_url="")
    return store


def test_ingest_refuses_a_bad_through(server, server_store):
    body = {"node": "city-b", "tenant": "2204", "head": {"seq": 3, "ts_us": 0}, "through": "x", "events": []}
    r = httpx.post(server + "/api/federation/ingest", json=body)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", r.text
    body["through"] = 7  # past the reported head
    assert httpx.post(server + "/api/federation/ingest", json=body).status_code == 400
    body["through"] = 3  # a heartbeat that moves the position
    r = httpx.post(server + "/api/federation/ingest", json=body)
    assert r.status_code == 200 and r.json()["through"]["city-b"] == 3
    assert peer_position(server_store, "city-b") == 3
