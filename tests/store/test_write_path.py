"""The write path's storage choices, on SQLite and PostgreSQL: time-ordered ids, content stored once,
transactions prepared before the write lock (``store`` runs each test on both backends)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from hutong.core.errors import FhirError
from hutong.core.ids import new_id
from hutong.fhir.bundle import process_transaction
from hutong.store import schema

BASE = "http://hutong.test/fhir"


def patient(family="王", **extra):
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["伟"]}], **extra}


def test_server_ids_are_time_ordered_uuid7():
    ids = [new_id() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_current_content_is_stored_once_and_old_versions_keep_theirs(store):
    rid = store.create(patient("王")).stored.res_id
    store.update("Patient", rid, patient("李", id=rid))
    with store.read() as tx:
        v = schema.resource_version.c
        rows = dict(tx.conn.execute(select(v.version_id, v.content).where(v.res_id == rid)).all())
        # Version 1 was superseded: its content moved to resource_version; version 2 lives in resource only.
        assert rows[1] is not None and rows[2] is None
        assert tx.vread("Patient", rid, "1").resource["name"][0]["family"] == "王"
        assert tx.vread("Patient", rid, "2").resource["name"][0]["family"] == "李"
        assert [h.resource["name"][0]["family"] for h in tx.history("Patient", rid)] == ["李", "王"]
    store.delete("Patient", rid)
    with store.read() as tx:
        assert tx.vread("Patient", rid, "2").resource["name"][0]["family"] == "李"
        assert [h.deleted for h in tx.history("Patient", rid)] == [True, False, False]


def _bundle(*entries):
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def _conditional_patient_with_observation():
    return _bundle(
        {"fullUrl": "urn:uuid:obs-1", "resource": {
            "resourceType": "Observation", "status": "final", "code": {"text": "血糖"},
            "subject": {"reference": "urn:uuid:pat-1"}}, "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:pat-1", "resource": patient(identifier=[{"system": "urn:test:mrn", "value": "M-1"}]),
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:test:mrn|M-1"}},
    )


def test_transaction_reference_to_an_if_none_exist_entry_resolves_either_way(store):
    first = process_transaction(store, _conditional_patient_with_observation(), BASE)
    assert [e["response"]["status"][:3] for e in first["entry"]] == ["201", "201"]
    pid = first["entry"][1]["response"]["location"].split("/")[-3]
    second = process_transaction(store, _conditional_patient_with_observation(), BASE)
    # The patient exists now: the second run reuses it and the new observation points at it.
    assert second["entry"][1]["response"]["status"].startswith("200")
    obs_id = second["entry"][0]["response"]["location"].split("/")[-3]
    assert store.get("Observation", obs_id)["subject"]["reference"] == f"Patient/{pid}"


def test_entry_refused_before_the_lock_writes_nothing_and_is_named(store):
    bad = _bundle(
        {"fullUrl": "urn:uuid:ok", "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:bad", "resource": patient(birthDate="1990-13-45"),
         "request": {"method": "POST", "url": "Patient"}},
    )
    with pytest.raises(FhirError) as err:
        process_transaction(store, bad, BASE)
    assert err.value.status == 400 and "Bundle.entry[1]" in err.value.issues[0].diagnostics
    with store.read() as tx:
        assert tx.conn.execute(select(schema.resource.c.res_id)).first() is None


def test_a_typed_consumer_skips_other_types_in_one_step_and_misses_nothing(store):
    seen: list[tuple[str, int]] = []
    for k in range(7):
        store.create({"resourceType": "Organization", "name": f"机构{k}"})
        if k % 3 == 0:
            store.create(patient(f"张{k}"))

    def handler(tx, events):
        seen.extend((e.res_type, e.seq) for e in events)

    rounds = 0
    while store.outbox.consume("typed", handler, batch_size=2, types={"Patient"}):
        rounds += 1
    assert [t for t, _ in seen] == ["Patient"] * 3 and len({s for _, s in seen}) == 3
    assert rounds <= 3  # batches of wanted events, not of every event
    assert store.outbox.position("typed") == store.outbox.last_seq()
    store.create(patient("李"))
    store.create({"resourceType": "Organization", "name": "后来"})
    store.outbox.consume("typed", handler, batch_size=2, types={"Patient"})
    assert [t for t, _ in seen] == ["Patient"] * 4
    assert store.outbox.position("typed") == store.outbox.last_seq()
