"""Benchmark: Hutong's FHIR R4 structural validator against fhir.resources (R4B pydantic models).

Run from the repository root::

    .venv/bin/python benchmarks/validation/bench_validation.py [--resources 20000] [--repeat 3]

Loads Synthea R4 patient bundles from ``../shared/data/synthea_fhir_r4/smart_2019`` until ``--resources``
entry resources are collected, then times, single-threaded, on the same parsed dicts:

- ``orjson.loads`` of each resource's JSON (the cost of just parsing, for scale);
- ``hutong.fhir.validation.validate_resource``;
- ``fhir.resources.R4B`` ``<Model>.model_validate`` (benchmark-only dependency: ``pip install fhir.resources``).

Each timing is the best of ``--repeat`` passes. Prints a table by resource type and overall figures.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import os
import platform
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
DATA = REPO / ".." / "shared" / "data" / "synthea_fhir_r4" / "smart_2019"


def load_resources(limit: int) -> list[dict]:
    out: list[dict] = []
    for f in sorted(DATA.glob("*.json.gz")):
        bundle = orjson.loads(gzip.decompress(f.read_bytes()))
        out.extend(e["resource"] for e in bundle["entry"])
        if len(out) >= limit:
            break
    return out[:limit]


def best_of(repeat: int, fn, items) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-fhir-resources", action="store_true", help="skip the fhir.resources baseline")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"Synthea data not found at {DATA}")

    t0 = time.perf_counter()
    from hutong.fhir import validation

    validation.known_resource_types()  # loads the compiled definitions
    cold_ms = (time.perf_counter() - t0) * 1e3

    resources = load_resources(args.resources)
    raw = [orjson.dumps(r) for r in resources]
    by_type: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(resources):
        by_type[r["resourceType"]].append(i)

    # correctness first: how many resources each validator rejects
    ours_rejected = sum(1 for r in resources if validation.validate_resource(r))

    fr_models = None
    fr_rejected: collections.Counter = collections.Counter()
    if not args.no_fhir_resources:
        try:
            import fhir.resources
            from fhir.resources.R4B import get_fhir_model_class

            fr_version = fhir.resources.__version__
            fr_models = {t: get_fhir_model_class(t) for t in by_type}
        except ImportError:
            print("fhir.resources not installed: baseline skipped (pip install fhir.resources)")

    def fr_validate(r: dict):
        try:
            fr_models[r["resourceType"]].model_validate(r)
        except Exception:  # counted separately; a rejection still costs its time
            return False
        return True

    if fr_models:
        for r in resources:
            if not fr_validate(r):
                fr_rejected[r["resourceType"]] += 1

    rows = []
    totals = collections.Counter()
    for t, idx in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        items = [resources[i] for i in idx]
        raws = [raw[i] for i in idx]
        n = len(items)
        t_json = best_of(args.repeat, orjson.loads, raws)
        t_ours = best_of(args.repeat, validation.validate_resource, items)
        t_fr = best_of(args.repeat, fr_validate, items) if fr_models else None
        avg_kb = sum(len(b) for b in raws) / n / 1024
        totals["n"] += n
        totals["json"] += t_json
        totals["ours"] += t_ours
        if t_fr is not None:
            totals["fr"] += t_fr
        rows.append((t, n, avg_kb, t_json / n * 1e6, t_ours / n * 1e6, None if t_fr is None else t_fr / n * 1e6))

    # mixed stream in file order (what a transaction bundle or bulk import looks like)
    t_mixed = best_of(args.repeat, validation.validate_resource, resources)

    print(f"# FHIR validation benchmark ({totals['n']:,} Synthea R4 resources, best of {args.repeat})")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, single thread")
    print(f"hutong definitions cold load: {cold_ms:.0f} ms (once per process)")
    if fr_models:
        print(f"baseline: fhir.resources {fr_version} (fhir.resources.R4B models, model_validate)")
    print()
    head = "| type | n | avg KB | orjson.loads µs | hutong validate µs | fhir.resources R4B µs | speed-up |"
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t, n, kb, j, o, f in rows:
        fr = "-" if f is None else f"{f:,.1f}"
        su = "-" if f is None else f"{f / o:.0f}×"
        print(f"| {t} | {n:,} | {kb:.1f} | {j:.1f} | {o:.1f} | {fr} | {su} |")
    n = totals["n"]
    fr_all = f"{totals['fr'] / n * 1e6:,.1f}" if fr_models else "-"
    print(
        f"| **all** | {n:,} | | {totals['json'] / n * 1e6:.1f} | {totals['ours'] / n * 1e6:.1f} | {fr_all} | "
        + (f"{totals['fr'] / totals['ours']:.0f}× |" if fr_models else "- |")
    )
    print()
    print(f"hutong validate_resource, mixed stream: {n / t_mixed:,.0f} resources/s "
          f"({t_mixed / n * 1e6:.1f} µs/resource)")  # fmt: skip
    print(f"orjson.loads alone: {n / totals['json']:,.0f} resources/s")
    if fr_models:
        print(f"fhir.resources R4B model_validate: {n / totals['fr']:,.0f} resources/s")
    print(f"rejected: hutong {ours_rejected} of {n}"
          + (f"; fhir.resources {sum(fr_rejected.values())} ({dict(fr_rejected)})" if fr_models else ""))  # fmt: skip


if __name__ == "__main__":
    main()
