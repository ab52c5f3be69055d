"""Bulk Data $export jobs live in the store: any server process answers for them, a job whose runner
stopped is resumed by another, and old jobs expire with their files."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx

from hutong.api.app import create_app
from hutong.bulk import jobs
from tests.conftest import LiveServer


def _seed(store):
    for _ in range(3):
        pid = store.create({"resourceType": "Patient", "name": [{"family": "钱"}]}).stored.res_id
        store.create({"resourceType": "Observation", "status": "final", "code": {"text": "t"},
                      "subject": {"reference": f"Patient/{pid}"}})


def _wait(url: str, seconds: float = 30) -> httpx.Response:
    deadline = time.time() + seconds
    while time.time() < deadline:
        r = httpx.get(url)
        if r.status_code != 202:
            return r
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def test_a_job_started_on_one_server_is_answered_by_another(store):
    """Two server processes on one database stand for --workers 2: kick-off on A, poll and download on B."""
    _seed(store)
    with LiveServer(create_app(store=store)) as a, LiveServer(create_app(store=store)) as b:
        r = httpx.get(a.url + "/fhir/$export", headers={"Prefer": "respond-async"})
        assert r.status_code == 202
        job_url = r.headers["content-location"]
        on_b = job_url.replace(a.url, b.url)
        manifest = _wait(on_b).json()
        counts = {o["type"]: o["count"] for o in manifest["output"]}
        assert counts == {"Patient": 3, "Observation": 3}
        url = next(o["url"] for o in manifest["output"] if o["type"] == "Patient").replace(a.url, b.url)
        assert len(httpx.get(url).text.strip().splitlines()) == 3
        assert httpx.delete(on_b).status_code == 202
        assert httpx.get(job_url).status_code == 404  # A sees B's cancellation


def test_a_job_whose_runner_died_is_resumed(store):
    """A running job with a stale heartbeat (its process was killed) is claimed and finished by another runner."""
    _seed(store)
    job_id = jobs.kickoff(store, level="system", group_id=None, types=["Patient", "Observation"], since_us=None,
                          request_url="http://x/fhir/$export", base_url="http://x/fhir", owner="test")
    dead = jobs.JobRunner(store)
    assert dead._claim() is not None  # claimed, then the process "dies" before writing anything
    with store.write() as tx:
        tx.conn.execute(jobs.bulk_job.update().where(jobs.bulk_job.c.id == job_id)
                        .values(heartbeat_us=0))
    survivor = jobs.JobRunner(store)
    assert survivor.run_one()
    state = jobs.status(store, job_id)
    assert state.status == "done" and {o["type"] for o in state.manifest["output"]} == {"Patient", "Observation"}
    assert not survivor.run_one()  # nothing left to do


def test_old_jobs_expire_with_their_files(store):
    _seed(store)
    job_id = jobs.kickoff(store, level="system", group_id=None, types=["Patient"], since_us=None,
                          request_url="http://x/fhir/$export", base_url="http://x/fhir", owner="test")
    runner = jobs.JobRunner(store)
    runner.run_one()
    folder = Path(store.settings.data_dir) / "exports" / job_id
    assert (folder / "Patient.ndjson").exists()
    store.settings = replace(store.settings, export_retention_hours=0)
    time.sleep(0.01)
    assert runner.expire() == 1
    assert not folder.exists()
    r = None
    try:
        jobs.status(store, job_id)
    except Exception as exc:  # noqa: BLE001
        r = exc
    assert getattr(r, "status", None) == 404
