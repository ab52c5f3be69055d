"""Live indicators from the record (both backends): counts follow creates, moves to another institution,
date changes and deletes, equal a full recomputation, roll up county → city → province, and the
public view withholds small cells. Over HTTP a new Encounter shows within seconds."""

from __future__ import annotations

import dataclasses
import time

import httpx
import pytest

from hutong.core.errors import FhirError
from hutong.stats import counters, indicators

DIV = "https://hutong.example/fhir/StructureDefinition/division-code"
ORGS = {"h1": "220102", "h2": "220103", "h3": "220202"}   # two counties of 长春市, one of 吉林市
CONSUMER = indicators.CONSUMER


def _enc(org: str, start: str, cls: str = "AMB", end: str | None = None, status: str = "finished") -> dict:
    period = {"start": start}
    if end:
        period["end"] = end
    return {"resourceType": "Encounter", "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
            "serviceProvider": {"reference": f"Organization/{org}"}, "period": period}


def _setup(store):
    store.register_consumer(CONSUMER.name, CONSUMER.handler, CONSUMER.types)
    for org, div in ORGS.items():
        store.update("Organization", org, {"resourceType": "Organization", "id": org, "name": f"医院{org}",
                                           "extension": [{"url": DIV, "valueCode": div}]})


def _compute(store, code, **kw):
    with store.read() as tx:
        return indicators.compute(tx, code, **kw)


def _check_against_recompute(store):
    for c in indicators.COUNTERS:
        assert counters.stored(store, c) == counters.recompute(store, c), c.name


def test_visits_follow_moves_date_changes_and_deletes(store):
    _setup(store)
    ids = [store.create(_enc("h1", "2026-11-01T09:00:00+08:00")).stored.res_id for _ in range(3)]
    store.create(_enc("h2", "2026-11-01T23:30:00+08:00"))
    store.create(_enc("h3", "2026-10-31T17:30:00Z"))             # 2026-11-01 01:30 in Shanghai
    store.create(_enc("h1", "2026-11-01T10:00:00+08:00", cls="IMP"))   # not an outpatient visit
    store.create(_enc("h1", "2026-11-01T10:00:00+08:00", status="cancelled"))
    store.run_consumers()
    day = {"start": "2026-11-01", "end": "2026-11-01"}
    r = _compute(store, "OP_VISITS", **day)
    assert r["total"]["numerator"] == 5
    assert [(c["unit"], c["name"], c["numerator"]) for c in r["children"]] == [("2201", "长春市", 4),
                                                                               ("2202", "吉林市", 1)]
    r = _compute(store, "OP_VISITS", unit="2201", **day)
    assert [(c["unit"], c["numerator"]) for c in r["children"]] == [("220102", 3), ("220103", 1)]
    r = _compute(store, "OP_VISITS", unit="220102", **day)
    assert [(c["unit"], c["numerator"]) for c in r["children"]] == [("h1", 3)]

    store.update("Encounter", ids[0], {**_enc("h2", "2026-11-01T09:00:00+08:00"), "id": ids[0]})   # moved
    store.update("Encounter", ids[1], {**_enc("h1", "2026-11-02T09:00:00+08:00"), "id": ids[1]})   # new date
    store.delete("Encounter", ids[2])
    store.run_consumers()
    r = _compute(store, "OP_VISITS", unit="2201", **day)
    assert [(c["unit"], c["numerator"]) for c in r["children"]] == [("220103", 2)]
    assert _compute(store, "OP_VISITS", start="2026-11-02", end="2026-11-02")["total"]["numerator"] == 1
    per_day = _compute(store, "OP_VISITS_PER_DAY", start="2026-11-01", end="2026-11-02")
    assert per_day["total"]["value"] == 2.0     # (3 + 1) visits over 2 days
    _check_against_recompute(store)


def test_average_length_of_stay_and_hypertension_patients(store):
    _setup(store)
    # stays of 3, 1 (same day counts one) and 6 days, discharged in November at h1; one still in hospital
    for start, end in (("2026-11-01T08:00:00+08:00", "2026-11-04T10:00:00+08:00"),
                       ("2026-11-05T08:00:00+08:00", "2026-11-05T18:00:00+08:00"),
                       ("2026-10-28T08:00:00+08:00", "2026-11-03T09:00:00+08:00")):
        store.create(_enc("h1", start, "IMP", end))
    store.create(_enc("h1", "2026-11-20T08:00:00+08:00", "IMP", status="in-progress"))
    for pid in ("p1", "p2"):
        store.update("Patient", pid, {"resourceType": "Patient", "id": pid})
    def cond(pid, code="I10", status="active"):
        return {"resourceType": "Condition", "meta": {"source": "urn:hutong:org:h2"},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": status}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
                "subject": {"reference": f"Patient/{pid}"}}
    first = store.create(cond("p1")).stored.res_id
    store.create(cond("p1", "I11.9"))      # the same patient twice: counted once
    store.create(cond("p2"))
    store.create(cond("p2", "E11.9"))      # diabetes: not counted
    store.run_consumers()
    alos = _compute(store, "ALOS", start="2026-11-01", end="2026-11-30")
    assert (alos["total"]["numerator"], alos["total"]["denominator"], alos["total"]["value"]) == (10, 3, 3.3333)
    assert _compute(store, "HTN_MANAGED")["total"]["numerator"] == 2
    store.update("Condition", first, {**cond("p1", status="resolved"), "id": first})
    store.run_consumers()
    assert _compute(store, "HTN_MANAGED")["total"]["numerator"] == 2     # p1 still has I11.9
    _check_against_recompute(store)


def test_small_cells_are_withheld_in_public_views():
    result = {"total": {"unit": "", "name": "合计", "numerator": 12, "denominator": None, "value": 12},
              "children": [{"unit": "a", "name": "a", "numerator": 3, "denominator": None, "value": 3},
                           {"unit": "b", "name": "b", "numerator": 9, "denominator": None, "value": 9},
                           {"unit": "c", "name": "c", "numerator": 0, "denominator": None, "value": 0}]}
    out = indicators.suppress(result)
    assert out["children"][0] == {"unit": "a", "name": "a", "numerator": "<5", "denominator": None, "value": None,
                                  "suppressed": True}
    assert out["children"][1]["numerator"] == 9 and out["children"][2]["numerator"] == 0
    assert out["total"]["numerator"] == 12


def test_bad_days_are_refused(store):
    _setup(store)
    with store.read() as tx, pytest.raises(FhirError) as err:
        indicators.compute(tx, "OP_VISITS", start="2026-13-45")
    assert err.value.status == 400


@pytest.fixture
def live_server(store):
    """A live server whose consumer worker runs (the shared ``server`` fixture turns workers off)."""
    from hutong.api.app import create_app
    from tests.conftest import LiveServer

    app = create_app(dataclasses.replace(store.settings, workers=True), store=store)
    with LiveServer(app) as live:
        yield live.url


def test_a_new_encounter_shows_within_seconds_over_http(live_server, store):
    server, server_store = live_server, store
    for org, div in ORGS.items():
        server_store.update("Organization", org, {"resourceType": "Organization", "id": org, "name": f"医院{org}",
                                                  "extension": [{"url": DIV, "valueCode": div}]})
    params = {"start": "2026-11-01", "end": "2026-11-01"}
    with httpx.Client(base_url=server, timeout=30) as c:
        before = c.get("/api/stats/indicators/OP_VISITS", params=params).json()["total"]["numerator"]
        r = c.post("/fhir/Encounter", json=_enc("h1", "2026-11-01T09:00:00+08:00"))
        assert r.status_code == 201
        deadline = time.monotonic() + 20
        now = before
        while time.monotonic() < deadline:
            now = c.get("/api/stats/indicators/OP_VISITS", params=params).json()["total"]["numerator"]
            if now == before + 1:
                break
            time.sleep(0.2)
        assert now == before + 1
        public = c.get("/api/stats/public/indicators/OP_VISITS", params=params).json()
        assert public["total"]["numerator"] == "<5" and public["smallCellRule"]
        r = c.get("/api/stats/indicators/OP_VISITS", params={**params, "format": "xlsx"})
        assert r.content[:2] == b"PK"
        assert c.get("/api/stats/indicators/NOPE").status_code == 404
    assert counters.stored(server_store, indicators.VISITS) == counters.recompute(server_store, indicators.VISITS)
