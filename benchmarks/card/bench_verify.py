"""Health-card benchmark: HTTP verification from a second process, in-process Ed25519 vs SM2, QR generation.

    .venv/bin/python benchmarks/card/bench_verify.py            # SQLite, 1 and 2 uvicorn workers
    .venv/bin/python benchmarks/card/bench_verify.py --workers 2 --database-url postgresql://127.0.0.1:5432/test

Bounded: a fixed number of requests per run (default 20,000 after 1,000 warm-up), loopback only. The load
generator is a separate process speaking raw HTTP/1.1 over keep-alive connections (asyncio), so it costs
little CPU next to the server on this 2-core machine. Each request carries a distinct fresh code (the
default replay policy lets a code be used at one institution for one visit). Baseline in the same run:
``GET /health`` through the same server and client (the framework's floor).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- load client
async def _worker(port: int, requests: list[bytes], start: int, step: int, lat: list[float], statuses: dict):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(start, len(requests), step):
            t0 = time.perf_counter()
            writer.write(requests[i])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            code = int(head[9:12])
            statuses[code] = statuses.get(code, 0) + 1
    finally:
        writer.close()


def _run_load(port: int, requests: list[bytes], concurrency: int, out):
    async def main():
        lat: list[float] = []
        statuses: dict[int, int] = {}
        t0 = time.perf_counter()
        await asyncio.gather(*[_worker(port, requests, k, concurrency, lat, statuses) for k in range(concurrency)])
        return time.perf_counter() - t0, lat, statuses

    import resource

    elapsed, lat, statuses = asyncio.run(main())
    ru = resource.getrusage(resource.RUSAGE_SELF)
    lat.sort()
    out.put({
        "n": len(lat),
        "seconds": elapsed,
        "rate": len(lat) / elapsed,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1],
        "max_ms": 1000 * lat[-1],
        "statuses": statuses,
        "client_cpu_s": ru.ru_utime + ru.ru_stime,
    })


def load(port: int, requests: list[bytes], concurrency: int) -> dict:
    """Send ``requests`` from a second process; throughput and latency percentiles."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run_load, args=(port, requests, concurrency, q))
    p.start()
    result = q.get()
    p.join()
    return result


def _server_cpu(pid: int) -> float:
    """CPU seconds used so far by the server process and its worker children (Linux /proc)."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid = int(fields[1])
        if int(entry) == pid or ppid == pid:
            total += (int(fields[11]) + int(fields[12])) / tck
    return total


def measured_load(pid: int, port: int, requests: list[bytes], concurrency: int) -> dict:
    before = _server_cpu(pid)
    res = load(port, requests, concurrency)
    res["server_cpu_ms_per_req"] = 1000 * (_server_cpu(pid) - before) / max(1, res["n"])
    res["client_cpu_ms_per_req"] = 1000 * res.pop("client_cpu_s") / max(1, res["n"])
    return res


def _post(body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return (b"POST /api/card/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)


GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# ---------------------------------------------------------------------------------------------- setup
def setup(env: dict, cards: int):
    """Create institutions, patients and cards; return (store, card_ids)."""
    os.environ.update(env)
    from hutong.api.app import node_store
    from hutong.card import service as S
    from hutong.config import load_settings

    store = node_store(load_settings())
    for i in range(10):
        store.update("Organization", f"bench-h{i}", {"resourceType": "Organization", "id": f"bench-h{i}",
                                                      "name": f"基准医院{i}"})
    with store.write() as tx:
        for i in range(cards):
            tx.update("Patient", f"bench-p{i}", {
                "resourceType": "Patient", "id": f"bench-p{i}",
                "name": [{"family": "王", "given": [f"测{i}"]}],
                "identifier": [{"system": f"urn:hutong:mrn:bench-h{i % 10}", "value": f"MR{i:06d}"}],
            })
    ids = []
    for i in range(cards):
        card, _ = S.issue_card(store, f"Patient/bench-p{i}", issued_by="bench")
        ids.append(card["card_id"])
    return store, ids


def codes(store, card_ids: list[str], n: int) -> list[str]:
    from hutong.card import codec
    from hutong.card import service as S
    from hutong.card.verify import sign_code

    svc = S.service_for(store)
    signer = svc.keys.signer()
    refs = [codec.card_id_to_ref(c) for c in card_ids]
    return [sign_code(signer, refs[i % len(refs)], svc.ttl)[0] for i in range(n)]


def start_server(env: dict, port: int, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "hutong.api.asgi:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=REPO)
    import httpx

    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                time.sleep(1.0 if workers > 1 else 0.2)  # let every worker come up
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def http_bench(env: dict, card_ids, store, workers: int, n: int, concurrency: int) -> dict:
    port = _free_port()
    proc = start_server(env, port, workers)
    try:
        warm = [_post({"qr_text": c, "institution": "bench-h0", "terminal": "counter", "purpose": "registration"})
                for c in codes(store, card_ids, 1000)]
        load(port, warm, concurrency)
        base = measured_load(proc.pid, port, [GET_HEALTH] * n, concurrency)
        reqs = [_post({"qr_text": c, "institution": f"bench-h{i % 10}", "terminal": "counter",
                       "purpose": "registration"}) for i, c in enumerate(codes(store, card_ids, n))]
        res = measured_load(proc.pid, port, reqs, concurrency)
        return {"workers": workers, "verify": res, "health": base}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------- in-process
def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def in_process(store, card_ids) -> dict:
    from hutong.card import service as S
    from hutong.card import sm2
    from hutong.card.crypto import SigningKey
    from hutong.card.verify import check_code, sign_code

    out = {}
    for alg, n in (("ed25519", 20000), ("sm2", 5000)):
        if alg == "sm2" and not sm2.available():
            continue
        key = SigningKey.generate(alg)
        vk = {key.kid: key.verify_key()}
        texts = [sign_code(key, os.urandom(10), 60)[0] for _ in range(n)]
        it = iter(texts)
        out[f"{alg}_verify_code_per_s"] = rate(lambda it=it, vk=vk: check_code(next(it), vk), n)
        out[f"{alg}_sign_code_per_s"] = rate(lambda key=key: sign_code(key, b"0123456789", 60), n)
    try:  # pure-Python SM2 (gmssl) as the baseline the native binding replaces, if installed
        from gmssl import func as gfunc
        from gmssl import sm2 as gsm2

        priv = os.urandom(32).hex()
        crypt = gsm2.CryptSM2(public_key="", private_key=priv)
        crypt.public_key = crypt._kg(int(priv, 16), crypt.ecc_table["g"])
        data = b"hutong"
        sig = crypt.sign_with_sm3(data, gfunc.random_hex(crypt.para_len))
        assert crypt.verify_with_sm3(sig, data)
        out["sm2_pure_python_gmssl_verify_per_s"] = rate(lambda: crypt.verify_with_sm3(sig, data), 50)
    except ImportError:
        pass
    cid = card_ids[0]
    out["make_qr_text_per_s"] = rate(lambda: S.make_qr(store, cid), 3000)
    text = S.make_qr(store, cid)[0]
    out["qr_svg_per_s"] = rate(lambda: S.qr_svg(text), 300)
    out["qr_png_per_s"] = rate(lambda: S.qr_png(text), 200)
    qcodes = codes(store, card_ids, 3000)
    it2 = iter(qcodes)
    ctx = S.ScanContext("bench-h1", "counter", "registration")
    out["verify_scan_in_process_per_s"] = rate(lambda: S.verify_scan(store, next(it2), ctx), 3000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--cards", type=int, default=500)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--skip-http", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="hutong-card-bench-")
    url, drop_schema = args.database_url, None
    if url.startswith("postgres"):
        # A fresh schema per run (dropped at the end), as the tests do.
        from sqlalchemy import create_engine, text

        drop_schema = "card_bench_" + os.urandom(6).hex()
        admin = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{drop_schema}"'))
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{drop_schema}"
    env = {
        "HUTONG_DATA_DIR": tmp,
        "HUTONG_DATABASE_URL": url,
        "HUTONG_CARD_KEK": base64.b64encode(os.urandom(32)).decode(),
        "HUTONG_CARD_QR_TTL_SECONDS": "900",  # codes are made before the run; keep them valid throughout
    }
    store, card_ids = setup(env, args.cards)
    backend = store.engine.dialect.name
    print(f"backend: {backend}; cards: {len(card_ids)}; cpu cores: {os.cpu_count()}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    results = {"backend": backend, "in_process": in_process(store, card_ids)}
    for k, v in results["in_process"].items():
        print(f"  {k:40s} {v:10.0f}")
    if not args.skip_http:
        results["http"] = []
        for w in args.workers:
            r = http_bench(env, card_ids, store, w, args.requests, args.concurrency)
            results["http"].append(r)
            for name in ("health", "verify"):
                x = r[name]
                print(f"  HTTP {name:7s} workers={w} conc={args.concurrency}: {x['rate']:7.0f}/s  "
                      f"p50 {x['p50_ms']:.1f} ms  p99 {x['p99_ms']:.1f} ms  max {x['max_ms']:.1f} ms  "
                      f"server CPU {x['server_cpu_ms_per_req']:.2f} ms/req  client CPU {x['client_cpu_ms_per_req']:.2f} ms/req  "
                      f"n={x['n']} statuses={x['statuses']}")
    store.close()
    if drop_schema:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{drop_schema}" CASCADE'))
        admin.dispose()
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
