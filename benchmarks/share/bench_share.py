"""Shared-record benchmark: a person with ~5,000 resources across three hospitals.

Measures, on one live server (loopback, SQLite in a temporary folder):
- server time of the workstation patient page (``GET /workstation/patient/{id}``, HTML complete), against two
  baselines in the same run: linked ``Patient/$everything`` of the same person (the FHIR read of the same
  data, all pages) and single-record ``$everything`` (``linked=false``);
- browser time to first useful paint in headless Chromium: navigation start until the patient banner and the
  lab table are in the DOM and painted (``first-contentful-paint`` and a ``load`` mark), cold and warm;
- ITI-65/67/68: publishing one CDA document, finding it from another record, retrieving it;
- a 50 MB PDF uploaded as raw bytes and streamed back (throughput, and the server process's peak RSS growth).

Run: ``python benchmarks/share/bench_share.py [--extra 4960] [--repeat 15]``. Writes nothing but stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hutong.api.app import create_app, node_store  # noqa: E402
from hutong.config import load_settings  # noqa: E402
from hutong.share import demo  # noqa: E402


def serve(app):
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port}"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def fmt(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   (n={len(ms)})"


def everything_all(client, url):
    n = 0
    while url:
        page = client.get(url).json()
        n += len(page.get("entry", []))
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", type=int, default=4960, help="padding resources beyond the demo (~40)")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-share-"))
    store = node_store(load_settings(data_dir=tmp, workers=False))
    t0 = time.perf_counter()
    demo.load_demo(store, extra=args.extra)
    demo.publish_demo_document(store)
    print(f"loaded the demo person with {args.extra} extra resources in {time.perf_counter() - t0:.1f} s")
    server, base = serve(create_app(store=store))
    doctor = {"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2", "X-Hutong-Client": "bench"}
    with httpx.Client(base_url=base, headers=doctor, timeout=120) as c:
        n_all = everything_all(c, "/fhir/Patient/demo-p1/$everything?_count=1000")
        n_one = everything_all(c, "/fhir/Patient/demo-p1/$everything?_count=1000&linked=false")
        print(f"\nperson: {n_all} resources in linked $everything ({n_one} in record demo-p1 alone)\n")
        print("server time (wall clock on loopback, client included)")
        page = timed(lambda: c.get("/workstation/patient/demo-p1", headers={"Accept": "text/html"}).raise_for_status(),
                     args.repeat)
        print(f"  workstation page, {n_all} resources     {fmt(page)}")
        linked = timed(lambda: everything_all(c, "/fhir/Patient/demo-p1/$everything?_count=1000"), args.repeat)
        print(f"  baseline: linked $everything (JSON)   {fmt(linked)}")
        single = timed(lambda: everything_all(c, "/fhir/Patient/demo-p1/$everything?_count=1000&linked=false"),
                       args.repeat)
        print(f"  baseline: single-record $everything   {fmt(single)}")
        portal = timed(lambda: c.get("/portal/results", headers={"Accept": "text/html", "X-Hutong-Patient": "demo-p1",
                                                                   "X-Hutong-Role": "resident"}).raise_for_status(),
                       args.repeat)
        print(f"  resident portal results page          {fmt(portal)}")
        find = timed(lambda: c.get("/fhir/DocumentReference", params={"patient": "demo-p2", "status": "current"})
                     .raise_for_status(), args.repeat)
        print(f"  ITI-67 find across linked identities  {fmt(find)}")
        doc = c.get("/fhir/DocumentReference", params={"patient": "demo-p2"}).json()["entry"][0]["resource"]
        url = doc["content"][0]["attachment"]["url"]
        get = timed(lambda: c.get("/fhir/" + url, headers={"Accept": "application/hl7-v3+xml"}).raise_for_status(),
                    args.repeat)
        print(f"  ITI-68 retrieve CDA                   {fmt(get)}")
        pub = []
        for k in range(min(args.repeat, 10)):
            b = demo.mhd_bundle(demo.demo_cda(), doc_uuid=f"urn:uuid:7f3c1a2e-0000-4000-8000-{k + 100:012d}")
            t1 = time.perf_counter()
            c.post("/fhir", json=b).raise_for_status()
            pub.append((time.perf_counter() - t1) * 1000)
        print(f"  ITI-65 provide bundle (CDA inline)    {fmt(pub)}")
    browser(base, doctor, args.repeat)
    upload(base)
    server.should_exit = True


def browser(base: str, headers: dict, repeat: int) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("\nbrowser: playwright not installed; skipped")
        return
    if not os.path.exists("/usr/bin/chromium"):
        print("\nbrowser: /usr/bin/chromium missing; skipped")
        return
    print("\nbrowser time to first useful paint (headless Chromium; banner + lab table painted)")
    js = """() => { const n = performance.getEntriesByType('navigation')[0];
                    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                    return [n.responseEnd, fcp ? fcp.startTime : null, n.domContentLoadedEventEnd]; }"""
    with sync_playwright() as p:
        for label, cold in (("cold (new context each time)", True), ("warm (cached assets)", False)):
            b = p.chromium.launch(executable_path="/usr/bin/chromium",
                                  args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                        "--disable-component-update", "--no-first-run"])
            ctx = b.new_context(extra_http_headers=headers)
            fcp, resp, dcl = [], [], []
            for _ in range(repeat):
                if cold:
                    ctx.close()
                    ctx = b.new_context(extra_http_headers=headers)
                pg = ctx.new_page()
                pg.goto(base + "/workstation/patient/demo-p1", wait_until="domcontentloaded")
                pg.wait_for_selector("#lab-table tbody tr")
                # Polled with evaluate: a string predicate needs eval, which the pages' CSP forbids.
                while not pg.evaluate("() => performance.getEntriesByName('first-contentful-paint').length > 0"):
                    time.sleep(0.01)
                r, f, d = pg.evaluate(js)
                resp.append(r)
                fcp.append(f)
                dcl.append(d)
                pg.close()
            print(f"  {label:30s} response end {fmt(resp)}")
            print(f"  {'':30s} first paint  {fmt(fcp)}")
            print(f"  {'':30s} DOM ready    {fmt(dcl)}")
            b.close()


def upload(base: str) -> None:
    import psutil

    proc = psutil.Process()
    size = 50 * 1024 * 1024
    chunk = os.urandom(1 << 16)
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    before = proc.memory_info().rss
    w = threading.Thread(target=watch)
    w.start()

    def body():
        for _ in range(size // len(chunk)):
            yield chunk

    t0 = time.perf_counter()
    r = httpx.post(base + "/fhir/Binary", content=body(), headers={"Content-Type": "application/pdf"}, timeout=300)
    up = time.perf_counter() - t0
    loc = r.headers["location"].split("/fhir/")[1].split("/_history")[0]
    h = hashlib.sha256()
    t0 = time.perf_counter()
    with httpx.stream("GET", f"{base}/fhir/{loc}", headers={"Accept": "application/pdf"}, timeout=300) as resp:
        for part in resp.iter_bytes():
            h.update(part)
    down = time.perf_counter() - t0
    stop.set()
    w.join()
    print(f"\n50 MB PDF: upload {size / up / 1e6:6.1f} MB/s, download {size / down / 1e6:6.1f} MB/s; "
          f"peak RSS growth of the process (server and client) {(peak[0] - before) / 1e6:5.1f} MB "
          f"(baseline: the document itself is 52.4 MB)")


if __name__ == "__main__":
    main()
