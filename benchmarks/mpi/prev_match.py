"""The previous version's ``$match`` scoring path (hutong/mpi/service.py at 3ec8b21), kept as the baseline of
``bench_match.py``: the same computation in five database round trips (candidate ids; their feature rows;
model version; term frequencies; index size) where the current version needs two."""

from __future__ import annotations

import numpy as np
import orjson
from sqlalchemy import select

from hutong.mpi import service
from hutong.mpi.features import FeatureTable
from hutong.mpi.tables import mpi_block, mpi_freq, mpi_record


def _candidates(conn, feats: dict, exclude: str | None) -> list[tuple[str, dict, str]]:
    keys = service._hash_keys(feats)
    if not keys:
        return []
    stmt = select(mpi_block.c.patient_id).where(mpi_block.c.key.in_(keys)).distinct().limit(service.MAX_CANDIDATES + 1)
    pids = [r[0] for r in conn.execute(stmt) if r[0] != exclude]
    if not pids:
        return []
    rows = conn.execute(
        select(mpi_record.c.patient_id, mpi_record.c.features, mpi_record.c.person_id)
        .where(mpi_record.c.patient_id.in_(pids))
    ).all()
    return [(r[0], orjson.loads(r[1]), r[2]) for r in rows]


def score_against_index(conn, feats: dict, exclude: str | None = None, *, indexed: bool = False) -> list[dict]:
    """The previous ``service.score_against_index``, unchanged but for the imports."""
    cands = _candidates(conn, feats, exclude)
    if not cands:
        return []
    model = service.get_model(conn)
    table = FeatureTable.from_records([feats] + [c[1] for c in cands])
    table.freq_override = service.index_frequencies(conn, table, extra=0 if indexed else 1, first_only=True)
    n_index = (conn.execute(select(mpi_freq.c.n).where(mpi_freq.c.key == service.TOTAL_KEY)).scalar() or 0) \
        + (0 if indexed else 1)
    i = np.zeros(len(cands), dtype=np.int64)
    j = np.arange(1, len(cands) + 1, dtype=np.int64)
    prob, gamma, bf = model.score_pairs(table, i, j, n_index=n_index)
    out = []
    for k, (pid, _f, person) in enumerate(cands):
        p = float(prob[k])
        out.append({"patient_id": pid, "person_id": person, "score": round(p, 6),
                    "grade": model.thresholds.grade(p), "evidence": model.explain(gamma[k], bf[k])})
    out.sort(key=lambda x: -x["score"])
    return out
