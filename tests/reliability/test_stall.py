"""A writer stuck holding the write lock from outside: other writes get 503 with Retry-After within the
configured time (not a 500, not a wait without end), reads by id keep answering at once, and writes
succeed again when the lock is released."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _pg_sqlalchemy_url
from tests.reliability.conftest import server_process

PATIENT = {"resourceType": "Patient", "name": [{"family": "孙"}]}


class _OutsideLock:
    """The database's write lock held by another program (not through the node)."""

    def __init__(self, settings):
        self.settings = settings

    def __enter__(self):
        if self.settings.is_postgres:
            # The lock every writer takes before writing its change events.
            self.engine = create_engine(_pg_sqlalchemy_url(self.settings.database_url))
            self.conn = self.engine.connect()
            self.conn.execute(text("SELECT pg_advisory_lock(72616471)"))
        else:
            self.fd = os.open(Path(self.settings.data_dir) / "hutong.db.writelock", os.O_RDWR | os.O_CREAT)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.settings.is_postgres:
            self.conn.execute(text("SELECT pg_advisory_unlock(72616471)"))
            self.conn.close()
            self.engine.dispose()
        else:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


@pytest.mark.slow
def test_a_stuck_writer_gives_503_and_reads_go_on(settings):
    with server_process(settings, workers=1, HUTONG_DB_LOCK_TIMEOUT_S=1.5) as (base, _proc):
        with httpx.Client(base_url=base, timeout=30) as c:
            pid = c.post("/fhir/Patient", json=PATIENT).json()["id"]
            with _OutsideLock(settings):
                results: list = []

                def write():
                    t0 = time.monotonic()
                    r = c.post("/fhir/Patient", json=PATIENT)
                    results.append((r, time.monotonic() - t0))

                writers = [threading.Thread(target=write) for _ in range(12)]
                for t in writers:
                    t.start()
                time.sleep(0.3)
                # Reads are not stuck behind the writers (their own threads, no write lock).
                for _ in range(20):
                    r = c.get(f"/fhir/Patient/{pid}")
                    assert r.status_code == 200
                for t in writers:
                    t.join()
                for r, _took in results:
                    assert r.status_code == 503, r.text
                    assert int(r.headers["retry-after"]) >= 1
                    assert r.json()["issue"][0]["code"] == "transient"
                assert max(took for _r, took in results) < 20  # bounded by the lock timeout, not by the stall
            assert c.post("/fhir/Patient", json=PATIENT).status_code == 201  # released: writes go on
