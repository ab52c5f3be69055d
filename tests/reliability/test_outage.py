"""PostgreSQL stopped under traffic: requests get 503 with Retry-After (never 500), the log does not
flood, and the node recovers by itself when the database is back.

The database is a private cluster this test creates and runs as the ``postgres`` user (PostgreSQL
refuses to run as root, and CI runs as root), on a free port, so stopping it disturbs nobody."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hutong.config import load_settings
from tests.conftest import _free_port
from tests.reliability.conftest import server_process

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PATIENT = {"resourceType": "Patient", "name": [{"family": "周"}]}


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def private_pg(tmp_path):
    if not BIN or os.geteuid() != 0 or shutil.which("su") is None:
        pytest.skip("needs PostgreSQL server binaries and root (to run them as the postgres user)")
    bindir = BIN[-1]
    pgdata = Path("/tmp") / f"hutong-outage-{os.getpid()}-{tmp_path.name}"
    pgdata.mkdir(mode=0o700)
    shutil.chown(pgdata, "postgres", "postgres")
    port = _free_port()
    init = _as_postgres(f"{bindir}/initdb", "-D", str(pgdata), "-A", "trust", "-U", "postgres", "--no-sync")
    assert init.returncode == 0, init.stderr

    def ctl(action: str) -> None:
        opts = f"'-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off'"
        r = _as_postgres(f"{bindir}/pg_ctl", "-D", str(pgdata), "-o", opts, "-w", "-m", "fast", "-l",
                         str(pgdata / "log"), action)
        assert r.returncode == 0, r.stdout + r.stderr

    ctl("start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", ctl
    finally:
        _as_postgres(f"{bindir}/pg_ctl", "-D", str(pgdata), "-m", "immediate", "stop")
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.mark.slow
def test_database_outage_is_503_and_the_node_recovers(private_pg, tmp_path):
    url, ctl = private_pg
    settings = load_settings(data_dir=tmp_path / "data", database_url=url, workers=False)
    with server_process(settings, workers=1) as (base, _proc):
        with httpx.Client(base_url=base, timeout=30) as c:
            pid = c.post("/fhir/Patient", json=PATIENT).json()["id"]
            assert c.get(f"/fhir/Patient/{pid}").status_code == 200
            ctl("stop")
            statuses = set()
            deadline = time.time() + 6
            while time.time() < deadline:
                for r in (c.get(f"/fhir/Patient/{pid}"), c.post("/fhir/Patient", json=PATIENT),
                          c.get("/fhir/Patient", params={"name": "周"})):
                    statuses.add(r.status_code)
                    if r.status_code == 503:
                        assert r.headers.get("retry-after") and r.json()["resourceType"] == "OperationOutcome"
            assert statuses == {503}, statuses
            ctl("start")
            # Every pooled connection died with the server: after recovery no request may fail.
            for _ in range(30):
                assert c.get(f"/fhir/Patient/{pid}").status_code == 200
            assert c.post("/fhir/Patient", json=PATIENT).status_code == 201
    log = next((tmp_path / "data").parent.glob("server-*.log")).read_text(errors="replace")
    assert len(log.splitlines()) < 200, f"{len(log.splitlines())} log lines for a few seconds of outage"
