"""The store's interactions, on SQLite and PostgreSQL (the ``store`` fixture runs each test on both)."""

from __future__ import annotations

import threading

import pytest

from hutong.core.errors import FhirError
from hutong.fhir.patch import patch_function


def patient(**extra):
    return {"resourceType": "Patient", "name": [{"family": "王", "given": ["伟"]}], **extra}


def test_create_assigns_id_version_and_last_updated(store):
    result = store.create(patient())
    assert result.outcome == "created"
    stored = result.stored
    assert stored.version_id == 1
    body = store.get("Patient", stored.res_id)
    assert body["id"] == stored.res_id
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] == stored.last_updated


def test_server_owns_meta_version_and_time(store):
    rid = store.create(patient(meta={"versionId": "99", "lastUpdated": "2001-01-01T00:00:00Z", "source": "#his"})).stored.res_id
    body = store.get("Patient", rid)
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert body["meta"]["source"] == "#his"


def test_update_creates_with_client_id_then_versions(store):
    first = store.update("Patient", "p-1", patient(id="p-1"))
    assert first.outcome == "created" and first.stored.version_id == 1
    second = store.update("Patient", "p-1", patient(id="p-1", gender="male"))
    assert second.outcome == "updated" and second.stored.version_id == 2
    assert store.get("Patient", "p-1")["gender"] == "male"


def test_update_with_same_content_makes_no_version(store):
    store.update("Patient", "same", patient(id="same"))
    again = store.update("Patient", "same", patient(id="same"))
    assert again.outcome == "unchanged" and again.stored.version_id == 1


def test_if_match_on_stale_version_is_412(store):
    store.update("Patient", "p-2", patient())
    store.update("Patient", "p-2", patient(gender="female"), if_match=1)
    with pytest.raises(FhirError) as err:
        store.update("Patient", "p-2", patient(gender="male"), if_match=1)
    assert err.value.status == 412
    assert store.get("Patient", "p-2")["gender"] == "female"


def test_delete_keeps_versions(store):
    rid = store.create(patient()).stored.res_id
    assert store.delete("Patient", rid).outcome == "deleted"
    assert store.get("Patient", rid) is None
    with store.read() as tx:
        with pytest.raises(FhirError) as err:
            tx.read_current("Patient", rid)
        assert err.value.status == 410
        assert tx.vread("Patient", rid, "1").resource["name"][0]["family"] == "王"
        history = tx.history("Patient", rid)
    assert [h.version_id for h in history] == [2, 1]
    assert history[0].deleted and history[0].method == "DELETE"
    # Deleting again is harmless and makes no version.
    assert store.delete("Patient", rid).outcome == "unchanged"


def test_recreate_after_delete_continues_versions(store):
    store.update("Patient", "again", patient())
    store.delete("Patient", "again")
    result = store.update("Patient", "again", patient(gender="male"))
    assert result.outcome == "created" and result.stored.version_id == 3


def test_patch_applies_json_patch(store):
    rid = store.create(patient()).stored.res_id
    with store.write() as tx:
        result = tx.patch("Patient", rid, patch_function([{"op": "add", "path": "/gender", "value": "female"}], None))
    assert result.stored.version_id == 2
    assert store.get("Patient", rid)["gender"] == "female"


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/id", "value": "other"}],
        [{"op": "bogus"}],
        {"op": "add"},
    ],
)
def test_bad_patch_is_refused_and_changes_nothing(store, ops):
    rid = store.create(patient()).stored.res_id
    with pytest.raises(FhirError) as err:
        with store.write() as tx:
            tx.patch("Patient", rid, patch_function(ops, None))
    assert err.value.status in (400, 422)
    assert store.read_resource("Patient", rid).version_id == 1


def test_reference_to_missing_resource_is_refused(store):
    with pytest.raises(FhirError) as err:
        store.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "Patient/missing"}})
    assert err.value.status == 400
    assert err.value.issues[0].expression == ["Observation.subject"]


def test_malformed_reference_is_refused(store):
    with pytest.raises(FhirError) as err:
        store.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "not a reference"}})
    assert err.value.status == 400


def test_failed_transaction_writes_nothing(store):
    with pytest.raises(FhirError):
        with store.write() as tx:
            tx.create(patient(id="ignored"))
            tx.update("Patient", "bad id!", patient())
    with store.read() as tx:
        assert tx.history() == []
    assert store.outbox.read() == []


def test_change_log_follows_every_write_in_order(store):
    rid = store.create(patient()).stored.res_id
    store.update("Patient", rid, patient(gender="male"))
    store.delete("Patient", rid)
    events = store.outbox.read()
    assert [(e.op, e.version_id) for e in events] == [("create", 1), ("update", 2), ("delete", 3)]
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_consumer_sees_each_event_once_and_survives_a_crash(store):
    seen: list[int] = []
    crash = {"on": True}

    def handler(tx, events):
        for e in events:
            if crash["on"] and e.version_id == 2:
                raise RuntimeError("simulated crash")
            seen.append(e.seq)

    rid = store.create(patient()).stored.res_id
    store.update("Patient", rid, patient(gender="male"))
    with pytest.raises(RuntimeError):
        store.outbox.consume("test", handler, batch_size=10)
    assert store.outbox.position("test") == 0  # the position did not move past the failed batch
    seen.clear()
    crash["on"] = False
    store.outbox.consume("test", handler, batch_size=10)
    store.outbox.consume("test", handler, batch_size=10)
    assert len(seen) == 2 and len(set(seen)) == 2


def test_concurrent_if_match_updates_exactly_one_wins(store):
    store.update("Patient", "race", patient())
    barrier = threading.Barrier(6)
    outcomes: list[int] = []
    lock = threading.Lock()

    def attempt(n):
        barrier.wait()
        try:
            store.update("Patient", "race", patient(gender="male" if n % 2 else "female",
                                                    birthDate=f"19{50 + n}-01-01"), if_match=1)
            code = 200
        except FhirError as exc:
            code = exc.status
        with lock:
            outcomes.append(code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(200) == 1
    assert all(code in (409, 412) for code in outcomes if code != 200)
    assert store.read_resource("Patient", "race").version_id == 2


def test_concurrent_updates_lose_nothing_and_leave_no_gaps(store):
    store.update("Patient", "counter", patient(id="counter", birthDate="1950-01-01"))
    writers, each = 4, 5

    def work(n):
        for i in range(each):
            for _attempt in range(50):
                try:
                    store.update("Patient", "counter", patient(id="counter", birthDate=f"19{10 + n}-01-{10 + i}"))
                    break
                except FhirError as exc:
                    assert exc.status == 409
    threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.read() as tx:
        versions = sorted(h.version_id for h in tx.history("Patient", "counter", count=1000))
    assert versions == list(range(1, 1 + writers * each + 1))
    assert store.read_resource("Patient", "counter").version_id == writers * each + 1


def test_history_paging_with_cursor_is_stable(store):
    for i in range(7):
        store.update("Patient", f"h{i}", patient())
    with store.read() as tx:
        page1 = tx.history("Patient", count=3)
        last = page1[-1]
        page2 = tx.history("Patient", count=3, at_or_before=(last.ts_us, last.res_type, last.res_id, last.version_id - 1))
    assert len({p.res_id for p in page1 + page2}) == 6
