"""The MPI on the simulator's source Patients (``hutong.sim``): every desk variation rate multiplied by 1, 2 and
4, Patients → the matcher's raw fields exactly as the online linker reads them (``service.patient_raw``) → batch
dedup → cluster-pair precision / recall / F1 against ``truth/source_patients.csv``.

Run: ``.venv/bin/python benchmarks/mpi/bench_sim.py [RESIDENTS] [MULTIPLIERS…]`` (default 10000 1 2 4).
"""

from __future__ import annotations

import csv
import itertools
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import orjson

from hutong.mpi import batch, service
from hutong.sim.config import SimConfig, VariationRates


def score(residents: int, mult: float, seed: int = 1) -> None:
    base = asdict(VariationRates())
    rates = {k: min(1.0, v * mult) for k, v in base.items() if k != "newborn_placeholder"}
    cfg = SimConfig(residents=residents, years=1, seed=seed, lab_scale=0.0, visit_scale=0.3).with_variation(**rates)
    out = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    from hutong.sim.generate import simulate

    simulate(cfg, out)
    gen = time.perf_counter() - t
    truth: dict[str, str] = {}
    with open(out / "truth" / "source_patients.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            truth[row["source_patient_id"]] = row["person_id"]
    recs = []
    with open(out / "Patient.ndjson", "rb") as fh:
        for line in fh:
            p = orjson.loads(line)
            recs.append(service.patient_raw(p))
    t = time.perf_counter()
    r = batch.run([(recs, "sim")])
    d = time.perf_counter() - t
    ent = defaultdict(list)
    for rid in r.record_ids:
        ent[truth[rid]].append(rid)
    true = {tuple(sorted(p)) for m in ent.values() for p in itertools.combinations(m, 2)}
    cl = defaultdict(list)
    for rid, c in zip(r.record_ids, r.cluster_ids, strict=True):
        cl[c].append(rid)
    pred = {tuple(sorted(p)) for m in cl.values() for p in itertools.combinations(m, 2)}
    tp = len(pred & true)
    p_, r_ = tp / max(1, len(pred)), tp / max(1, len(true))
    f1 = 2 * p_ * r_ / max(1e-9, p_ + r_)
    print(f"sim residents={residents} variation×{mult:g}: {len(recs)} source Patients of {len(ent)} people, "
          f"{len(true)} true pairs; clusters P={p_:.4f} R={r_:.4f} F1={f1:.4f}; dedup {d:.1f}s (simulate {gen:.0f}s)",
          flush=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    mults = [float(x) for x in sys.argv[2:]] or [1.0, 2.0, 4.0]
    for m in mults:
        score(n, m)
