"""FHIR search benchmark: a fixed mix of realistic queries over HTTP against the Synthea load.

    .venv/bin/python benchmarks/search/bench_search.py [--scale 1] [--backends sqlite,postgres] [--iterations 60]

Loads the 615-patient Synthea set (``../shared/data/synthea_fhir_r4/smart_2019``, transaction bundles) ``scale``
times into a fresh store per backend (copies k>0 get patient identifiers suffixed ``-k``; the server assigns new
ids so every copy is a distinct set of resources), kept under ``--workdir`` for reruns. Then starts
``hutong serve`` and times each query sequentially over one keep-alive HTTP connection (median, p95), and in the
same run the *SQL floor*: the statements the search issued, re-executed directly on the database (no HTTP, no
planning, no JSON) - the cost of the same lookups in the database alone. EXPLAIN output of every query's main
statement goes to ``explain_<backend>_<scale>x.txt``. Results: ``results_<scale>x.json`` and a Markdown table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import orjson
from sqlalchemy import create_engine, event, text

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data" / "synthea_fhir_r4" / "smart_2019"
PG_URL = os.environ.get("HUTONG_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(backend: str, scale: int, workdir: Path):
    from hutong.config import load_settings

    data_dir = workdir / f"{backend}_{scale}x"
    if backend == "postgres":
        schema = f"bench_search_{scale}x"
        admin = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
        sep = "&" if "?" in PG_URL else "?"
        url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
        return load_settings(data_dir=data_dir, database_url=url, workers=False)
    return load_settings(data_dir=data_dir, database_url="", workers=False)


def bundles(scale: int):
    files = sorted(DATA.glob("*.json.gz"))
    files.sort(key=lambda p: (not p.name.startswith(("hospital", "practitioner")), p.name))
    for k in range(scale):
        for f in files:
            if k > 0 and f.name.startswith(("hospital", "practitioner")):
                continue
            doc = orjson.loads(gzip.decompress(f.read_bytes()))
            if k > 0:
                for e in doc.get("entry", []):
                    r = e.get("resource") or {}
                    if r.get("resourceType") == "Patient":
                        for ident in r.get("identifier") or []:
                            if "value" in ident:
                                ident["value"] = f"{ident['value']}-{k}"
            yield f"{k}:{f.name}", doc


def fast_load(store, scale: int, summary) -> None:
    """For large scales: resolve each bundle's urn:uuid references to ``Type/<uuid>-<copy>`` ids ourselves and
    upsert the resources in batches of 1,000 without per-resource validation (the data are valid Synthea
    output); the store still writes versions, change events and search-index rows."""
    from hutong.bulk.load import upsert_resources

    batch: list[dict] = []
    for where, doc in bundles(scale):
        k = where.split(":", 1)[0]
        ids = {}
        for e in doc.get("entry", []):
            r = e["resource"]
            ids[e.get("fullUrl", "")] = f"{r['resourceType']}/{e.get('fullUrl', '').rsplit(':', 1)[-1]}-{k}"
        raw = orjson.dumps([e["resource"] for e in doc.get("entry", [])]).decode()
        for full, ref in ids.items():
            if full:
                raw = raw.replace(f'"{full}"', f'"{ref}"')
        for r, e in zip(orjson.loads(raw), doc.get("entry", []), strict=True):
            r["id"] = ids[e.get("fullUrl", "")].split("/", 1)[1]
            batch.append(r)
        if len(batch) >= 1000:
            upsert_resources(store, batch, summary, where)
            batch = []
            if summary.resources % 50000 < 1000:
                print(f"  {summary.resources} resources", flush=True)
    if batch:
        upsert_resources(store, batch, summary, "last")


def load(settings, scale: int, fast: bool = False) -> dict:
    """Load the data set once (a marker file records completion)."""
    from hutong.api.app import node_store
    from hutong.bulk.load import ImportSummary, _import_bundle

    marker = Path(settings.data_dir) / "loaded.json"
    if marker.exists():
        return json.loads(marker.read_text())
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    store = node_store(settings)
    summary = ImportSummary()
    t0 = time.perf_counter()
    n = 0
    if fast:
        store.validator = None
        fast_load(store, scale, summary)
    else:
        for where, doc in bundles(scale):
            _import_bundle(store, doc, summary, where, "")
            n += 1
            if n % 200 == 0:
                print(f"  loaded {n} bundles, {summary.resources} resources, {time.perf_counter() - t0:.0f}s", flush=True)
    dt = time.perf_counter() - t0
    if store.is_postgres:
        # After a bulk load, as an operator would (autovacuum gets there later): the visibility map lets the
        # index-only scans skip the heap, ANALYZE gives the planner current statistics.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    store.close()
    info = {"resources": summary.resources, "failed": summary.failed, "seconds": round(dt, 1), "fast": fast,
            "rps": round(summary.resources / dt), "errors": summary.errors[:5]}
    marker.write_text(json.dumps(info))
    return info


def pick(settings, seed: int = 7) -> dict:
    """Realistic parameter values drawn from the loaded data."""
    from hutong.api.app import node_store

    rnd = random.Random(seed)
    store = node_store(settings)
    with store.read() as tx:
        c = tx.conn
        pats = c.execute(text("SELECT res_id, content FROM resource WHERE res_type='Patient' AND deleted=false")).all()
        rnd.shuffle(pats)
        patients = []
        for rid, content in pats[:200]:
            p = orjson.loads(content)
            ident = next((i for i in p.get("identifier", []) if (i.get("type") or {}).get("coding", [{}])[0].get("code") == "MR"),
                         p["identifier"][0])
            nobs = c.execute(text("SELECT count(*) FROM sp_reference WHERE res_type='Observation' AND param='subject' "
                                  "AND target_type='Patient' AND target_id=:i"), {"i": rid}).scalar()
            patients.append({"id": rid, "ident": f"{ident['system']}|{ident['value']}",
                             "family": p["name"][0]["family"], "given": p["name"][0]["given"][0],
                             "birthDate": p["birthDate"], "nobs": nobs})
        codes = [r[0] for r in c.execute(text(
            "SELECT code FROM sp_token WHERE res_type='Observation' AND param='code' AND system='http://loinc.org' "
            "GROUP BY code ORDER BY count(*) DESC"))]
        enc = c.execute(text("SELECT res_id FROM resource WHERE res_type='Encounter' LIMIT 200")).all()
        orgs = c.execute(text("SELECT content FROM resource WHERE res_type='Organization' LIMIT 50")).all()
    store.close()
    busy = sorted(patients, key=lambda p: -p["nobs"])[:40]
    return {"patients": patients, "busy": busy, "codes": codes, "encounters": [e[0] for e in enc],
            "org_names": [orjson.loads(o[0])["name"] for o in orgs]}


LOINC = "http://loinc.org"


def queries(v: dict) -> list[tuple[str, callable]]:
    """(name, function(rnd) -> path) for the fixed query mix."""
    P = v["patients"]
    B = v["busy"]
    codes = v["codes"]
    top = codes[0]
    fifty = ",".join(f"{LOINC}|{c}" for c in (codes * 3)[:50])

    def q(path, params):
        return f"/fhir/{path}?" + urlencode(params, quote_via=quote, safe=":|,/$")

    return [
        ("patient by identifier", lambda r: q("Patient", [("identifier", r.choice(P)["ident"])])),
        ("patient by name+birthdate", lambda r: (lambda p: q("Patient", [("family", p["family"]), ("birthdate", p["birthDate"])]))(r.choice(P))),
        ("patient by given name prefix", lambda r: q("Patient", [("given", r.choice(P)["given"][:3]), ("_count", "20")])),
        ("patient name:contains", lambda r: q("Patient", [("name:contains", r.choice(P)["family"][1:4]), ("_count", "20")])),
        ("read-like _id", lambda r: q("Patient", [("_id", r.choice(P)["id"])])),
        ("obs of patient by code", lambda r: q("Observation", [("patient", r.choice(B)["id"]), ("code", f"{LOINC}|{top}")])),
        ("obs of patient by code+date range", lambda r: q("Observation", [("patient", r.choice(B)["id"]), ("code", f"{LOINC}|{top}"), ("date", "ge2015-01-01"), ("date", "lt2021-01-01")])),
        ("latest labs sorted by date", lambda r: q("Observation", [("patient", r.choice(B)["id"]), ("category", "laboratory"), ("_sort", "-date"), ("_count", "20")])),
        ("obs value-quantity range", lambda r: q("Observation", [("patient", r.choice(B)["id"]), ("code", top), ("value-quantity", "gt50")])),
        ("code-value-quantity composite", lambda r: q("Observation", [("patient", r.choice(B)["id"]), ("code-value-quantity", f"{LOINC}|{top}$gt10")])),
        ("encounters with _include", lambda r: q("Encounter", [("patient", r.choice(B)["id"]), ("_include", "Encounter:service-provider"), ("_include", "Encounter:participant"), ("_count", "20")])),
        ("encounter _revinclude obs+reports", lambda r: q("Encounter", [("_id", r.choice(v["encounters"])), ("_revinclude", "Observation:encounter"), ("_revinclude", "DiagnosticReport:encounter")])),
        ("patient _revinclude (provenance-like)", lambda r: q("Patient", [("_id", r.choice(P)["id"]), ("_revinclude", "Condition:subject"), ("_revinclude", "AllergyIntolerance:patient")])),
        ("chained subject.identifier", lambda r: q("Observation", [("subject.identifier", r.choice(B)["ident"]), ("code", top)])),
        ("chained 2 levels", lambda r: q("DiagnosticReport", [("encounter.patient.identifier", r.choice(P)["ident"])])),
        ("_has reverse chain", lambda r: q("Patient", [("_has:Condition:patient:code", "44054006"), ("birthdate", "lt1960"), ("_count", "20")])),
        ("token OR list of 50 codes", lambda r: q("Observation", [("patient", r.choice(B)["id"]), ("code", fifty), ("_count", "50")])),
        ("token OR 50 codes, all patients", lambda r: q("Observation", [("code", fifty), ("date", "ge2020-01-01"), ("_count", "20"), ("_total", "none")])),
        ("conditions active of patient", lambda r: q("Condition", [("patient", r.choice(P)["id"]), ("clinical-status", "active")])),
        ("compartment Patient/x/Observation", lambda r: f"/fhir/Patient/{r.choice(B)['id']}/Observation?_count=20"),
        ("deep paging page 20", None),  # handled specially: follows next links
        ("$everything page 1", lambda r: f"/fhir/Patient/{r.choice(P)['id']}/$everything?_count=50"),
        ("medication requests by status", lambda r: q("MedicationRequest", [("patient", r.choice(P)["id"]), ("status", "active,stopped")])),
        ("_summary=count lab obs", lambda r: q("Observation", [("category", "laboratory"), ("patient", r.choice(B)["id"]), ("_summary", "count")])),
        ("_lastUpdated + _tag system search", lambda r: "/fhir?" + urlencode([("_type", "Patient"), ("_lastUpdated", "gt2000-01-01"), ("_count", "10"), ("_total", "none")])),
    ]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def run_http(port: int, qs, iterations: int, v: dict, seed: int = 11) -> dict:
    rnd = random.Random(seed)
    out = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for name, fn in qs:
            times = []
            sizes = []
            if fn is None:  # deep paging: follow next links from page 1 to page 20 (20 per page), time page 20
                base = "/fhir/Observation?" + urlencode([("category", "laboratory"), ("_count", "20"), ("_total", "none"), ("_sort", "-date")])
                urls = []
                nxt = base
                for _ in range(20):
                    b = client.get(nxt).json()
                    link = [link["url"] for link in b["link"] if link["relation"] == "next"]
                    urls.append(nxt)
                    if not link:
                        break
                    nxt = link[0].split(str(client.base_url).rstrip("/"), 1)[-1]
                page20 = urls[-1]
                for _ in range(3):
                    client.get(page20)
                for _ in range(iterations):
                    t0 = time.perf_counter()
                    resp = client.get(page20)
                    times.append((time.perf_counter() - t0) * 1000)
                    sizes.append(len(resp.json().get("entry", [])))
                out[name] = {"median_ms": round(statistics.median(times), 2), "p95_ms": round(pct(times, 95), 2),
                             "mean_entries": round(sum(sizes) / len(sizes), 1), "path": page20, "status": 200}
                continue
            for _ in range(3):
                client.get(fn(rnd))
            statuses = set()
            paths = []
            for _ in range(iterations):
                path = fn(rnd)
                paths.append(path)
                t0 = time.perf_counter()
                resp = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                statuses.add(resp.status_code)
                body = resp.json()
                sizes.append(len(body.get("entry", [])))
            out[name] = {"median_ms": round(statistics.median(times), 2), "p95_ms": round(pct(times, 95), 2),
                         "mean_entries": round(sum(sizes) / len(sizes), 1), "path": paths[0],
                         "status": sorted(statuses)[0] if len(statuses) == 1 else sorted(statuses)}
    return out


def sql_floor_and_explain(settings, results: dict, explain_path: Path, iterations: int) -> None:
    """Re-run each query in-process, capture its SQL, time the raw statements, write EXPLAIN output."""
    from hutong.api.app import node_store
    from hutong.search.routes import everything

    store = node_store(settings)
    captured: list[tuple[str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", before)
    lines = []
    for name, r in results.items():
        path = r["path"]
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(path)
        segs = [s for s in parts.path.split("/") if s][1:]
        params = parse_qsl(parts.query, keep_blank_values=True)
        captured.clear()
        with store.read() as tx:
            if segs and segs[-1] == "$everything":
                everything(tx, segs[1], dict(params), "http://b/fhir", store.settings)
            elif len(segs) == 3:
                store.index.search(tx, segs[2], params, base_url="http://b/fhir", strict=False, compartment=(segs[0], segs[1]))
            else:
                store.index.search(tx, segs[0] if segs else None, params, base_url="http://b/fhir", strict=False)
        stmts = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT")]
        event.remove(store.engine, "before_cursor_execute", before) if False else None
        times = []
        raw = store.engine.raw_connection()
        try:
            for _ in range(3 + iterations):
                t0 = time.perf_counter()
                for s, p in stmts:
                    cur = raw.cursor()
                    cur.execute(s, p)
                    cur.fetchall()
                    cur.close()
                times.append((time.perf_counter() - t0) * 1000)
            raw.rollback()
            times = times[3:]
            r["sql_floor_median_ms"] = round(statistics.median(times), 2)
            r["sql_floor_p95_ms"] = round(pct(times, 95), 2)
            r["statements"] = len(stmts)
            if stmts:
                s, p = stmts[0]
                cur = raw.cursor()
                if store.is_postgres:
                    cur.execute("EXPLAIN " + s, p)
                else:
                    cur.execute("EXPLAIN QUERY PLAN " + s, p)
                plan = "\n".join(" | ".join(str(x) for x in row) for row in cur.fetchall())
                cur.close()
                raw.rollback()
                lines.append(f"### {name}\n{path}\n\n{s}\n\n{plan}\n")
        finally:
            raw.close()
    explain_path.write_text("\n".join(lines))
    store.close()


def start_server(settings, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hutong.cli", "serve", "--port", str(port), "--data-dir", str(settings.data_dir),
           "--empty", "--workers", "1"]
    if settings.database_url:
        cmd += ["--database-url", settings.database_url]
    env = dict(os.environ, HUTONG_WORKERS="false")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start: " + proc.stderr.read().decode()[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/hutong-bench-search"))
    ap.add_argument("--load-only", action="store_true")
    ap.add_argument("--fast-load", action="store_true", help="upsert with resolved ids, no validation (for 10x)")
    args = ap.parse_args()
    if not DATA.exists():
        print("../shared/data is not present; nothing to benchmark")
        return
    all_results = {}
    for backend in args.backends.split(","):
        settings = settings_for(backend, args.scale, args.workdir)
        print(f"[{backend} {args.scale}x] loading ...", flush=True)
        info = load(settings, args.scale, fast=args.fast_load)
        print(f"[{backend} {args.scale}x] loaded {info}", flush=True)
        if args.load_only:
            continue
        v = pick(settings)
        qs = queries(v)
        port = free_port()
        proc = start_server(settings, port)
        try:
            res = run_http(port, qs, args.iterations, v)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        sql_floor_and_explain(settings, res, OUT / f"explain_{backend}_{args.scale}x.txt", args.iterations)
        all_results[backend] = {"load": info, "queries": res}
        print(f"\n[{backend} {args.scale}x] {'query':40s} {'median':>8s} {'p95':>8s} {'SQL floor':>10s} {'entries':>8s}")
        for name, r in res.items():
            print(f"  {name:40s} {r['median_ms']:8.2f} {r['p95_ms']:8.2f} {r.get('sql_floor_median_ms', 0):10.2f} {r['mean_entries']:8.1f}")
    if all_results:
        path = OUT / f"results_{args.scale}x.json"
        path.write_text(json.dumps(all_results, indent=1, ensure_ascii=False))
        print("wrote", path)


if __name__ == "__main__":
    main()
