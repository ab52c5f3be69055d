"""Shared-record benchmark: a person with ~5,000 resources across three hospitals, the previous version
of the pages against this one, side by side in one run, on SQLite and PostgreSQL.

For each backend the demo person 王丽华 (three hospitals, linked by the patient index) is padded to ~5,000
resources once (by this checkout), then two servers are started on the *same* database: the previous
version (a git worktree of ``--previous``) and this checkout, one uvicorn process each, on loopback. Requests
alternate between the two round by round, so both see the same machine load. Measured:

- server time of the workstation patient page (``GET /workstation/patient/{id}``, HTML complete, wall clock
  on loopback with the client), previous against current; the current version's ``Server-Timing`` stages
  (load, care, view, render); the paged lab section; the resident portal's results page;
- baselines in the same run: linked ``Patient/$everything`` of the same person (the FHIR read of the same
  data, every page) and single-record ``$everything`` (``linked=false``);
- browser time to first useful paint in headless Chromium, previous against current: navigation start until
  the banner and the lab table are in the DOM, first contentful paint and DOMContentLoaded, cold (new context,
  nothing cached) and warm (assets cached);
- ITI-65/67/68 on the current version, and a 50 MB PDF uploaded as raw bytes and streamed back (throughput
  and the server process's peak RSS growth).

Doctors are a trusted gateway's callers (``X-Hutong-*`` headers with the gateway key), the same for both
versions. Run::

    .venv/bin/python benchmarks/share/bench_share.py [--previous 418fe6f] [--backends sqlite,postgres]
                                                     [--extra 4960] [--repeat 10] [--no-browser] [--no-upload]

Writes nothing but stdout (and temporary folders it removes).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hutong.api.app import node_store  # noqa: E402
from hutong.config import load_settings  # noqa: E402
from hutong.share import demo  # noqa: E402

PG = os.environ.get("HUTONG_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
PATIENT = "demo-p1"


# ---------------------------------------------------------------------------------------------- set-up
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_schema() -> tuple[str, str]:
    import psycopg

    schema = "bench_share_" + uuid.uuid4().hex[:8]
    with psycopg.connect(PG, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG, autocommit=True) as c:
        c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def load(data: Path, db_url: str, extra: int) -> float:
    t0 = time.perf_counter()
    store = node_store(load_settings(data_dir=data, database_url=db_url, workers=False))
    try:
        demo.load_demo(store, extra=extra)
        demo.publish_demo_document(store)
    finally:
        store.close()
    return time.perf_counter() - t0


def serve(tree: Path, data: Path, db_url: str, key: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "HUTONG_DATA_DIR": str(data), "HUTONG_DATABASE_URL": db_url,
           "HUTONG_WORKERS": "false", "HUTONG_SECURITY_GATEWAY_KEY": key}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "hutong.api.asgi:app", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
                            env=env, cwd=tree, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server for {tree} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# ---------------------------------------------------------------------------------------------- measuring
def fmt(ms: list[float]) -> str:
    if not ms:
        return "–"
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"{statistics.median(ms):8.1f} / {p95:8.1f} ms"


def timed_get(client: httpx.Client, url: str, **kw) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = client.get(url, **kw)
    ms = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return ms, r


def everything_all(client, url) -> int:
    n = 0
    while url:
        page = client.get(url).json()
        n += len(page.get("entry", []))
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
    return n


def stages(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def server_times(bases: dict[str, str], headers: dict, repeat: int) -> dict:
    html = {"Accept": "text/html"}
    resident = {**headers, "Accept": "text/html", "X-Hutong-Role": "resident", "X-Hutong-Patient": PATIENT}
    res: dict = {"page": {v: [] for v in bases}, "portal": {v: [] for v in bases}, "bytes": {}, "stages": [],
                 "section": [], "linked": [], "single": []}
    clients = {v: httpx.Client(base_url=b, headers=headers, timeout=300) for v, b in bases.items()}
    try:
        for c in clients.values():  # warm: templates compiled, catalogs read, caches of the database filled
            c.get(f"/workstation/patient/{PATIENT}", headers=html).raise_for_status()
        cur = clients["current"]
        res["n_all"] = everything_all(cur, f"/fhir/Patient/{PATIENT}/$everything?_count=1000")
        res["n_one"] = everything_all(cur, f"/fhir/Patient/{PATIENT}/$everything?_count=1000&linked=false")
        order = list(clients)
        for k in range(repeat):
            for v in (order if k % 2 == 0 else order[::-1]):
                ms, r = timed_get(clients[v], f"/workstation/patient/{PATIENT}", headers=html)
                res["page"][v].append(ms)
                res["bytes"][v] = len(r.content)
                if v == "current" and r.headers.get("server-timing"):
                    res["stages"].append(stages(r.headers["server-timing"]))
                ms, _r = timed_get(clients[v], "/portal/results", headers=resident)
                res["portal"][v].append(ms)
            res["section"].append(timed_get(cur, f"/workstation/patient/{PATIENT}/lab?page=2", headers=html)[0])
            t0 = time.perf_counter()
            everything_all(cur, f"/fhir/Patient/{PATIENT}/$everything?_count=1000")
            res["linked"].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            everything_all(cur, f"/fhir/Patient/{PATIENT}/$everything?_count=1000&linked=false")
            res["single"].append((time.perf_counter() - t0) * 1000)
    finally:
        for c in clients.values():
            c.close()
    return res


def mhd_times(base: str, headers: dict, repeat: int) -> dict:
    out = {"find": [], "get": [], "provide": []}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
        for _ in range(repeat):
            out["find"].append(timed_get(c, "/fhir/DocumentReference", params={"patient": "demo-p2",
                                                                                "status": "current"})[0])
        doc = c.get("/fhir/DocumentReference", params={"patient": "demo-p2"}).json()["entry"][0]["resource"]
        url = doc["content"][0]["attachment"]["url"]
        for _ in range(repeat):
            out["get"].append(timed_get(c, "/fhir/" + url, headers={"Accept": "application/hl7-v3+xml"})[0])
        for k in range(min(repeat, 10)):
            b = demo.mhd_bundle(demo.demo_cda(), doc_uuid=f"urn:uuid:7f3c1a2e-0000-4000-8000-{k + 100:012d}")
            t0 = time.perf_counter()
            c.post("/fhir", json=b).raise_for_status()
            out["provide"].append((time.perf_counter() - t0) * 1000)
    return out


def browser_times(bases: dict[str, str], headers: dict, repeat: int) -> dict | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists("/usr/bin/chromium"):
        return None
    js = """() => new Promise(done => {
        const n = performance.getEntriesByType('navigation')[0];
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        const give = lcp => done([n.responseEnd, fcp ? fcp.startTime : null, lcp, n.domContentLoadedEventEnd]);
        new PerformanceObserver(l => { const e = l.getEntries(); give(e[e.length - 1].startTime); })
            .observe({type: 'largest-contentful-paint', buffered: true});
        setTimeout(() => give(null), 2000); })"""
    out: dict = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium",
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--no-first-run"])
        try:
            for mode in ("cold", "warm"):
                ctxs = {v: b.new_context(extra_http_headers=headers) for v in bases}
                rows = {v: {"resp": [], "fcp": [], "lcp": [], "dom": [], "dcl": []} for v in bases}
                order = list(bases)
                for k in range(repeat):
                    for v in (order if k % 2 == 0 else order[::-1]):
                        if mode == "cold":
                            ctxs[v].close()
                            ctxs[v] = b.new_context(extra_http_headers=headers)
                        pg = ctxs[v].new_page()
                        pg.goto(bases[v] + f"/workstation/patient/{PATIENT}", wait_until="commit")
                        pg.wait_for_selector(".patient-banner")
                        pg.wait_for_selector("#lab-table tbody tr")
                        in_dom = pg.evaluate("() => performance.now()")
                        # Polled with evaluate: a string predicate needs eval, which the pages' CSP forbids.
                        while not pg.evaluate("() => performance.getEntriesByName('first-contentful-paint').length"):
                            time.sleep(0.005)
                        r, f, lcp, d = pg.evaluate(js)
                        for key, value in (("resp", r), ("fcp", f), ("lcp", lcp), ("dom", in_dom), ("dcl", d)):
                            if value is not None:
                                rows[v][key].append(value)
                        pg.close()
                for c in ctxs.values():
                    c.close()
                out[mode] = rows
        finally:
            b.close()
    return out


def upload(base: str, pid: int, key: str) -> str:
    import psutil

    proc = psutil.Process(pid)
    size = 50 * 1024 * 1024
    chunk = os.urandom(1 << 16)
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    w = threading.Thread(target=watch)
    w.start()

    def body():
        for _ in range(size // len(chunk)):
            yield chunk

    system = {"X-Hutong-Gateway-Key": key, "X-Hutong-Role": "system", "X-Hutong-Client": "bench"}
    try:
        t0 = time.perf_counter()
        r = httpx.post(base + "/fhir/Binary", content=body(), headers={**system, "Content-Type": "application/pdf"},
                       timeout=300)
        r.raise_for_status()
        up = time.perf_counter() - t0
        loc = r.headers["location"].split("/fhir/")[1].split("/_history")[0]
        h = hashlib.sha256()
        t0 = time.perf_counter()
        with httpx.stream("GET", f"{base}/fhir/{loc}", headers={**system, "Accept": "application/pdf"},
                          timeout=300) as resp:
            for part in resp.iter_bytes():
                h.update(part)
        down = time.perf_counter() - t0
    finally:
        done.set()
        w.join()
    return (f"50 MB PDF: upload {size / up / 1e6:.1f} MB/s, download {size / down / 1e6:.1f} MB/s; server process "
            f"peak RSS growth {(peak[0] - before) / 1e6:.1f} MB (the document: {size / 1e6:.1f} MB)")


# ---------------------------------------------------------------------------------------------- report
def report(backend: str, load_s: float, srv: dict, brw: dict | None, mhd: dict | None, up: str | None) -> str:
    lines = [f"\n### {backend}: {srv['n_all']} resources in linked $everything ({srv['n_one']} in {PATIENT} alone); "
             f"loaded in {load_s:.0f} s\n",
             "| measured (median / p95) | previous | current |", "|---|---|---|"]
    lines.append(f"| workstation patient page, server (HTML complete) | {fmt(srv['page']['previous'])} | "
                 f"{fmt(srv['page']['current'])} |")
    lines.append(f"| page size | {srv['bytes']['previous'] / 1024:.0f} KiB | {srv['bytes']['current'] / 1024:.0f} KiB |")
    lines.append(f"| resident portal results page | {fmt(srv['portal']['previous'])} | {fmt(srv['portal']['current'])} |")
    if srv["stages"]:
        parts = " · ".join(f"{k} {statistics.median(s[k] for s in srv['stages']):.1f} ms"
                           for k in srv["stages"][0])
        lines.append(f"| current: Server-Timing stages (median) | – | {parts} |")
    lines.append(f"| current: lab section, page 2 (100 rows) | – | {fmt(srv['section'])} |")
    lines.append(f"| baseline: linked `$everything`, every page, JSON | {fmt(srv['linked'])} | (same code) |")
    lines.append(f"| baseline: single-record `$everything` (`linked=false`) | {fmt(srv['single'])} | (same code) |")
    if brw:
        for mode in ("cold", "warm"):
            for key, name in (("resp", "response end"), ("fcp", "first contentful paint"),
                              ("lcp", "largest contentful paint"),
                              ("dom", "banner + lab table in the DOM (polled: an upper bound)"),
                              ("dcl", "DOMContentLoaded")):
                lines.append(f"| browser {mode}: {name} | {fmt(brw[mode]['previous'][key])} | "
                             f"{fmt(brw[mode]['current'][key])} |")
    if mhd:
        for key, name in (("find", "ITI-67 find across linked identities"), ("get", "ITI-68 retrieve CDA"),
                          ("provide", "ITI-65 provide bundle (CDA inline)")):
            lines.append(f"| {name} | – | {fmt(mhd[key])} |")
    if up:
        lines.append(f"\n{up}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--previous", default="418fe6f", help="git revision of the previous version")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--extra", type=int, default=4960, help="padding resources beyond the demo (~40)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-upload", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-share-"))
    prev = work / "previous"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(prev), args.previous], check=True,
                   capture_output=True)
    key = "bench-gateway-" + secrets.token_hex(8)
    doctor = {"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2", "X-Hutong-Client": "bench",
              "X-Hutong-Gateway-Key": key}
    out = [f"uptime at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
           f"(1/5/15-min load averages, 2 cores); previous = {args.previous}"]
    try:
        for backend in args.backends.split(","):
            data = work / f"data-{backend}"
            db_url, schema = pg_schema() if backend == "postgres" else ("", None)
            try:
                load_s = load(data, db_url, args.extra)
                procs = {}
                try:
                    for name, tree in (("previous", prev), ("current", REPO)):
                        procs[name] = serve(tree, data, db_url, key)
                    bases = {n: b for n, (_p, b) in procs.items()}
                    srv = server_times(bases, doctor, args.repeat)
                    brw = None if args.no_browser else browser_times(bases, doctor, args.repeat)
                    mhd = mhd_times(bases["current"], doctor, args.repeat)
                    print(report(backend, load_s, srv, brw, mhd, None), flush=True)
                    up = None if args.no_upload or backend != "sqlite" else upload(
                        bases["current"], procs["current"][0].pid, key)
                finally:
                    for proc, _b in procs.values():
                        stop(proc)
                out.append(report(backend, load_s, srv, brw, mhd, up))
            finally:
                if schema:
                    drop_schema(schema)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(prev)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    la = os.getloadavg()
    out.append(f"\nuptime at end: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")
    print("\n\n==== summary ====\n" + "\n".join(out))


if __name__ == "__main__":
    main()
