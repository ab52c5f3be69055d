"""Write-time extraction cost: µs and index rows per resource over Synthea bundles (in-process, no database).

    .venv/bin/python benchmarks/search/bench_extract.py [--bundles 60]

Baseline in the same run: ``orjson.loads`` of the same resources' JSON (the parse every write pays anyway),
and fhirpathpy evaluating the same parameters' expressions on a sample (what an interpreter-based extractor
would cost).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data" / "synthea_fhir_r4" / "smart_2019"
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundles", type=int, default=60)
    args = ap.parse_args()
    if not DATA.exists():
        print("../shared/data is not present")
        return
    from hutong.search.extract import extract
    from hutong.search.params import registry

    reg = registry()
    resources = []
    for f in sorted(DATA.glob("*.json.gz"))[: args.bundles]:
        doc = orjson.loads(gzip.decompress(f.read_bytes()))
        resources += [e["resource"] for e in doc["entry"]]
    texts = [orjson.dumps(r) for r in resources]
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        rows = 0
        for r in resources:
            rows += len(extract(reg, r["resourceType"], r))
        runs.append((time.perf_counter() - t0) / len(resources) * 1e6)
    parse = []
    for _ in range(5):
        t0 = time.perf_counter()
        for t in texts:
            orjson.loads(t)
        parse.append((time.perf_counter() - t0) / len(texts) * 1e6)
    per_type = Counter()
    count = Counter()
    for r in resources:
        per_type[r["resourceType"]] += len(extract(reg, r["resourceType"], r))
        count[r["resourceType"]] += 1
    # interpreter baseline on a sample
    import fhirpathpy

    sample = resources[:: max(1, len(resources) // 300)]
    compiled = {}
    t0 = time.perf_counter()
    n = 0
    for r in sample:
        for p in reg.by_type.get(r["resourceType"], {}).values():
            if p.expr:
                fn = compiled.get(p.expr)
                if fn is None:
                    fn = compiled[p.expr] = fhirpathpy.compile(p.expr)
                try:
                    fn(r)
                except Exception:  # noqa: BLE001 - count the attempt either way
                    pass
                n += 1
    fp = (time.perf_counter() - t0) / len(sample) * 1e6
    print(f"resources: {len(resources)} from {args.bundles} bundles; index rows/resource: {rows / len(resources):.1f}")
    print(f"compiled extractor: median {statistics.median(runs):.1f} µs/resource (5 runs: {', '.join(f'{x:.1f}' for x in runs)})")
    print(f"baseline orjson.loads of the same resources: {statistics.median(parse):.1f} µs/resource")
    print(f"baseline fhirpathpy (compiled expressions, {len(sample)} resources): {fp:.0f} µs/resource")
    for t, c in count.most_common():
        print(f"  {t:24s} {c:6d} resources  {per_type[t] / c:5.1f} rows each")


if __name__ == "__main__":
    main()
