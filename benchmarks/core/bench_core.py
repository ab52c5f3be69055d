"""FHIR core benchmark: transaction ingest and read-by-id over HTTP, on SQLite and PostgreSQL,
side by side with the raw storage floor (the same JSON rows inserted with no processing).

    .venv/bin/python benchmarks/core/bench_core.py                      # all smart_2019 bundles
    .venv/bin/python benchmarks/core/bench_core.py --bundles 100 --backends sqlite

The server runs as a separate process (``hutong serve``, 2 workers); bundles are posted by 4 client
threads; reads come from a second process (wrk when installed, else benchmarks/loadgen.py). Server RSS is sampled throughout.
Prints a Markdown table and writes benchmarks/out/core.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import psutil
from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, insert, text

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "synthea_fhir_r4" / "smart_2019"
HIV = REPO.parent / "shared" / "data" / "synthea_fhir_r4" / "synthea_hiv_2021"
PG_URL = os.environ.get("HUTONG_BENCH_PG_URL", "postgresql://127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_bundles(limit: int | None, folder: Path = DATA) -> list[bytes]:
    files = sorted(folder.glob("*.json.gz"))
    # Directory bundles (hospital/practitioner information) first, as a loader would.
    files.sort(key=lambda p: (not p.name.startswith(("hospital", "practitioner")), p.name))
    if limit:
        files = files[:limit]
    return [gzip.decompress(f.read_bytes()) for f in files]


class Backend:
    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.workdir = workdir
        self.schema = None
        if name == "postgres":
            self.schema = "bench_" + uuid.uuid4().hex[:10]
            admin = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            sep = "&" if "?" in PG_URL else "?"
            self.url = f"{PG_URL}{sep}options=-csearch_path%3D{self.schema}"
        else:
            self.url = ""

    def sqlalchemy_url(self, sub: str) -> str:
        if self.name == "postgres":
            return "postgresql+psycopg://" + self.url.split("://", 1)[1]
        return f"sqlite:///{self.workdir / sub}"

    def drop(self):
        if self.schema:
            admin = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            admin.dispose()


def raw_floor(backend: Backend, bundles: list[bytes]) -> dict:
    """Insert every resource's JSON text into a bare table, one transaction per bundle."""
    engine = create_engine(backend.sqlalchemy_url("raw.db"))
    if backend.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
    md = MetaData()
    raw = Table("raw_resource", md, Column("res_type", String(64), primary_key=True),
                Column("res_id", String(64), primary_key=True), Column("content", Text))
    md.create_all(engine)
    rows_per_bundle = []
    for b in bundles:
        doc = orjson.loads(b)
        rows_per_bundle.append([
            {"res_type": e["resource"]["resourceType"], "res_id": str(uuid.uuid4()),
             "content": orjson.dumps(e["resource"]).decode()}
            for e in doc.get("entry", [])
        ])
    n = sum(len(r) for r in rows_per_bundle)
    t0 = time.perf_counter()
    for rows in rows_per_bundle:
        with engine.begin() as conn:
            conn.execute(insert(raw), rows)
    dt = time.perf_counter() - t0
    engine.dispose()
    return {"resources": n, "seconds": round(dt, 2), "rps": round(n / dt)}


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
                rss = sum(p.memory_info().rss for p in procs)
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)


#: Change-log consumers (patient linking, …) off by default: this measures the FHIR core; --consumers runs
#: them in the server as in production (see BENCHMARKS.md for what they cost).
CONSUMERS = False


def start_server(backend: Backend, port: int, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hutong.cli", "serve", "--port", str(port), "--data-dir",
           str(backend.workdir / "server"), "--empty", "--workers", str(workers)]
    if backend.url:
        cmd += ["--database-url", backend.url]
    env = dict(os.environ, HUTONG_WORKERS="true" if CONSUMERS else "false")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start: " + proc.stderr.read().decode()[-2000:])


def ingest(port: int, bundles: list[bytes], threads: int) -> dict:
    base = f"http://127.0.0.1:{port}/fhir"
    created = 0
    errors = []
    lock = threading.Lock()

    def post(body: bytes):
        nonlocal created
        with httpx.Client(timeout=300) as client:
            r = client.post(base, content=body, headers={"Content-Type": "application/fhir+json"})
        with lock:
            if r.status_code == 200:
                created += sum(1 for e in r.json()["entry"] if e["response"]["status"].startswith("201"))
            else:
                errors.append(r.text[:300])

    # Directory bundles first (others may reference them), then the patients in parallel.
    t0 = time.perf_counter()
    head = [b for b in bundles if b'"Patient"' not in b[:200000]][:2]
    for b in head:
        post(b)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, [b for b in bundles if b not in head]))
    dt = time.perf_counter() - t0
    return {"resources": created, "seconds": round(dt, 2), "rps": round(created / dt), "errors": errors[:3],
            "failed_bundles": len(errors)}


def ingest_ordered(port: int, bundles: list[bytes]) -> dict:
    """Post bundles one after another; count entries answered 200/201 and bundles refused."""
    base = f"http://127.0.0.1:{port}/fhir"
    ok = failed_entries = failed = 0
    t0 = time.perf_counter()
    with httpx.Client(timeout=600) as client:
        for body in bundles:
            r = client.post(base, content=body, headers={"Content-Type": "application/fhir+json"})
            if r.status_code != 200:
                failed += 1
                continue
            for e in r.json()["entry"]:
                if e["response"]["status"][:3] in ("200", "201"):
                    ok += 1
                else:
                    failed_entries += 1
    dt = time.perf_counter() - t0
    return {"bundles": len(bundles), "failed_bundles": failed, "entries_ok": ok,
            "failed_entries": failed_entries, "seconds": round(dt, 1)}


def load_hiv_set(name: str, tmp: Path) -> dict:
    """The second Synthea set into its own fresh database: batch directory bundles with ifNoneExist,
    then patient transactions with conditional references. Its own database because smart_2019
    bundles each POST their own copies of the same Synthea organizations and practitioners, which
    would make the conditional references ambiguous (412), as the specification requires."""
    workdir = tmp / "hiv"
    workdir.mkdir()
    backend = Backend(name, workdir)
    port = free_port()
    proc = start_server(backend, port, 1)
    try:
        result = ingest_ordered(port, load_bundles(None, HIV))
        print(f"[{name}] synthea_hiv_2021: {result}", flush=True)
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        backend.drop()


def read_load(backend: Backend, port: int, requests: int, connections: int, seconds: int = 20) -> dict:
    """Read by id from a second process: wrk (C, from Debian's packages) when installed, else
    benchmarks/loadgen.py. Ids are a seeded random sample of the whole database, not its first
    rows (time-ordered ids would otherwise make every read hit the same recently written pages)."""
    engine = create_engine(backend.sqlalchemy_url("server/hutong.db"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT res_type, res_id FROM resource WHERE deleted = false")).all()
    engine.dispose()
    rows = random.Random(20261130).sample(rows, min(5000, len(rows)))
    if shutil.which("wrk"):
        return wrk_load(port, [f"/fhir/{t}/{i}" for t, i in rows], connections, seconds, backend.workdir)
    url_file = backend.workdir / "urls.txt"
    url_file.write_text("\n".join(f"http://127.0.0.1:{port}/fhir/{t}/{i}" for t, i in rows))
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "loadgen.py"), "--url-file", str(url_file), "--connections",
         str(connections), "--requests", str(requests), "--seconds", "60"],
        capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["generator"] = "loadgen.py"
    return result


_WRK_SCRIPT = """
paths = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk_load(port: int, paths: list[str], connections: int, seconds: int, workdir: Path) -> dict:
    script = workdir / "read.lua"
    script.write_text(_WRK_SCRIPT % ",".join(f'"{p}"' for p in paths))
    # A short warm-up, then the measured run.
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d3s", "-s", str(script), f"http://127.0.0.1:{port}"],
                   capture_output=True, text=True, check=True)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    n, dur_us, p50, p95, p99, mx, errors = (int(x) for x in line.split()[1:])
    return {"requests": n, "seconds": round(dur_us / 1e6, 3), "rps": round(n / (dur_us / 1e6), 1),
            "p50_ms": round(p50 / 1000, 2), "p95_ms": round(p95 / 1000, 2), "p99_ms": round(p99 / 1000, 2),
            "max_ms": round(mx / 1000, 2), "errors": errors, "connections": connections, "generator": "wrk"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", type=int, default=0, help="number of bundles (0 = all 617)")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--threads", type=int, default=4, help="client threads posting bundles")
    ap.add_argument("--read-requests", type=int, default=20000)
    ap.add_argument("--only-hiv", action="store_true", help="only load the synthea_hiv_2021 set")
    ap.add_argument("--hiv", action=argparse.BooleanOptionalAction, default=True,
                    help="also load the synthea_hiv_2021 set (batch + conditional references)")
    ap.add_argument("--connections", type=int, default=8, help="read connections")
    ap.add_argument("--read-seconds", type=int, default=20)
    ap.add_argument("--consumers", action=argparse.BooleanOptionalAction, default=False,
                    help="run the change-log consumers (patient linking) in the server, as in production")
    ap.add_argument("--ingest-workers", type=int, default=2, help="server worker processes during ingest")
    ap.add_argument("--read-workers", type=int, default=2, help="server worker processes during reads")
    args = ap.parse_args()
    global CONSUMERS
    CONSUMERS = args.consumers
    if not DATA.exists():
        sys.exit(f"Synthea data not found at {DATA}")
    if args.only_hiv:
        for name in args.backends.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                load_hiv_set(name, Path(tmp))
        return
    bundles = load_bundles(args.bundles or None)
    print(f"{len(bundles)} bundles, {sum(len(b) for b in bundles) / 1e6:.0f} MB of JSON", flush=True)
    results = {}
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            backend = Backend(name, Path(tmp))
            try:
                floor = raw_floor(backend, bundles)
                print(f"[{name}] raw floor: {floor}", flush=True)
                port = free_port()
                proc = start_server(backend, port, args.ingest_workers)
                sampler = RssSampler(proc.pid)
                sampler.start()
                try:
                    ing = ingest(port, bundles, args.threads)
                    print(f"[{name}] ingest: {ing}", flush=True)
                finally:
                    sampler.stop.set()
                    sampler.join()
                    proc.terminate()
                    proc.wait(timeout=30)
                peak_mb = round(sampler.peak / 1e6)
                # Reads on a fresh server over the same database (as after a restart).
                proc = start_server(backend, port, args.read_workers)
                try:
                    reads = read_load(backend, port, args.read_requests, args.connections, args.read_seconds)
                    print(f"[{name}] reads: {reads}", flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                hiv = load_hiv_set(name, Path(tmp)) if args.hiv else None
                results[name] = {"raw_floor": floor, "ingest": ing, "server_peak_rss_mb": peak_mb,
                                 "hiv": hiv,
                                 "read": reads, "ingest_workers": args.ingest_workers,
                                 "read_workers": args.read_workers}
            finally:
                backend.drop()
    out = REPO / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "core.json").write_text(json.dumps(results, indent=2))
    print("\n| backend | raw floor (res/s) | HTTP transaction ingest (res/s) | server peak RSS | "
          "read by id (req/s) | read p50 / p99 (ms) |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['raw_floor']['rps']:,} | {r['ingest']['rps']:,} ({r['ingest']['resources']:,} res) | "
              f"{r['server_peak_rss_mb']} MB | {r['read']['rps']:,} | {r['read']['p50_ms']} / {r['read']['p99_ms']} |")


if __name__ == "__main__":
    main()
