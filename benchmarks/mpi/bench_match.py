"""``$match`` scoring latency and database round trips against a PostgreSQL index of about one million records,
side by side in one run with the previous version's path and with the storage floor.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/mpi/bench_match.py [--people 500000] [--queries 400]
[--rounds 3] [--keep] [--schema NAME]`` (people × ~2.04 = records). The index is bulk-loaded with COPY into the
MPI tables of a fresh PostgreSQL schema (``mpi_record``, ``mpi_block``, ``mpi_freq`` — what the linker writes for
each Patient; indexes built after the load), because posting a million Patients through the API is not what is
measured. ``--keep`` leaves the schema for a rerun with ``--schema NAME`` (no reload).

Timed per query, in interleaved order:
- **current**: ``service.score_against_index`` (normalise → hashed blocking keys → candidates with their
  feature rows → whole-index term frequencies, index size and model version → scoring);
- **previous**: the same path as it was before this change (``prev_match.py``, five round trips);
- **floor**: one primary-key lookup of one blocking key in ``mpi_block`` (the least any indexed lookup costs).

Round trips are counted with a SQLAlchemy ``before_cursor_execute`` listener. What is *not* timed: reading the
matched Patient resources for the answer Bundle (``service.match`` reads each returned Patient: one round trip
per returned entry, ``count`` ≤ 10) — a bulk-loaded index has no Patient resources behind it.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import time
import uuid
from collections import Counter

import numpy as np
import orjson
import prev_match  # benchmarks/mpi is on sys.path when run as a script
from sqlalchemy import create_engine, event, select, text

from hutong.api.app import node_store
from hutong.config import load_settings
from hutong.mpi import service, synth
from hutong.mpi.features import FEATURES, normalize_many, normalize_record
from hutong.mpi.tables import mpi_block

PG = "postgresql+psycopg://127.0.0.1:5432/test"


def _copy_text(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _rows(args: tuple[int, list[list[str]]]) -> tuple[str, str, Counter]:
    """COPY text for one chunk of normalised records (mpi_record and mpi_block lines) and its freq counts."""
    lo, cols = args
    rec, blk = io.StringIO(), io.StringIO()
    freq: Counter = Counter()
    for k, values in enumerate(zip(*cols, strict=True)):
        f = dict(zip(FEATURES, values, strict=True))
        pid = f"p{lo + k:07d}"
        rec.write(f"{pid}\t\tx{lo + k}\t{_copy_text(orjson.dumps(f).decode())}\tcertain\t1.0\tauto\t0\n")
        for h in service._hash_keys(f):
            blk.write(f"{h}\t{pid}\n")
        freq.update(service.freq_keys(f))
    return rec.getvalue(), blk.getvalue(), freq


def load_index(engine, recs: list[dict]) -> None:
    t0 = time.perf_counter()
    table = normalize_many(recs)
    cols = [table.col(k) for k in FEATURES]
    t1 = time.perf_counter()
    step = 25_000
    parts = [(lo, [c[lo:lo + step] for c in cols]) for lo in range(0, len(recs), step)]
    with mp.get_context("fork").Pool(2) as pool:
        out = pool.map(_rows, parts)
    freq: Counter = Counter()
    for _r, _b, f in out:
        freq.update(f)
    t2 = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("ALTER TABLE mpi_block DROP CONSTRAINT mpi_block_pkey")
        cur.execute("DROP INDEX IF EXISTS ix_mpi_block_patient")
        cur.execute("DROP INDEX IF EXISTS ix_mpi_record_person")
        with cur.copy("COPY mpi_record (patient_id, tenant, person_id, features, grade, score, method, updated_us) "
                      "FROM STDIN") as cp:
            for r, _b, _f in out:
                cp.write(r)
        with cur.copy("COPY mpi_block (key, patient_id) FROM STDIN") as cp:
            for _r, b, _f in out:
                cp.write(b)
        with cur.copy("COPY mpi_freq (key, n) FROM STDIN") as cp:
            cp.write("".join(f"{k}\t{n}\n" for k, n in freq.items()))
        t3 = time.perf_counter()
        cur.execute("SET maintenance_work_mem = '1GB'")
        cur.execute("ALTER TABLE mpi_block ADD PRIMARY KEY (key, patient_id)")
        cur.execute("CREATE INDEX ix_mpi_block_patient ON mpi_block (patient_id)")
        cur.execute("CREATE INDEX ix_mpi_record_person ON mpi_record (person_id)")
        cur.execute("ANALYZE mpi_record")
        cur.execute("ANALYZE mpi_block")
        cur.execute("ANALYZE mpi_freq")
        raw.commit()
        t4 = time.perf_counter()
    finally:
        raw.close()
    n_blocks = sum(b.count("\n") for _r, b, _f in out)
    print(f"indexed {len(recs)} records: normalise {t1 - t0:.0f}s, keys + COPY text {t2 - t1:.0f}s, "
          f"COPY {t3 - t2:.0f}s, indexes + ANALYZE {t4 - t3:.0f}s; {n_blocks} blocking-key rows, "
          f"{len(freq)} frequency rows", flush=True)


def _pct(lat: list[float]) -> str:
    a = np.array(lat)
    return f"p50 {np.percentile(a, 50):6.2f}  p95 {np.percentile(a, 95):6.2f}  p99 {np.percentile(a, 99):6.2f}  " \
           f"max {a.max():7.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=500_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--schema", default="", help="reuse an index loaded by an earlier --keep run")
    ap.add_argument("--keep", action="store_true", help="do not drop the schema at the end")
    a = ap.parse_args()
    admin = create_engine(PG)
    schema = a.schema or "mpi_bench_" + uuid.uuid4().hex[:8]
    url = f"{PG}?options=-csearch_path%3D{schema}"
    try:
        if not a.schema:
            with admin.begin() as c:
                c.execute(text(f'CREATE SCHEMA "{schema}"'))
        st = node_store(load_settings(database_url=url, workers=False))
        engine = st.engine
        recs, _ = synth.generate(a.people, seed=4)
        if not a.schema:
            load_index(engine, recs)
        with engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM mpi_record")).scalar()
            nb = c.execute(text("SELECT count(*) FROM mpi_block")).scalar()
        print(f"schema {schema}: {n} indexed records, {nb} blocking-key rows (PostgreSQL)", flush=True)
        # new registrations of indexed people with fresh desk errors
        probe, _ = synth.generate(a.people, seed=4, error_rate=1.5)
        rng = np.random.default_rng(5)
        picks = [probe[k] for k in rng.choice(len(probe), a.queries, replace=False)]
        trips = {"n": 0}

        def count(*_a, **_k):
            trips["n"] += 1

        event.listen(engine, "before_cursor_execute", count)
        paths = {
            "current": lambda conn, r: service.score_against_index(conn, normalize_record(r)),
            "previous": lambda conn, r: prev_match.score_against_index(conn, normalize_record(r)),
            "floor": lambda conn, r: conn.execute(
                select(mpi_block.c.patient_id).where(mpi_block.c.key == service._hash_keys(normalize_record(r))[0])
            ).all(),
        }
        lat = {k: [] for k in paths}
        rt = {k: [] for k in paths}
        agree = 0
        print(f"load average before timing: {os.getloadavg()}", flush=True)
        with st.read() as tx:
            for fn in paths.values():  # warm-up: model load, statement compilation, page cache
                for r in picks[:20]:
                    fn(tx.conn, r)
            for rnd in range(a.rounds):
                order = list(paths) if rnd % 2 == 0 else list(reversed(paths))
                for r in picks:
                    got = {}
                    for name in order:
                        trips["n"] = 0
                        t0 = time.perf_counter()
                        got[name] = paths[name](tx.conn, r)
                        lat[name].append((time.perf_counter() - t0) * 1000)
                        rt[name].append(trips["n"])
                    agree += [(c["patient_id"], c["score"]) for c in got["current"]] == \
                        [(c["patient_id"], c["score"]) for c in got["previous"]]
        print(f"load average after timing: {os.getloadavg()}", flush=True)
        total = a.queries * a.rounds
        for name in paths:
            print(f"{name:9s} {_pct(lat[name])}  round trips per query mean {np.mean(rt[name]):.2f} "
                  f"max {max(rt[name])}  ({total} queries)", flush=True)
        print(f"current and previous gave identical candidates and scores on {agree} of {total} queries", flush=True)
    finally:
        if not a.keep:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        else:
            print(f"kept schema {schema} (drop it with DROP SCHEMA \"{schema}\" CASCADE)")
        admin.dispose()


if __name__ == "__main__":
    main()
