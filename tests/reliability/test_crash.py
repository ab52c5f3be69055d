"""kill -9 of every server process at random moments while transactions stream in: after each
restart every acknowledged transaction is complete, none is partial, and the change-log consumers
(the patient linker) have applied every event exactly once."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest
from sqlalchemy import text

from hutong.api.app import node_store
from tests.conftest import _free_port, register_credentials
from tests.reliability.conftest import kill, start

ENTRIES = 12  # resources per transaction: one Patient and its Observations
KILLS = 3
PER_ROUND = 60  # bundles sent at most between two kills (bounds the linker's catch-up in CI)


def _bundle(n: int) -> dict:
    patient = f"urn:uuid:00000000-0000-4000-8000-{n:06d}000000"
    entries = [{"fullUrl": patient, "request": {"method": "POST", "url": "Patient"}, "resource": {
        "resourceType": "Patient", "identifier": [{"system": f"urn:crash:{n}", "value": "0"}],
        "name": [{"family": random.choice("王李张刘陈杨"), "given": [f"测{n}"]}],
        "gender": random.choice(["male", "female"]), "birthDate": f"19{50 + n % 50}-0{1 + n % 9}-1{n % 9}"}}]
    for k in range(1, ENTRIES):
        entries.append({"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:06d}{k:06d}",
                        "request": {"method": "POST", "url": "Observation"}, "resource": {
                            "resourceType": "Observation", "status": "final", "subject": {"reference": patient},
                            "identifier": [{"system": f"urn:crash:{n}", "value": str(k)}],
                            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                            "valueQuantity": {"value": 5 + k / 10, "unit": "mmol/L"}}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_transaction_and_repeats_nothing(settings, tmp_path):
    rng = random.Random(20261201)
    acknowledged: set[int] = set()
    sent = 0
    lock = threading.Lock()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "ab")
    stop_clients = threading.Event()

    def client():
        nonlocal sent
        with httpx.Client(timeout=30) as c:
            while not stop_clients.is_set():
                with lock:
                    if sent >= PER_ROUND * (_round + 1):
                        break
                    n = sent
                    sent += 1
                try:
                    r = c.post(base + "/fhir", json=_bundle(n))
                except httpx.HTTPError:
                    time.sleep(0.05)  # the server is down: try the next one
                    continue
                if r.status_code == 200:
                    with lock:
                        acknowledged.add(n)

    setup = node_store(settings)  # security is on: the clients carry the bootstrap client's token
    try:
        register_credentials(base, setup)
    finally:
        setup.close()
    for _round in range(KILLS):
        proc = start(settings, port, 2, log, HUTONG_WORKERS="true")
        stop_clients.clear()
        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(1.5, 4.0))
        kill(proc)  # SIGKILL to the whole process group, mid-flight
        stop_clients.set()
        for t in threads:
            t.join()
    proc = start(settings, port, 2, log, HUTONG_WORKERS="true")  # and once more, to let consumers catch up
    try:
        store = node_store(settings)
        try:
            _wait_for_consumers(store)
            with store.read() as tx:
                rows = tx.conn.execute(text(
                    "SELECT content FROM resource WHERE res_type IN ('Patient', 'Observation') AND deleted = :f"),
                    {"f": False}).all()
                per_bundle: dict[int, int] = {}
                import orjson

                for (content,) in rows:
                    system = orjson.loads(content)["identifier"][0]["system"]
                    if system.startswith("urn:crash:"):
                        n = int(system.rsplit(":", 1)[1])
                        per_bundle[n] = per_bundle.get(n, 0) + 1
                partial = {n: c for n, c in per_bundle.items() if c != ENTRIES}
                assert not partial, f"partial transactions: {partial}"
                missing = acknowledged - set(per_bundle)
                assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
                assert len(acknowledged) > 10, "too little was acknowledged to test anything"
                # Exactly once: the linker counts every record it indexes in mpi_freq's total row,
                # so a repeated event would count a record twice.
                records = tx.conn.execute(text("SELECT count(*) FROM mpi_record")).scalar()
                total = tx.conn.execute(text("SELECT n FROM mpi_freq WHERE key = '*:*'")).scalar()
                patients = tx.conn.execute(text(
                    "SELECT count(*) FROM resource WHERE res_type = 'Patient' AND deleted = :f"), {"f": False}).scalar()
                assert records == patients == total, (records, patients, total)
        finally:
            store.close()
    finally:
        kill(proc)
        log.close()


def _wait_for_consumers(store, seconds: float = 300) -> None:
    """Until every consumer's position has reached the end of the change log."""
    deadline = time.time() + seconds
    positions: dict = {}
    last = 0
    while time.time() < deadline:
        last = store.outbox.last_seq()
        with store.read() as tx:
            positions = dict(tx.conn.execute(text("SELECT name, seq FROM consumer_position")).all())
        if positions and min(positions.values()) >= last:
            return
        time.sleep(0.5)
    raise AssertionError(f"the change-log consumers did not catch up: at {positions}, the log ends at {last}")
