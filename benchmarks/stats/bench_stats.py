"""Statistics benchmark, side by side in one run (SQLite in a temporary folder, in-process):

1. An indicator (outpatient visits by institution and day) over N Encounters: read from the live
   counters (kept by the change-log consumer while loading) vs a full recomputation in DuckDB (the
   SQL on FHIR view materialised, then GROUP BY) vs a plain SQL GROUP BY over the store's JSON vs the
   counters' own full Python scan. All four must give the same numbers (checked).
2. ``$viewdefinition-run`` rows/s for a flat patient view over P Patients, NDJSON out, against the
   raw storage limit (reading and parsing the same rows without the view).
3. Excel round trip of a monthly report of I institutions: the province table written
   (``hutong.stats.excel``) and read back, and per-institution template + upload + save for a sample.

``python benchmarks/stats/bench_stats.py [--encounters 200000] [--patients 50000] [--institutions 2000]``
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import duckdb  # noqa: E402
import orjson  # noqa: E402
from openpyxl import load_workbook  # noqa: E402

from hutong.api.app import CAPABILITIES  # noqa: E402
from hutong.api.node import open_store  # noqa: E402
from hutong.config import load_settings  # noqa: E402
from hutong.stats import counters, excel, indicators, report_excel, reporting, run  # noqa: E402
from hutong.stats.datasets import BUILTIN  # noqa: E402
from hutong.stats.periods import parse_period  # noqa: E402
from hutong.stats.views import View  # noqa: E402

DIV = "https://hutong.example/fhir/StructureDefinition/division-code"
COUNTIES = ["220102", "220103", "220104", "220105", "220106", "220202", "220203", "220302", "220402", "220502"]
VIEW = {"resource": "Encounter", "name": "visits", "select": [{"column": [
    {"name": "org", "path": "serviceProvider.getReferenceKey(Organization)", "type": "id"},
    {"name": "cls", "path": "class.code", "type": "code"},
    {"name": "status", "path": "status", "type": "code"},
    {"name": "start", "path": "period.start", "type": "dateTime"}]}]}
PATIENT_VIEW = {"resource": "Patient", "name": "patient_flat", "select": [
    {"column": [{"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "gender", "path": "gender", "type": "code"},
                {"name": "birth_date", "path": "birthDate", "type": "date"},
                {"name": "family", "path": "name.first().family", "type": "string"},
                {"name": "given", "path": "name.first().given.join(' ')", "type": "string"},
                {"name": "county", "path": "address.first().district", "type": "string"}]}]}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def load(store, resources, batch=1000):
    for i in range(0, len(resources), batch):
        with store.write() as tx:
            for r in resources[i:i + batch]:
                if "id" in r:
                    tx.update(r["resourceType"], r["id"], r)
                else:
                    tx.create(r)


def indicator_part(store, n_enc: int, n_inst: int, tmp: Path) -> list[str]:
    rng = random.Random(19)
    store.register_consumer(indicators.CONSUMER.name, indicators.CONSUMER.handler, indicators.CONSUMER.types)
    orgs = [f"org{i:04d}" for i in range(n_inst)]
    load(store, [{"resourceType": "Organization", "id": o, "name": o,
                  "extension": [{"url": DIV, "valueCode": COUNTIES[i % len(COUNTIES)]}]} for i, o in enumerate(orgs)])
    encs = []
    for _ in range(n_enc):
        day = 1 + rng.randrange(30)
        encs.append({"resourceType": "Encounter", "status": "finished",
                     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                               "code": rng.choice(("AMB", "AMB", "AMB", "EMER", "IMP"))},
                     "serviceProvider": {"reference": f"Organization/{rng.choice(orgs)}"},
                     "period": {"start": f"2026-11-{day:02d}T{8 + rng.randrange(10):02d}:00:00+08:00"}})
    _, t_load = timed(lambda: load(store, encs))
    _, t_consume = timed(store.run_consumers)   # what the consumer still had to do after the load
    # (the worker thread is not running here: the consumer processes the whole change log now)

    def live():
        with store.read() as tx:
            return indicators.compute(tx, "OP_VISITS", start="2026-11-01", end="2026-11-30")["total"]["numerator"]
    live_total, t_live = timed(live)
    live_total, t_live = timed(live)  # warm

    def live_by_county():
        with store.read() as tx:
            return indicators.compute(tx, "OP_VISITS", unit="2201", start="2026-11-01", end="2026-11-30")
    _, t_live_county = timed(live_by_county)

    py, t_py = timed(lambda: counters.recompute(store, indicators.VISITS))

    db = tmp / "bench.duckdb"

    def duck():
        con = duckdb.connect(str(db))
        with store.read() as tx:
            run.load_duckdb(con, "visits", View(VIEW), run.view_rows(tx, View(VIEW)))
        rows = con.execute("SELECT org, substr(start, 1, 10) AS day, count(*) FROM visits "
                           "WHERE status NOT IN ('cancelled', 'entered-in-error') AND cls IN ('AMB', 'EMER') "
                           "GROUP BY 1, 2").fetchall()
        con.close()
        return rows
    duck_rows, t_duck = timed(duck)

    def duck_query_only():
        con = duckdb.connect(str(db))
        rows = con.execute("SELECT org, substr(start, 1, 10), count(*) FROM visits WHERE cls IN ('AMB','EMER') "
                           "GROUP BY 1, 2").fetchall()
        con.close()
        return rows
    _, t_duck_q = timed(duck_query_only)

    def plain_sql():
        with store.read() as tx:
            raw = tx.conn.exec_driver_sql(
                "SELECT json_extract(content, '$.serviceProvider.reference'), "
                "substr(json_extract(content, '$.period.start'), 1, 10), count(*) FROM resource "
                "WHERE res_type = 'Encounter' AND deleted = 0 "
                "AND json_extract(content, '$.class.code') IN ('AMB', 'EMER') GROUP BY 1, 2")
            return raw.fetchall()
    sql_rows, t_sql = timed(plain_sql)

    total_py = sum(py.values())
    total_duck = sum(r[2] for r in duck_rows)
    total_sql = sum(r[2] for r in sql_rows)
    same = live_total == total_py == total_duck == total_sql
    per_key_live = counters.stored(store, indicators.VISITS)
    assert per_key_live == py, "live counters differ from the full recomputation"
    assert same, (live_total, total_py, total_duck, total_sql)
    return [
        f"| Encounters loaded ({n_enc:,}, {n_inst:,} institutions), 1,000 per transaction | {t_load:.1f} s "
        f"({n_enc / t_load:,.0f}/s) |",
        f"| change-log consumer keeping the 4 live counters, whole log after the load | {t_consume:.1f} s "
        f"({n_enc / t_consume:,.0f} events/s) |",
        f"| **indicator from live counters** (province total, 30 days, warm) | **{t_live * 1000:.1f} ms** |",
        f"| indicator from live counters, drill-down to the counties of 长春市 | {t_live_county * 1000:.1f} ms |",
        f"| full recomputation in DuckDB (view materialised from the store + GROUP BY) | {t_duck:.2f} s |",
        f"| — of which the DuckDB GROUP BY alone on the materialised table | {t_duck_q * 1000:.1f} ms |",
        f"| plain SQL GROUP BY on the store (SQLite json_extract) | {t_sql:.2f} s |",
        f"| full recomputation by the counters' Python scan (`counters.recompute`) | {t_py:.2f} s |",
        f"| same total from all four ({live_total:,.0f} visits) | {'yes' if same else 'NO'} |",
    ]


def run_part(store, n_pat: int) -> list[str]:
    rng = random.Random(7)
    fam, giv = "王李张刘陈杨赵黄周吴", "伟芳娜敏静丽强磊军洋"
    load(store, [{"resourceType": "Patient", "gender": rng.choice(("male", "female")),
                  "birthDate": f"{1930 + rng.randrange(90)}-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}",
                  "name": [{"family": rng.choice(fam), "given": [rng.choice(giv), rng.choice(giv)]}],
                  "address": [{"district": rng.choice(("南关区", "宽城区", "朝阳区")), "city": "长春市"}]}
                 for _ in range(n_pat)])
    view = View(PATIENT_VIEW)

    def run_view():
        with store.read() as tx:
            text = run.write_text(view, run.view_rows(tx, view), "ndjson")
        return text.count("\n")
    rows, t_run = timed(run_view)

    def raw():
        n = 0
        with store.read() as tx:
            for _ in run.stored_resources(tx, "Patient"):
                n += 1
        return n
    n_raw, t_raw = timed(raw)

    def parquet():
        with store.read() as tx, tempfile.TemporaryDirectory() as d:
            run.write_parquet(view, run.view_rows(tx, view), d)
    _, t_parquet = timed(parquet)
    return [
        f"| `$viewdefinition-run` flat patient view, {rows:,} rows, NDJSON | {t_run:.2f} s "
        f"(**{rows / t_run:,.0f} rows/s**) |",
        f"| same view, Parquet (DuckDB writer) | {t_parquet:.2f} s ({rows / t_parquet:,.0f} rows/s) |",
        f"| baseline: read and parse the same {n_raw:,} Patients from the store (no view) | {t_raw:.2f} s "
        f"({n_raw / t_raw:,.0f} rows/s) |",
    ]


def excel_part(store, n_inst: int, sample: int) -> list[str]:
    ds = BUILTIN["HRMS_M"]
    period = parse_period("202611", "monthly")
    cells = [(e.code, coc) for e in ds.elements for coc, _ in ds.cells(e)]
    rng = random.Random(3)
    cols = [excel.Column("机构代码"), excel.Column("机构")] + [excel.Column(f"{e}.{c}" if c else e, "#,##0")
                                                           for e, c in cells]
    rows = [[f"org{i:04d}", f"医院{i:04d}"] + [rng.randrange(10_000) for _ in cells] for i in range(n_inst)]
    data, t_write = timed(lambda: excel.workbook([excel.Sheet(f"{ds.name} {period.label()}", cols, rows)]))

    def read_back():
        wb = load_workbook(io.BytesIO(data), read_only=True)
        return sum(1 for r in wb.active.iter_rows(min_row=3) if r[0].value)
    n_back, t_read = timed(read_back)
    assert n_back == n_inst

    orgs = [f"org{i:04d}" for i in range(sample)]
    with store.write() as tx:
        reporting.assign(tx, ds, orgs)
    t0 = time.perf_counter()
    for org in orgs:
        with store.read() as tx:
            tpl = report_excel.template(ds, org, org, period, reporting.values(tx.conn, ds, org, period.id))
        wb = load_workbook(io.BytesIO(tpl))
        ws = wb[report_excel.SHEET]
        for r in range(5, ws.max_row + 1):
            if ws.cell(row=r, column=1).value:
                ws.cell(row=r, column=5, value=rng.randrange(1000))
        buf = io.BytesIO()
        wb.save(buf)
        entries, errors = report_excel.read_upload(ds, org, period, buf.getvalue())
        with store.write() as tx:
            reporting.save_values(tx, ds, org, period.id, entries, "bench")
    t_round = time.perf_counter() - t0
    return [
        f"| province table of {n_inst:,} institutions × {len(cells)} cells written to .xlsx | {t_write:.2f} s "
        f"({len(data) / 1e6:.1f} MB) |",
        f"| the same workbook read back (openpyxl, read-only) | {t_read:.2f} s |",
        f"| per institution: template → fill → upload → check → save with validation, {sample} institutions | "
        f"{t_round:.1f} s ({t_round / sample * 1000:.0f} ms each) |",
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encounters", type=int, default=200_000)
    ap.add_argument("--patients", type=int, default=50_000)
    ap.add_argument("--institutions", type=int, default=2000)
    ap.add_argument("--sample", type=int, default=50)
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        settings = load_settings(data_dir=tmp / "data", database_url="", workers=False)
        store = open_store(settings, CAPABILITIES)
        lines = ["| measured | result |", "|---|---|"]
        lines += indicator_part(store, args.encounters, args.institutions, tmp)
        lines += run_part(store, args.patients)
        lines += excel_part(store, args.institutions, args.sample)
    print("\n".join(lines))
    print(f"load after: {os.getloadavg()}")
    print(orjson.dumps({"args": vars(args)}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
