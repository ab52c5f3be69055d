"""Only one process of a server runs the change-log consumers; another takes over when it stops."""

from __future__ import annotations

from hutong.api.app import ConsumerWorker


def test_one_runner_per_data_folder_and_takeover(store, tmp_path):
    lock = tmp_path / "consumers.lock"
    first, second = ConsumerWorker(store, lock), ConsumerWorker(store, lock)
    assert first.is_runner()
    assert not second.is_runner()  # flock is per open file: a second worker (or process) is refused
    first.start()
    first.stop()  # releases the lock
    assert second.is_runner()
    second.stop()


def test_consumers_run_in_the_runner(store, tmp_path):
    seen = []
    store.register_consumer("probe", lambda tx, events: seen.extend(e.res_id for e in events))
    worker = ConsumerWorker(store, tmp_path / "consumers.lock")
    worker.start()
    try:
        store.create({"resourceType": "Patient"}, res_id="c-1")
        for _ in range(50):
            if seen:
                break
            worker._stop.wait(0.1)
    finally:
        worker.stop()
    assert "c-1" in seen
