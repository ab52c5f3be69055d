"""Fit the default online model (shipped as hutong/mpi/data/default_model.json) by EM on simulated registrations:
the simulator's household-rich error model on the *train* seeds of ``bench_household.py`` (never its test seeds)
plus ``hutong.mpi.synth`` records (name-variant heavy). A deployment refits on its own index with
``hutong.mpi.service.retrain(store)`` / ``POST /api/mpi/model/train``.

Run: ``.venv/bin/python benchmarks/mpi/train_default.py``"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_household import TRAIN_SEEDS, make  # noqa: E402

from hutong.mpi import batch, synth  # noqa: E402

recs: list[dict] = []
for seed in TRAIN_SEEDS:
    got, *_ = make(8000, seed, "household")
    recs += [{**r, "record_id": f"s{seed}-{r['record_id']}"} for r in got]
more, _ = synth.generate(8000, error_rate=1.0, seed=11)
recs += more
res = batch.run([(recs, "train")])
out = Path(__file__).resolve().parents[2] / "hutong" / "mpi" / "data" / "default_model.json"
out.write_text(json.dumps(res.model.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
print("wrote", out, "lambda", res.model.lam, "comparisons", res.model.comparisons)
