"""Soak: a mixed load for a long time, to see errors, latency and memory over time (a leak is a slope).

    .venv/bin/python benchmarks/reliability/bench_soak.py --minutes 10                 # SQLite
    .venv/bin/python benchmarks/reliability/bench_soak.py --minutes 10 --backend postgres

A server with 2 workers and the change-log consumers on, loaded with Synthea bundles and 500 health
cards; a second process sends, at fixed rates, reads by id, searches, creates, small transactions
and card verifications (closed loop per kind, paced). Reported: per kind the rate, p50/p99 and the
answers by status (5xx must be 0), and the server's memory (all its processes) every 10 s with the
slope of a least-squares line in MB per minute.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "http"))

import bench_versions as B  # noqa: E402

#: Requests per second per kind (paced), and the threads sending each.
MIX = {"read": (150, 4), "search": (20, 2), "create": (20, 2), "transaction": (2, 1), "verify": (80, 3)}


def _rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _load(port: int, data: Path, seconds: float, out) -> None:
    import httpx

    reads = (data / "reads.txt").read_text().split()
    searches = (data / "searches.txt").read_text().split()
    verifies = (data / "verify.txt").read_text().splitlines()
    results: dict[str, list] = {k: [] for k in MIX}
    statuses: dict[str, dict] = {k: {} for k in MIX}
    lock = threading.Lock()
    counter = iter(range(10**9))
    end = time.monotonic() + seconds

    def one(kind: str, c: httpx.Client, rng: random.Random):
        if kind == "read":
            return c.get(rng.choice(reads))
        if kind == "search":
            return c.get(rng.choice(searches))
        if kind == "create":
            return c.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "郑"}],
                                                 "gender": rng.choice(["male", "female"])})
        if kind == "transaction":
            return c.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "soak"},
                              "valueQuantity": {"value": rng.random()}},
                 "request": {"method": "POST", "url": "Observation"}} for _ in range(20)]})
        with lock:
            i = next(counter)
        return c.post("/api/card/verify", content=verifies[i % len(verifies)],
                      headers={"Content-Type": "application/json"})

    def worker(kind: str, rate: float):
        rng = random.Random()
        interval = 1.0 / rate
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            nxt = time.monotonic()
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    code = one(kind, c, rng).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                dt = time.perf_counter() - t0
                with lock:
                    results[kind].append(dt)
                    statuses[kind][code] = statuses[kind].get(code, 0) + 1
                nxt += interval
                time.sleep(max(0.0, nxt - time.monotonic()))

    threads = [threading.Thread(target=worker, args=(k, r / n)) for k, (r, n) in MIX.items() for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {}
    for kind, lat in results.items():
        lat.sort()
        summary[kind] = {"n": len(lat), "rate": round(len(lat) / seconds, 1),
                         "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
                         "p99_ms": round(1000 * lat[int(len(lat) * 0.99) - 1], 1) if lat else None,
                         "statuses": statuses[kind]}
    out.put(summary)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--bundles", type=int, default=40)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hutong-soak-"))
    data = work / "data"
    db_url, schema = ("", None)
    if args.backend == "postgres":
        db_url, schema = B._pg_schema_url()
    try:
        bundles = sorted(B.SYNTHEA.glob("*.json*"))[: args.bundles]
        seconds = args.minutes * 60
        B.prepare(REPO, data, db_url, bundles, int(seconds * MIX["verify"][0] * 1.1) + 1000)
        env = {**B._env(REPO, data, db_url), "HUTONG_WORKERS": "true",
               "HUTONG_CARD_QR_TTL_SECONDS": str(int(seconds) + 600)}
        proc, port = B.serve(REPO, env)
        try:
            q = mp.get_context("spawn").Queue()
            loader = mp.get_context("spawn").Process(target=_load, args=(port, data, seconds, q))
            loader.start()
            memory = []
            t0 = time.monotonic()
            while loader.is_alive():
                memory.append((round(time.monotonic() - t0), round(_rss_mb(proc.pid), 1)))
                loader.join(timeout=10)
            summary = q.get()
        finally:
            B.stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if schema:
            B._drop_schema(schema)
    xs = [m[0] / 60 for m in memory]
    ys = [m[1] for m in memory]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    server_errors = sum(v for s in summary.values() for k, v in s["statuses"].items()
                        if isinstance(k, int) and k >= 500 or not isinstance(k, int))
    print(json.dumps({"backend": args.backend, "minutes": args.minutes, "load": summary,
                      "server_errors": server_errors, "memory_mb": memory,
                      "memory_slope_mb_per_min": round(slope, 2)}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
