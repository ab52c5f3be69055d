"""Live counters stay equal to a full recomputation through creates, moves, date changes and deletes."""

from __future__ import annotations

from hutong.stats import counters


def _visits(encounter: dict):
    """Outpatient visits by institution and day (the shape of a real indicator)."""
    org = (encounter.get("serviceProvider") or {}).get("reference", "").removeprefix("Organization/")
    day = ((encounter.get("period") or {}).get("start") or "")[:10]
    if org and day:
        yield (org, day), 1


VISITS = counters.Counter("test-visits", frozenset({"Encounter"}), ("institution", "day"), _visits)


def _encounter(org: str, day: str) -> dict:
    return {"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "serviceProvider": {"reference": f"Organization/{org}"}, "period": {"start": f"{day}T09:00:00+08:00"}}


def _setup(store):
    consumer = counters.consumer("test-visits", [VISITS])
    store.register_consumer(consumer.name, consumer.handler, consumer.types)
    for org in ("a", "b"):
        store.create({"resourceType": "Organization", "id": org, "name": org}, res_id=org)


def test_counts_follow_creates_updates_moves_and_deletes(store):
    _setup(store)
    ids = [store.create(_encounter("a", "2026-11-01")).stored.res_id for _ in range(3)]
    store.create(_encounter("b", "2026-11-02"))
    store.run_consumers()
    assert counters.stored(store, VISITS) == {("a", "2026-11-01"): 3, ("b", "2026-11-02"): 1}

    store.update("Encounter", ids[0], {**_encounter("b", "2026-11-01"), "id": ids[0]})   # moved to b
    store.update("Encounter", ids[1], {**_encounter("a", "2026-11-03"), "id": ids[1]})   # date changed
    store.delete("Encounter", ids[2])
    store.run_consumers()
    expected = {("b", "2026-11-01"): 1, ("a", "2026-11-03"): 1, ("b", "2026-11-02"): 1}
    assert counters.stored(store, VISITS) == expected
    assert counters.recompute(store, VISITS) == expected


def test_recreated_after_delete_and_unrelated_types_are_ignored(store):
    _setup(store)
    rid = store.create(_encounter("a", "2026-11-01")).stored.res_id
    store.delete("Encounter", rid)
    store.update("Encounter", rid, {**_encounter("a", "2026-11-05"), "id": rid})
    store.create({"resourceType": "Patient", "name": [{"family": "王"}]})
    store.run_consumers()
    assert counters.stored(store, VISITS) == {("a", "2026-11-05"): 1} == counters.recompute(store, VISITS)


def test_read_groups_and_filters(store):
    _setup(store)
    for org, day in [("a", "2026-11-01"), ("a", "2026-11-02"), ("b", "2026-11-02")]:
        store.create(_encounter(org, day))
    store.run_consumers()
    with store.read() as tx:
        assert counters.read(tx.conn, VISITS, by=["institution"]) == {("a",): 2, ("b",): 1}
        assert counters.read(tx.conn, VISITS, where={"day": "2026-11-02"}) == {(): 2}
