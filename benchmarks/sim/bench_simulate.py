"""Benchmark ``hutong simulate``: resources/s and peak RSS, next to the I/O floor (orjson writing the same
number of pre-built resources).

    .venv/bin/python benchmarks/sim/bench_simulate.py [--residents 10000 100000] [--jobs 1 0] [--out /tmp/hutong-bench]

Each generation runs in a fresh subprocess so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from hutong.sim import SimConfig, simulate
n, out, jobs = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
m = simulate(SimConfig(residents=n, years=1, seed=1), out, jobs=jobs or None)
dt = time.perf_counter() - t
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": dt, "total": m["total_resources"], "rss_mb": rss / 1024}))
"""

_FLOOR = r"""
import json, resource, sys, time, orjson
from pathlib import Path
src, total, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
# Pre-build a pool of real resources (parsed dicts) from the generated output, then time only dumps + write.
pool = []
for f in sorted(src.glob("*.ndjson")):
    with open(f, "rb") as fh:
        for i, line in enumerate(fh):
            if i >= 2000: break
            pool.append(orjson.loads(line))
t = time.perf_counter()
with open(out, "wb", buffering=1024 * 1024) as fh:
    k = len(pool)
    for i in range(total):
        fh.write(orjson.dumps(pool[i % k]) + b"\n")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "total": total, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--out", type=Path, default=Path("/tmp/hutong-bench-sim"))
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 0],
                    help="process counts to compare (0 = one per CPU, the default of hutong simulate)")
    args = ap.parse_args()
    rows = []
    for n in args.residents:
        for jobs in args.jobs:
            out = args.out / f"r{n}"
            shutil.rmtree(out, ignore_errors=True)
            gen = _run(_CHILD, str(n), str(out), str(jobs))
            size = sum(p.stat().st_size for p in out.rglob("*.ndjson"))
            floor = _run(_FLOOR, str(out), str(gen["total"]), str(args.out / "floor.ndjson"))
            rows.append((n, jobs or os.cpu_count(), gen, floor, size))
            (args.out / "floor.ndjson").unlink(missing_ok=True)
    print("| residents | processes | resources | output MB | simulate s | simulate res/s | peak RSS MB (largest process) "
          "| orjson floor s | floor res/s (1 process) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, jobs, g, f, size in rows:
        print(f"| {n:,} | {jobs} | {g['total']:,} | {size / 1e6:,.0f} | {g['seconds']:.1f} | "
              f"{g['total'] / g['seconds']:,.0f} | {g['rss_mb']:.0f} | {f['seconds']:.1f} | {f['total'] / f['seconds']:,.0f} |")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n(total benchmark wall time {time.perf_counter() - t0:.0f}s)")
