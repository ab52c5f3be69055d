"""Speed: batch dedup records/s on synthetic Chinese records, and online match latency against an index in the
store (SQLite). Run: ``.venv/bin/python benchmarks/mpi/bench_speed.py [BATCH_PEOPLE] [ONLINE_PEOPLE]``."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hutong.config import load_settings
from hutong.mpi import batch, service, synth
from hutong.mpi.features import normalize_record
from hutong.store import Store


def batch_speed(n_people: int) -> None:
    recs, _ = synth.generate(n_people, seed=3)
    t = time.perf_counter()
    r = batch.run([(recs, "s")])
    d = time.perf_counter() - t
    print(f"batch dedup: {len(recs)} records in {d:.1f}s = {len(recs) / d:.0f} records/s; "
          f"stages { {k: round(v, 1) for k, v in r.timings.items()} }")


def online_speed(n_people: int, queries: int = 300) -> None:
    recs, _ = synth.generate(n_people, seed=4)
    st = Store.open(load_settings(data_dir=Path(tempfile.mkdtemp()), workers=False))
    t = time.perf_counter()
    with st.write() as tx:  # bulk-index features directly (loading 1M Patients through REST is not measured here)
        for k, r in enumerate(recs):
            f = normalize_record(r)
            keys = service._hash_keys(f)
            from sqlalchemy import insert

            from hutong.mpi.tables import mpi_block, mpi_record
            tx.conn.execute(insert(mpi_record).values(patient_id=f"p{k}", tenant="", person_id=f"x{k}",
                            features=__import__("orjson").dumps(f).decode(), grade="certain", score=1.0,
                            method="auto", updated_us=0))
            if keys:
                tx.conn.execute(insert(mpi_block), [{"key": h, "patient_id": f"p{k}"} for h in keys])
    print(f"indexed {len(recs)} records in {time.perf_counter() - t:.1f}s")
    lat = []
    with st.read() as tx:
        for r in recs[:queries]:
            f = normalize_record(r)
            t0 = time.perf_counter()
            service.score_against_index(tx.conn, f)
            lat.append((time.perf_counter() - t0) * 1000)
    a = np.array(lat)
    print(f"online match against {len(recs)} indexed (SQLite): p50 {np.percentile(a, 50):.1f} ms, "
          f"p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms over {queries} queries")


if __name__ == "__main__":
    batch_speed(int(sys.argv[1]) if len(sys.argv) > 1 else 50000)
    online_speed(int(sys.argv[2]) if len(sys.argv) > 2 else 50000)
