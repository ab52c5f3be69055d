"""Batch deduplication and two-file linkage (initial load of a province), with the same model as online.

Pipeline: read and normalise → choose comparisons for the fields present → ``u`` from random pairs →
candidate pairs by blocking → levels → ``m`` by EM → probabilities → clusters (union-find over pairs at or
above the link threshold) → ``record_id,cluster_id``.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hutong.mpi.blocking import candidate_pairs
from hutong.mpi.compare import choose_comparisons, compare_all
from hutong.mpi.features import FIELDS, FeatureTable, normalize_many
from hutong.mpi.model import Model, Thresholds

log = logging.getLogger("hutong.mpi.batch")


@dataclass
class BadRow:
    """A row that could not be used (never carries personal data)."""

    source: str
    line: int
    reason: str


@dataclass
class BatchResult:
    """Outcome of a batch run."""

    record_ids: list[str]
    cluster_ids: list[str]
    sources: list[str]
    pairs_i: np.ndarray
    pairs_j: np.ndarray
    prob: np.ndarray
    model: Model
    bad_rows: list[BadRow] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    n_candidates: int = 0

    def matched_pairs(self, threshold: float | None = None) -> list[tuple[str, str]]:
        """Pairs of record ids at or above ``threshold`` (default: the model's link threshold)."""
        th = self.model.thresholds.link if threshold is None else threshold
        sel = np.flatnonzero(self.prob >= th)
        ids = self.record_ids
        return [(ids[a], ids[b]) for a, b in zip(self.pairs_i[sel].tolist(), self.pairs_j[sel].tolist(), strict=True)]


def parse_mapping(spec: str | None, header: list[str]) -> dict[str, list[str]]:
    """``FIELD=COLUMN,…`` (``COLUMN+COLUMN`` joins columns with a space) → field → columns.

    Without a spec, columns named like a field are used (``record_id``, ``name``, ``birth_date``…)."""
    out: dict[str, list[str]] = {}
    if spec:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"映射项需为 FIELD=COLUMN：{part!r} / mapping entries must be FIELD=COLUMN")
            fld, cols = (x.strip() for x in part.split("=", 1))
            if fld not in FIELDS:
                raise ValueError(f"未知字段 {fld!r} / unknown field; known: {', '.join(FIELDS)}")
            colist = [c.strip() for c in cols.split("+") if c.strip()]
            missing = [c for c in colist if c not in header]
            if missing:
                raise ValueError(f"文件中没有列 {missing} / no such column in the file")
            out[fld] = colist
    else:
        for h in header:
            if h.strip() in FIELDS:
                out[h.strip()] = [h]
    if "record_id" not in out:
        raise ValueError("必须映射 record_id / the record_id field is required")
    return out


def read_records(path: Path, mapping_spec: str | None, source: str = "") -> tuple[list[dict], list[BadRow], dict]:
    """Raw records from a CSV file (UTF-8, BOM tolerated; spaces after commas skipped) and the bad rows."""
    bad: list[BadRow] = []
    records: list[dict] = []
    seen: set[str] = set()
    src = source or path.name
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = [h.strip() for h in next(reader, [])]
        mapping = parse_mapping(mapping_spec, header)
        index = {h: k for k, h in enumerate(header)}
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                bad.append(BadRow(src, line, f"列数 {len(row)} ≠ 表头 {len(header)} / wrong number of columns"))
                continue
            raw = {fld: " ".join(row[index[c]].strip() for c in cols if row[index[c]].strip())
                   for fld, cols in mapping.items()}
            rid = raw.get("record_id", "")
            if not rid:
                bad.append(BadRow(src, line, "缺少 record_id / missing record_id"))
                continue
            if rid in seen:
                bad.append(BadRow(src, line, "record_id 重复 / duplicate record_id"))
                continue
            if not any(raw.get(k) for k in ("name", "family", "given", "id_number", "phone", "birth_date", "identifier")):
                bad.append(BadRow(src, line, "无可比对字段 / no usable demographic field"))
                continue
            seen.add(rid)
            records.append(raw)
    return records, bad, mapping


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return int(root)

    def union(self, a: int, b: int, ids: dict[int, str] | None = None,
              apart: dict[int, set[int]] | None = None) -> None:
        """Join the clusters of ``a`` and ``b`` unless they hold different valid resident IDs (``ids``: root →
        ID) or a record of one was judged a different person from a record of the other (``apart``: root →
        records it must not join)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if ids is not None:
            ia, ib = ids.get(ra), ids.get(rb)
            if ia and ib and ia != ib:
                return  # the two clusters hold different valid resident IDs: two people (twins, family)
        if apart:
            xa, xb = apart.get(ra), apart.get(rb)
            if (xa and any(self.find(x) == rb for x in xa)) or (xb and any(self.find(x) == ra for x in xb)):
                return  # parent and child, twins: joined only through a third record, kept apart
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        if ids is not None and ids.get(hi) and not ids.get(lo):
            ids[lo] = ids[hi]
        if apart and hi in apart:
            apart.setdefault(lo, set()).update(apart.pop(hi))


def run(
    tables: list[tuple[list[dict], str]],
    *,
    thresholds: Thresholds | None = None,
    u_pairs: int = 300_000,
    seed: int = 1,
) -> BatchResult:
    """Deduplicate one list of raw records, or link two (``tables`` = [(records, source), …])."""
    th = thresholds or Thresholds()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    feats = [normalize_many(recs) for recs, _ in tables]
    t = feats[0] if len(feats) == 1 else FeatureTable.concat(feats[0], feats[1])
    split = len(feats[0]) if len(feats) == 2 else None
    timings["normalise_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    comps = choose_comparisons(t)
    model = Model.estimate_u(comps, t, n_pairs=u_pairs, split=split, seed=seed)
    model.thresholds = th
    timings["estimate_u_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    i, j = candidate_pairs(t, split=split)
    timings["blocking_s"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    gamma, tf = compare_all(comps, t, i, j)
    timings["compare_s"] = time.perf_counter() - t3

    t4 = time.perf_counter()
    model.train_em(gamma)
    n = len(t)
    model.set_random_pair_prior(len(i), n * (n - 1) // 2 if split is None else split * (n - split), n)
    raw = model.probability(gamma, tf)
    prob = model.apply_rules(raw, t, i, j, gamma)
    timings["em_score_s"] = time.perf_counter() - t4

    t5 = time.perf_counter()
    uf = _UnionFind(n)
    valid_ids = {k: v for k, (v, ok) in enumerate(zip(t.col("id"), t.col("id_valid"), strict=True)) if ok}
    # pairs that looked alike but that a household rule (or an ID conflict) judged two people: cannot-link
    # constraints, so a placeholder record shared by twins never joins the two
    apart: dict[int, set[int]] = {}
    for k in np.flatnonzero((raw >= th.possible) & (prob <= th.twin_cap) & (prob < raw)).tolist():
        a, b = int(i[k]), int(j[k])
        apart.setdefault(a, set()).add(b)
        apart.setdefault(b, set()).add(a)
    sel = np.flatnonzero(prob >= th.link)
    # strongest links first so the cluster structure is stable
    for k in sel[np.argsort(-prob[sel], kind="stable")].tolist():
        uf.union(int(i[k]), int(j[k]), valid_ids, apart)
    record_ids: list[str] = []
    sources: list[str] = []
    for recs, src in tables:
        record_ids += [r["record_id"] for r in recs]
        sources += [src] * len(recs)
    roots = [uf.find(x) for x in range(n)]
    cluster_ids = [f"c{r}" for r in roots]
    timings["cluster_s"] = time.perf_counter() - t5
    timings["total_s"] = time.perf_counter() - t0
    log.info("mpi batch: %d records, %d candidate pairs, %d links, %.1fs", n, len(i), len(sel), timings["total_s"])
    return BatchResult(record_ids, cluster_ids, sources, i, j, prob, model, [], timings, len(i))


def run_table(t: FeatureTable, *, u_pairs: int = 200_000, seed: int = 1, workers: int = 1) -> Model:
    """Fit a model (u by random pairs, m by EM over blocked pairs) on an already normalised table. Serial by
    default: this runs inside the server (``POST /api/mpi/model/train``), where forking is not safe."""
    comps = choose_comparisons(t)
    model = Model.estimate_u(comps, t, n_pairs=u_pairs, seed=seed, workers=workers)
    i, j = candidate_pairs(t)
    gamma, _ = compare_all(comps, t, i, j, workers=workers)
    model.train_em(gamma)
    model.set_random_pair_prior(len(i), len(t) * (len(t) - 1) // 2, len(t))
    return model


def write_clusters(path: Path, result: BatchResult, *, with_source: bool = False) -> None:
    """Write ``record_id,cluster_id`` (plus ``source`` when linking two files)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["record_id", "cluster_id"] + (["source"] if with_source else []))
        for k, rid in enumerate(result.record_ids):
            w.writerow([rid, result.cluster_ids[k]] + ([result.sources[k]] if with_source else []))


def dedup_files(
    inputs: Iterable[tuple[Path, str | None]],
    *,
    thresholds: Thresholds | None = None,
) -> BatchResult:
    """Read one or two CSV files (each with its own mapping) and deduplicate / link them."""
    tables: list[tuple[list[dict], str]] = []
    bad: list[BadRow] = []
    for path, spec in inputs:
        recs, b, _ = read_records(Path(path), spec)
        tables.append((recs, Path(path).name if len(tables) == 0 else Path(path).name + "#2"))
        bad += b
    result = run(tables, thresholds=thresholds)
    result.bad_rows = bad
    return result
