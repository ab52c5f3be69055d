"""Fit the default online model (shipped as hutong/mpi/data/default_model.json) by EM on synthetic Chinese
registration records (hutong.mpi.synth). A deployment refits on its own index with
``hutong.mpi.service.retrain(store)`` / ``POST /api/mpi/model/train``."""

import json
from pathlib import Path

from hutong.mpi import batch, synth

recs, _ = synth.generate(20000, error_rate=1.0, seed=11)
res = batch.run([(recs, "synth")])
out = Path(__file__).resolve().parents[2] / "hutong" / "mpi" / "data" / "default_model.json"
out.write_text(json.dumps(res.model.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
print("wrote", out, "lambda", res.model.lam)
