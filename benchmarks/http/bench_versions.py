"""The HTTP paths, previous version against this one, side by side in one run, with the HTTP floor.

    .venv/bin/python benchmarks/http/bench_versions.py                    # previous = a38ccd4, SQLite
    .venv/bin/python benchmarks/http/bench_versions.py --backends sqlite,postgres --rounds 2

For each version (a git worktree of the previous commit, and this checkout) and each backend: a
store with Synthea bundles, 10 institutions and 500 health cards; a server with 2 uvicorn workers;
then ``wrk`` (C, a second process) for read by id over a seeded random sample of ids, for a mix of
searches and for card verification with a distinct fresh code per request; and transaction-Bundle
ingest into an empty store from 4 client threads. The floor is a bare Starlette app answering a
small JSON document under the same uvicorn settings. Versions alternate round by round, so the
spread of a version's rounds is the run-to-run noise the comparison has to beat.

Since the security capability landed, "current" is measured twice: **current-open** serves this
tree with security bypassed (``benchmarks/security/open_app.py``: the skeleton's own cost, like for
like with the previous version, which had no authentication), and **current** is the product as
shipped: every request carries a Bearer access token from ``hutong auth token`` and is checked,
authorised and audited.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYNTHEA = REPO.parent / "shared" / "data" / "synthea_fhir_r4" / "smart_2019"
PG = os.environ.get("HUTONG_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- preparing
_PREPARE = textwrap.dedent(r"""
    import json, random, sys
    from pathlib import Path
    out = Path(sys.argv[1]); bundles = [Path(p) for p in sys.argv[2].split(",") if p]; cards = int(sys.argv[3])
    codes_n = int(sys.argv[4])
    from hutong.config import load_settings
    settings = load_settings()
    try:
        from hutong.api.app import node_store
        store = node_store(settings)
    except ImportError:
        from hutong.store import Store
        store = Store.open(settings)
    try:
        from hutong.bulk.load import import_paths
    except ImportError:
        from hutong.bulk import import_paths
    if bundles:
        summary = import_paths(store, bundles)
        assert not summary.failed, summary.render()
    from hutong.card import service as S, codec
    from hutong.card.verify import sign_code
    for i in range(10):
        store.update("Organization", f"bench-h{i}", {"resourceType": "Organization", "id": f"bench-h{i}",
                                                      "name": f"基准医院{i}"})
    with store.write() as tx:
        for i in range(cards):
            tx.update("Patient", f"bench-p{i}", {"resourceType": "Patient", "id": f"bench-p{i}",
                      "name": [{"family": "王", "given": [f"测{i}"]}],
                      "identifier": [{"system": f"urn:hutong:mrn:bench-h{i % 10}", "value": f"MR{i:06d}"}]})
    ids = [S.issue_card(store, f"Patient/bench-p{i}", issued_by="bench")[0]["card_id"] for i in range(cards)]
    svc = S.service_for(store); signer = svc.keys.signer()
    refs = [codec.card_id_to_ref(c) for c in ids]
    with open(out / "verify.txt", "w") as fh:
        for i in range(codes_n):
            text = sign_code(signer, refs[i % len(refs)], svc.ttl)[0]
            fh.write(json.dumps({"qr_text": text, "institution": f"bench-h{i % 10}", "terminal": "counter",
                                 "purpose": "registration"}, separators=(",", ":")) + "\n")
    from sqlalchemy import text as sql
    with store.read() as tx:
        rows = tx.conn.execute(sql("SELECT res_type, res_id FROM resource WHERE deleted = false AND "
                                   "res_type IN ('Patient','Observation','Encounter','Condition')")).all()
        rng = random.Random(7)
        sample = rng.sample(rows, min(5000, len(rows)))
        with open(out / "reads.txt", "w") as fh:
            for t, i in sample:
                fh.write(f"/fhir/{t}/{i}\n")
        pats = [i for t, i in rows if t == "Patient" and not i.startswith("bench-")]
        obs = tx.conn.execute(sql("SELECT content FROM resource WHERE res_type='Observation' AND deleted=false "
                                  "LIMIT 3000")).all()
    codes = sorted({json.loads(c)["code"]["coding"][0]["code"] for (c,) in obs})
    fams = sorted({json.loads(c)["name"][0]["family"] for (c,) in store.engine.connect().execute(
        sql("SELECT content FROM resource WHERE res_type='Patient' AND res_id NOT LIKE 'bench-%' LIMIT 500")).all()})
    from urllib.parse import quote
    with open(out / "searches.txt", "w") as fh:
        for k in range(2000):
            p = rng.choice(pats); kind = k % 4
            if kind == 0:
                code = quote("http://loinc.org|" + rng.choice(codes), safe="")
                fh.write(f"/fhir/Observation?patient={p}&code={code}\n")
            elif kind == 1:
                fh.write(f"/fhir/Encounter?patient={p}&date=ge2010-01-01&_count=20\n")
            elif kind == 2:
                fh.write(f"/fhir/Patient?family={quote(rng.choice(fams), safe='')}&_count=10\n")
            else:
                fh.write(f"/fhir/Condition?patient={p}\n")
    store.close()
""")

_LUA = textwrap.dedent(r"""
    local lines = {}
    local method = "__METHOD__"
    init = function(args)
      for line in io.lines("__FILE__") do lines[#lines + 1] = line end
      counter = tonumber(args[1] or "0")
    end
    request = function()
      counter = counter + 1
      local line = lines[(counter % #lines) + 1]
      local headers = {}
      if "__TOKEN__" ~= "" then headers["Authorization"] = "Bearer __TOKEN__" end
      if method == "POST" then
        headers["Content-Type"] = "application/json"
        return wrk.format("POST", "/api/card/verify", headers, line)
      end
      return wrk.format("GET", line, headers)
    end
""")


def _env(version: Path, data: Path, db_url: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(version), "HUTONG_DATA_DIR": str(data), "HUTONG_WORKERS": "false",
           "HUTONG_CARD_QR_TTL_SECONDS": "900"}
    env["HUTONG_DATABASE_URL"] = db_url
    return env


def _pg_schema_url() -> tuple[str, str]:
    schema = "bench_" + uuid.uuid4().hex[:10]
    subprocess.run(["psql", PG, "-qc", f'CREATE SCHEMA "{schema}"'], check=True)
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}options=-csearch_path%3D{schema}", schema


def _drop_schema(schema: str) -> None:
    subprocess.run(["psql", PG, "-qc", f'DROP SCHEMA "{schema}" CASCADE'], check=False)


def prepare(version: Path, data: Path, db_url: str, bundles: list[Path], codes_n: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", _PREPARE, str(data), ",".join(map(str, bundles)), "500", str(codes_n)],
                   env=_env(version, data, db_url), check=True, cwd=version)


def serve(version: Path, env: dict, app: str = "hutong.api.asgi:app", workers: int = 2) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                            env=env, cwd=version, stdout=subprocess.DEVNULL)
    import httpx

    deadline = time.time() + 90
    path = "/health" if app.startswith("hutong") else "/"
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                time.sleep(1.5)  # every worker up
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server for {version} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk(port: int, lines_file: Path | None, method: str = "GET", seconds: int = 10, connections: int = 16,
        path: str = "/", token: str = "") -> dict:
    """Run wrk (2 threads) and parse rate, latency percentiles and errors."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    script = None
    if lines_file is not None:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(_LUA.replace("__FILE__", str(lines_file)).replace("__METHOD__", method)
                          .replace("__TOKEN__", token))
        cmd += ["-s", str(script)]
    elif token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if script:
        script.unlink()
    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rate": round(rate), "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else ""}


def access_token(version: Path, env: dict, data: Path) -> str:
    """A fresh demo system-client token from the running node (``hutong auth token``, issue 11)."""
    out = subprocess.run([sys.executable, "-m", "hutong.cli", "auth", "token", "--data-dir", str(data),
                          "--scope", "system/*.* hutong/*"],
                         env=env, cwd=version, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1].strip()


def ingest(port: int, bundles: list[Path], threads: int = 4, token: str = "") -> dict:
    import httpx

    bodies = [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in bundles]
    resources = sum(len(json.loads(b)["entry"]) for b in bodies)
    queue = list(range(len(bodies)))
    lock = threading.Lock()
    failures = []

    def worker():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    i = queue.pop()
                headers = {"Content-Type": "application/fhir+json"}
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                r = client.post("/fhir", content=bodies[i], headers=headers)
                if r.status_code != 200:
                    failures.append(r.status_code)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"rate": round(resources / elapsed), "resources": resources, "failures": len(failures)}


def measure(version: Path, backend: str, bundles: list[Path], ingest_bundles: list[Path], seconds: int,
            workdir: Path, app: str = "hutong.api.asgi:app", secure: bool = False) -> dict:
    out: dict = {}
    data = workdir / f"data-{uuid.uuid4().hex[:6]}"
    schema = None
    db_url = ""
    if backend == "postgres":
        db_url, schema = _pg_schema_url()
    try:
        codes_n = max(20000, 4000 * seconds)
        prepare(version, data, db_url, bundles, codes_n)
        env = _env(version, data, db_url)
        proc, port = serve(version, env, app=app)
        try:
            token = access_token(version, env, data) if secure else ""
            out["read"] = wrk(port, data / "reads.txt", seconds=seconds, token=token)
            out["search"] = wrk(port, data / "searches.txt", seconds=seconds, token=token)
            out["verify"] = wrk(port, data / "verify.txt", method="POST", seconds=seconds, token=token)
            out["health"] = wrk(port, None, seconds=max(3, seconds // 2), path="/health")
        finally:
            stop(proc)
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if schema:
            _drop_schema(schema)
    # ingest into an empty store
    data = workdir / f"data-{uuid.uuid4().hex[:6]}"
    data.mkdir(parents=True)
    if backend == "postgres":
        db_url, schema = _pg_schema_url()
    try:
        env = _env(version, data, db_url)
        proc, port = serve(version, env, app=app)
        try:
            out["ingest"] = ingest(port, ingest_bundles, token=access_token(version, env, data) if secure else "")
        finally:
            stop(proc)
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if backend == "postgres":
            _drop_schema(schema)
    return out


def floor(seconds: int) -> dict:
    proc, port = serve(HERE, {**os.environ, "PYTHONPATH": str(HERE)}, app="floor_app:app")
    try:
        return wrk(port, None, seconds=seconds, path="/")
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--previous", default="a38ccd4", help="git revision of the previous version")
    ap.add_argument("--backends", default="sqlite")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bundles", type=int, default=60, help="Synthea bundles loaded before reads/searches")
    ap.add_argument("--ingest-bundles", type=int, default=120)
    ap.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="hutong-bench-versions-"))
    prev = workdir / "previous"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(prev), args.previous], check=True,
                   capture_output=True)
    files = sorted(SYNTHEA.glob("*.json*"))
    rng = random.Random(11)
    rng.shuffle(files)
    bundles, ingest_bundles = files[: args.bundles], files[args.bundles: args.bundles + args.ingest_bundles]
    versions = {"previous": (prev, "hutong.api.asgi:app", False),
                "current-open": (REPO, "benchmarks.security.open_app:app", False),
                "current": (REPO, "hutong.api.asgi:app", True)}
    results: dict = {"floor": [], "runs": []}
    try:
        for rnd in range(args.rounds):
            results["floor"].append(floor(args.seconds))
            print(f"round {rnd + 1} floor: {results['floor'][-1]}", flush=True)
            for backend in args.backends.split(","):
                for name, (root, app, secure) in versions.items():
                    res = measure(root, backend, bundles, ingest_bundles, args.seconds, workdir, app=app, secure=secure)
                    results["runs"].append({"round": rnd + 1, "version": name, "backend": backend, **res})
                    print(f"round {rnd + 1} {backend} {name}: {json.dumps(res)}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(prev)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(report(results))


def report(results: dict) -> str:
    """A Markdown table: median per version and backend, with the min–max spread over rounds."""
    names = ("previous", "current-open", "current")
    lines = ["| backend | metric | " + " | ".join(names) + " | " + " | ".join(f"spread {n}" for n in names) + " |",
             "|---|---|" + "---|" * (2 * len(names))]
    backends = sorted({r["backend"] for r in results["runs"]})
    for backend in backends:
        for metric in ("ingest", "read", "search", "verify", "health"):
            cells = {}
            for version in names:
                vals = [r[metric]["rate"] for r in results["runs"] if r["backend"] == backend and r["version"] == version]
                p99 = [r[metric].get("p99_ms") for r in results["runs"] if r["backend"] == backend
                       and r["version"] == version and r[metric].get("p99_ms") is not None]
                vals.sort()
                med = vals[len(vals) // 2] if vals else 0
                cells[version] = (f"{med:,}/s" + (f", p99 {sorted(p99)[len(p99) // 2]:.1f} ms" if p99 else ""),
                                  f"{vals[0]:,}–{vals[-1]:,}" if vals else "")
            lines.append(f"| {backend} | {metric} | " + " | ".join(cells[n][0] for n in names) + " | "
                         + " | ".join(cells[n][1] for n in names) + " |")
    fl = sorted(f["rate"] for f in results["floor"])
    lines.append(f"\nHTTP floor (bare Starlette, 2 workers, wrk): median {fl[len(fl) // 2]:,} req/s "
                 f"(rounds: {', '.join(f'{x:,}' for x in fl)})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
