"""The daily assessment over a simulated province: the change-log consumer's cost per event
(incremental), a full recomputation, the reports, and memory — beside the raw change-log replay
(reading every event with its version and parsing the JSON, nothing else) as the baseline.

Run: ``.venv/bin/python benchmarks/quality/bench_assessment.py [RESIDENTS] [--work DIR]`` (default 3000;
SQLite in a temporary folder; ``HUTONG_DATABASE_URL=postgresql://…`` for PostgreSQL). With ``--work DIR``
the simulated and imported province is kept in DIR and reused by the next run (the assessment's
tables and position are reset first): that is how two versions of the code are measured on the same
data, e.g. the previous version with ``PYTHONPATH=<its checkout>`` and then this one.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import orjson


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(residents: int, work: str | None = None) -> None:
    from sqlalchemy import delete, func, select

    import hutong
    from hutong.api.app import node_store
    from hutong.bulk.load import import_paths
    from hutong.config import load_settings
    from hutong.quality import measure, report, rules
    from hutong.quality.tables import quality_arrival, quality_issue
    from hutong.sim.config import SimConfig
    from hutong.sim.generate import simulate
    from hutong.stats.counters import stats_counter
    from hutong.store import schema

    print(f"code: {Path(hutong.__file__).parent}", flush=True)
    tmp = Path(work) if work else Path(tempfile.mkdtemp(prefix="bench-quality-"))
    reuse = (tmp / "data").exists()
    t = time.perf_counter()
    if not reuse:
        simulate(SimConfig(residents=residents, years=1, seed=1), tmp / "sim")
    gen = time.perf_counter() - t
    store = node_store(load_settings(data_dir=tmp / "data", database_url=os.environ.get("HUTONG_DATABASE_URL", ""),
                                     workers=False))
    t = time.perf_counter()
    if reuse:  # the same province as the last run: only the assessment's own state starts afresh
        with store.write() as tx:
            for table in (quality_arrival, quality_issue):
                tx.conn.execute(delete(table))
            tx.conn.execute(delete(stats_counter).where(stats_counter.c.counter == "quality-rules"))
            tx.conn.execute(delete(schema.consumer_position).where(schema.consumer_position.c.name == "quality"))
    else:
        import_paths(store, [tmp / "sim"])
    load = time.perf_counter() - t
    with store.read() as tx:
        events = tx.conn.execute(select(func.count()).select_from(schema.change_event)).scalar()
        resources = tx.conn.execute(select(func.count()).select_from(schema.resource)).scalar()
    print(f"province: {residents} residents → {resources:,} resources, {events:,} change events "
          f"({'reused ' + str(tmp) if reuse else f'simulate {gen:.0f} s, import {load:.0f} s'}); "
          f"backend {store.engine.dialect.name}", flush=True)

    # Baseline: replay the change log with each version's JSON parsed, nothing else.
    rss0 = _rss_mb()
    t = time.perf_counter()
    after, n, parsed = 0, 0, 0
    with store.read() as tx:
        while True:
            page = store.outbox.read_versions(after, 5000, conn=tx.conn)
            if not page:
                break
            for _ev, text in page:
                if text is not None:
                    orjson.loads(text)
                    parsed += 1
            n += len(page)
            after = page[-1][0].seq
    replay = time.perf_counter() - t
    print(f"baseline  change-log replay + JSON parse: {n:,} events in {replay:.1f} s = "
          f"{replay / n * 1e6:.0f} µs/event", flush=True)

    # The rules alone on parsed resources (where the consumer's CPU goes).
    sample = []
    with store.read() as tx:
        for res_type in sorted(rules.TYPES):
            for (text,) in tx.conn.execute(select(schema.resource.c.content).where(
                    schema.resource.c.res_type == res_type).limit(20000)):
                sample.append(orjson.loads(text))
    t = time.perf_counter()
    for r in sample:
        rules.evaluate(r)
    ev = time.perf_counter() - t
    print(f"rules     evaluate() alone: {len(sample):,} resources in {ev:.2f} s = {ev / len(sample) * 1e6:.1f} µs/resource",
          flush=True)

    # Incremental: the consumer over every event, as the server's worker runs it (batches of 500).
    store.register_consumer(measure.CONSUMER.name, measure.CONSUMER.handler, measure.CONSUMER.types)
    t = time.perf_counter()
    c0 = time.process_time()
    done = 0
    while True:
        k = store.outbox.consume(measure.CONSUMER.name, measure.CONSUMER.handler, batch_size=500)
        if not k:
            break
        done += k
    inc = time.perf_counter() - t
    inc_cpu = time.process_time() - c0
    rss1 = _rss_mb()
    print(f"incremental consumer: {done:,} events in {inc:.1f} s = {inc / max(1, done) * 1e6:.0f} µs/event wall, "
          f"{inc_cpu / max(1, done) * 1e6:.0f} µs/event CPU ({inc / replay:.1f}× the replay baseline's wall); "
          f"RSS {rss0:.0f} → {rss1:.0f} MB", flush=True)

    t = time.perf_counter()
    c0 = time.process_time()
    fresh = measure.recompute(store)
    full = time.perf_counter() - t
    full_cpu = time.process_time() - c0
    rss2 = _rss_mb()
    same = fresh == measure.stored(store)
    print(f"full recomputation: {full:.1f} s wall, {full_cpu:.1f} s CPU ({len(fresh['arrivals']):,} arrival rows, {len(fresh['rules']):,} rule "
          f"counts, {len(fresh['issues']):,} issues); equal to the live figures: {same}; RSS {rss2:.0f} MB", flush=True)

    day = report.default_day()
    from hutong.core.clock import local_day, now_us
    day = local_day(now_us())
    t = time.perf_counter()
    reps = report.province_overview(store, day=day, days=30)
    ov = time.perf_counter() - t
    busiest = max(reps, key=lambda r: r.indicators.get("volume") or 0)
    t = time.perf_counter()
    report.institution_report(store, busiest.institution.org_id, day=day, days=30)
    one = time.perf_counter() - t
    levels: dict[str, int] = {}
    for r in reps:
        code = r.estimate.level.code if r.estimate.level else "-"
        levels[code] = levels.get(code, 0) + 1
    print(f"reports: province overview of {len(reps)} institutions {ov * 1000:.0f} ms; busiest institution's "
          f"report {one * 1000:.0f} ms; estimated levels {dict(sorted(levels.items()))}", flush=True)
    store.close()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="the daily assessment over a simulated province")
    ap.add_argument("residents", type=int, nargs="?", default=3000)
    ap.add_argument("--work", default=None, help="keep (and reuse) the simulated, imported province here")
    a = ap.parse_args()
    main(a.residents, a.work)
