"""Accuracy of Hutong's MPI vs Splink (DuckDB) on FEBRL 3 (dedup) and 4 (link), plus Hutong on synthetic
Chinese records and the small Chinese name-variant sample. Run: ``.venv/bin/python benchmarks/mpi/bench_accuracy.py``
(needs ``pip install splink`` for the peer; skipped if missing)."""

from __future__ import annotations

import csv
import itertools
import logging
import time
from collections import defaultdict
from pathlib import Path

from hutong.mpi import batch, synth

# ../shared/data next to the checkout (a worktree under /work/wt/<name> looks one level further up)
DATA = next((p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data").is_dir()),
            Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
FEBRL = DATA / "febrl"
MAP = ("record_id=rec_id,given=given_name,family=surname,address=street_number+address_1+address_2,city=suburb,"
       "postcode=postcode,state=state,birth_date=date_of_birth,id_number=soc_sec_id")


def truth(fn: str) -> set[tuple[str, str]]:
    with open(FEBRL / fn) as f:
        r = csv.reader(f)
        next(r)
        return {tuple(sorted(x)) for x in r}


def cluster_pairs(ids, clusters, sources=None) -> set[tuple[str, str]]:
    g = defaultdict(list)
    for k, (rid, c) in enumerate(zip(ids, clusters, strict=True)):
        g[c].append((rid, sources[k] if sources else ""))
    out = set()
    for mem in g.values():
        for (a, sa), (b, sb) in itertools.combinations(mem, 2):
            if sources and sa == sb:
                continue
            out.add(tuple(sorted((a, b))))
    return out


def prf(pred, true) -> str:
    tp = len(pred & true)
    p, r = tp / max(1, len(pred)), tp / max(1, len(true))
    return f"P={p:.4f} R={r:.4f} F1={2 * p * r / max(1e-9, p + r):.4f}"


def hutong_febrl():
    t = time.perf_counter()
    r3 = batch.dedup_files([(FEBRL / "dataset3.csv", MAP)])
    d3 = time.perf_counter() - t
    print(f"hutong FEBRL3 dedup  clusters {prf(cluster_pairs(r3.record_ids, r3.cluster_ids), truth('dataset3_true_pairs.csv'))}"
          f"  pairs {prf({tuple(sorted(p)) for p in r3.matched_pairs()}, truth('dataset3_true_pairs.csv'))}  {d3:.1f}s")
    t = time.perf_counter()
    r4 = batch.dedup_files([(FEBRL / "dataset4a.csv", MAP), (FEBRL / "dataset4b.csv", MAP)])
    d4 = time.perf_counter() - t
    print(f"hutong FEBRL4 link   clusters {prf(cluster_pairs(r4.record_ids, r4.cluster_ids, r4.sources), truth('dataset4_true_pairs.csv'))}"
          f"  pairs {prf({tuple(sorted(p)) for p in r4.matched_pairs()}, truth('dataset4_true_pairs.csv'))}  {d4:.1f}s")


def _load(fn):
    import pandas as pd

    df = pd.read_csv(FEBRL / fn, skipinitialspace=True, dtype=str).fillna("")
    df = df.rename(columns={"rec_id": "unique_id"})
    for c in df.columns:
        df[c] = df[c].str.strip().replace("", None)
    return df


def splink_febrl():
    try:
        import splink.comparison_library as cl
        from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    except ImportError:
        print("splink not installed: skipped")
        return
    comps = [
        cl.NameComparison("given_name"), cl.NameComparison("surname"),
        cl.DamerauLevenshteinAtThresholds("date_of_birth", [1, 2]),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
        cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        cl.JaroWinklerAtThresholds("suburb", [0.9]), cl.ExactMatch("state"),
    ]
    rules = [block_on("given_name", "surname"), block_on("surname", "date_of_birth"),
             block_on("given_name", "date_of_birth"), block_on("postcode", "given_name"), block_on("soc_sec_id"),
             block_on("street_number", "address_1")]
    for label, files, link_type, true in (("FEBRL3 dedup", ["dataset3.csv"], "dedupe_only", truth("dataset3_true_pairs.csv")),
                                          ("FEBRL4 link ", ["dataset4a.csv", "dataset4b.csv"], "link_only", truth("dataset4_true_pairs.csv"))):
        t = time.perf_counter()
        dfs = [_load(f) for f in files]
        settings = SettingsCreator(link_type=link_type, comparisons=comps, blocking_rules_to_generate_predictions=rules,
                                   retain_intermediate_calculation_columns=False)
        api = DuckDBAPI()
        try:  # Splink 5: register inputs with the backend first
            sdfs = [api.register(df, dataset_display_name=f"s{k}") for k, df in enumerate(dfs)]
            linker = Linker(sdfs if len(sdfs) > 1 else sdfs[0], settings)
        except (AttributeError, TypeError):  # Splink 4
            linker = Linker(dfs if len(dfs) > 1 else dfs[0], settings, db_api=api)
        linker.training.estimate_probability_two_random_records_match(
            [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")], recall=0.8)
        linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name"))
        pred = linker.inference.predict(threshold_match_probability=0.9)
        pdf = pred.as_pandas_dataframe()
        pairs = {tuple(sorted((a, b))) for a, b in zip(pdf["unique_id_l"], pdf["unique_id_r"], strict=True)}
        cl_df = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.9).as_pandas_dataframe()
        srcs = list(cl_df["source_dataset"]) if "source_dataset" in cl_df.columns else None
        cp = cluster_pairs(list(cl_df["unique_id"]), list(cl_df["cluster_id"]), srcs)
        print(f"splink {label}  clusters {prf(cp, true)}  pairs {prf(pairs, true)}  {time.perf_counter() - t:.1f}s")


def hutong_zh():
    for er in (0.5, 1.0, 2.0):
        recs, tr = synth.generate(10000, error_rate=er, seed=21)
        t = time.perf_counter()
        r = batch.run([(recs, "zh")])
        ent = defaultdict(list)
        for rid, e in tr.items():
            ent[e].append(rid)
        true = {tuple(sorted(p)) for m in ent.values() for p in itertools.combinations(m, 2)}
        print(f"hutong synthetic zh n={len(recs)} error_rate={er}  clusters "
              f"{prf(cluster_pairs(r.record_ids, r.cluster_ids), true)}  {time.perf_counter() - t:.1f}s")
    zh = DATA / "record_linkage_zh"
    if zh.exists():
        def rows(fn, prefix):
            out = []
            for k, row in enumerate(csv.DictReader(open(zh / fn, encoding="utf-8"))):
                out.append({"record_id": f"{prefix}{k}", "name": row["name"], "gender": row["sex"],
                            "birth_date": f"{row['yob']}-{int(row['mob']):02d}-{int(row['dob']):02d}"})
            return out
        r = batch.run([(rows("name_match_1.csv", "a"), "a"), (rows("name_match_2.csv", "b"), "b")])
        true = {tuple(sorted((f"a{k}", f"b{k}"))) for k in range(100)}
        print(f"hutong record_linkage_zh (100×100, name+sex+dob)  clusters "
              f"{prf(cluster_pairs(r.record_ids, r.cluster_ids, r.sources), true)}")


if __name__ == "__main__":
    logging.getLogger("splink").setLevel(logging.WARNING)  # Splink's training chatter
    hutong_febrl() if "--skip-hutong" not in __import__("sys").argv else None
    splink_febrl()
    hutong_zh()
