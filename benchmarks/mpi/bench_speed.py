"""Speed: batch dedup records/s on synthetic Chinese records, and online ``$match`` / link latency against an
index in the store.

Run: ``.venv/bin/python benchmarks/mpi/bench_speed.py [--batch PEOPLE] [--online PEOPLE] [--queries N]
[--postgres URL]`` (PEOPLE × ~2.04 = records; 0 skips that part). The online index is bulk-loaded straight into
the MPI tables (``mpi_record``, ``mpi_block``, ``mpi_freq``) — what the linker would have written — because
posting a million Patients through the API is not what is measured; the timed queries then run the real match
path (``service.score_against_index``: hashed blocking keys → candidates → whole-index term frequencies →
scoring). The linking path (``service.link_patient``) is not timed here: its Person write checks that every
linked Patient exists, and the bulk-loaded index has no Patient resources behind it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import insert

from hutong.api.app import node_store
from hutong.config import load_settings
from hutong.mpi import batch, service, synth
from hutong.mpi.features import FEATURES, normalize_many, normalize_record
from hutong.mpi.tables import mpi_block, mpi_freq, mpi_record


def batch_speed(n_people: int) -> None:
    recs, _ = synth.generate(n_people, seed=3)
    t = time.perf_counter()
    r = batch.run([(recs, "s")])
    d = time.perf_counter() - t
    print(f"batch dedup: {len(recs)} records in {d:.1f}s = {len(recs) / d:.0f} records/s; candidate pairs "
          f"{r.n_candidates}; stages { {k: round(v, 1) for k, v in r.timings.items()} }", flush=True)


def _load_index(st, recs: list[dict]) -> None:
    table = normalize_many(recs)
    cols = [table.col(k) for k in FEATURES]
    freq: Counter = Counter()
    chunk = 50_000
    blocks: list[tuple[str, str]] = []
    with st.write() as tx:
        if tx.conn.dialect.name == "sqlite":
            tx.conn.exec_driver_sql("PRAGMA cache_size = -2000000")  # 2 GB page cache for the bulk load
        for lo in range(0, len(recs), chunk):
            rows = []
            for k in range(lo, min(len(recs), lo + chunk)):
                f = {name: col[k] for name, col in zip(FEATURES, cols, strict=True)}
                pid = f"p{k:07d}"
                rows.append({"patient_id": pid, "tenant": "", "person_id": f"x{k}", "features": orjson.dumps(f).decode(),
                             "grade": "certain", "score": 1.0, "method": "auto", "updated_us": 0})
                blocks += [(h, pid) for h in service._hash_keys(f)]
                freq.update(service.freq_keys(f))
            tx.conn.execute(insert(mpi_record), rows)
        blocks.sort()  # insert in key order: B-tree appends instead of random page writes
        for lo in range(0, len(blocks), chunk):
            tx.conn.execute(insert(mpi_block), [{"key": h, "patient_id": p} for h, p in blocks[lo:lo + chunk]])
        items = [{"key": k, "n": n} for k, n in sorted(freq.items())]
        for lo in range(0, len(items), chunk):
            tx.conn.execute(insert(mpi_freq), items[lo:lo + chunk])


def _pct(lat: list[float]) -> str:
    a = np.array(lat)
    return f"p50 {np.percentile(a, 50):.1f} ms, p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms"


def online_speed(n_people: int, queries: int, url: str | None) -> None:
    recs, _ = synth.generate(n_people, seed=4)
    settings = load_settings(data_dir=Path(tempfile.mkdtemp()), workers=False, **({"database_url": url} if url else {}))
    st = node_store(settings)
    t = time.perf_counter()
    _load_index(st, recs)
    backend = "PostgreSQL" if url else "SQLite"
    print(f"indexed {len(recs)} records ({backend}) in {time.perf_counter() - t:.1f}s", flush=True)
    # queries: new registrations of indexed people (fresh desk errors) and of people not in the index
    probe, _ = synth.generate(n_people, seed=4, error_rate=1.5)
    rng = np.random.default_rng(5)
    picks = [probe[k] for k in rng.choice(len(probe), queries, replace=False)]
    lat, n_cand = [], []
    with st.read() as tx:
        for r in picks:
            t0 = time.perf_counter()
            f = normalize_record(r)
            got = service.score_against_index(tx.conn, f)
            lat.append((time.perf_counter() - t0) * 1000)
            n_cand.append(len(got))
    print(f"$match (normalise + candidates + whole-index TF + scoring) against {len(recs)} indexed: {_pct(lat)} "
          f"over {queries} queries; candidates per query mean {np.mean(n_cand):.0f}, max {max(n_cand)}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=50000)
    ap.add_argument("--online", type=int, default=50000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--postgres", default=None, help="postgresql+psycopg://… (default: SQLite in a temp dir)")
    a = ap.parse_args()
    if a.batch:
        batch_speed(a.batch)
    if a.online:
        online_speed(a.online, a.queries, a.postgres)
