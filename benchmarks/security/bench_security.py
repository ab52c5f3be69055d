"""Security benchmark: what token checking and audit cost, side by side with the previous version.

    .venv/bin/python benchmarks/security/bench_security.py [--patients 2000] [--seconds 5] [--rounds 5]

One SQLite store seeded with ``--patients`` Patients and one Observation each. Three servers run at
once on the same database and are loaded one at a time, in bursts of ``--seconds``, ``--rounds``
times, the order rotated every round (the shared machine's load drifts; interleaving puts every
version under the same drift, and the cost is also given per round):

- **previous**: the last commit before the security capability (``64b970c``, extracted with ``git
  archive`` into a temporary folder), serving open (no credentials, no audit);
- **open**: this tree with security bypassed (``benchmarks/security/open_app.py``: no token check, no
  policy, no audit, no security middleware — headers, rate limits, detection) — the like-for-like baseline, since main moved on since ``64b970c``;
- **secure**: this tree: every request carries a Bearer access token (ES256, verified and cached),
  the policy is checked, and every read/search is audited (queued, appended to the hash chain in
  batches by a background thread).

Each serves ``uvicorn hutong.api.asgi:app`` (one worker) in its own process; ``benchmarks/loadgen.py``
drives read-by-id and a search over keep-alive connections. Then: token issuance per second
(client assertions signed beforehand, posted one after another to ``POST /auth/token``), and audit
verification time (``hutong.security.audit.verify`` over the events the runs wrote, and over a chain of
``--chain`` synthetic events), reported per million. Results: ``results.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PREVIOUS = "64b970c"
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(settings, n: int) -> None:
    from hutong.api.app import node_store

    store = node_store(settings)
    try:
        for start in range(0, n, 200):
            with store.write() as tx:
                for i in range(start, min(n, start + 200)):
                    tx.update("Patient", f"p{i}", {"resourceType": "Patient", "id": f"p{i}",
                                                   "gender": random.choice(["male", "female"]),
                                                   "name": [{"family": "王", "given": [f"测{i}"]}]})
                    tx.update("Observation", f"o{i}", {
                        "resourceType": "Observation", "id": f"o{i}", "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                        "subject": {"reference": f"Patient/p{i}"}})
    finally:
        store.close()


def serve(pythonpath: str, settings, port: int, log, module: str = "hutong.api.asgi:app") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": pythonpath, "HUTONG_DATA_DIR": str(settings.data_dir),
           "HUTONG_DATABASE_URL": "", "HUTONG_WORKERS": "0", "HUTONG_NATS_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", module, "--port", str(port),
                             "--log-level", "warning", "--no-access-log"], cwd=pythonpath, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"server did not start ({pythonpath})")
        time.sleep(0.3)


def load(base: str, paths: list[str], seconds: float, connections: int, header: str | None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(base + p for p in paths))
    args = [sys.executable, str(REPO / "benchmarks" / "loadgen.py"), "--url-file", fh.name, "--connections",
            str(connections), "--requests", "10000000", "--seconds", str(seconds)]
    if header:
        args += ["--header", header]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    os.unlink(fh.name)
    return json.loads(out.stdout)


class Server:
    """One node served by uvicorn in its own process (started once, loaded in bursts)."""

    def __init__(self, label: str, pythonpath: str, settings, module: str = "hutong.api.asgi:app"):
        self.label = label
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(settings.data_dir) / f"server-{label}.log", "wb")
        self.proc = serve(pythonpath, settings, self.port, self.log, module)

    def stop(self) -> None:
        os.killpg(self.proc.pid, 15)
        self.proc.wait(30)
        self.log.close()


def interleaved(servers: dict[str, tuple[Server, str | None]], n: int, seconds: float, connections: int,
                rounds: int) -> dict:
    """Bursts of read-by-id and search on each server in turn, ``rounds`` times, the order rotated
    every round: all servers see the same drift of the shared machine's load."""
    reads = [f"/fhir/Patient/p{random.randrange(n)}" for _ in range(5000)]
    searches = [f"/fhir/Observation?patient=p{random.randrange(n)}" for _ in range(2000)]
    for server, token in servers.values():  # warm-up
        header = f"Authorization: Bearer {token}" if token else None
        load(server.base, reads[:200], 2, connections, header)
        load(server.base, searches[:100], 1, connections, header)
    out: dict[str, dict[str, list]] = {label: {"read": [], "search": []} for label in servers}
    labels = list(servers)
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for kind, paths in (("read", reads), ("search", searches)):
            for label in order:
                server, token = servers[label]
                header = f"Authorization: Bearer {token}" if token else None
                out[label][kind].append(load(server.base, paths, seconds, connections, header))
    return out


def token_issuance(settings, seconds: float) -> dict:
    """Tokens per second from POST /auth/token (one connection, assertions signed beforehand)."""
    from joserfc.jwk import ECKey

    from hutong.api.app import node_store
    from hutong.security.tokens import TokenService
    from tests.security.conftest import Institution

    store = node_store(settings)
    try:
        inst = Institution(store, "system/*.rs")
    finally:
        store.close()
    assert TokenService and ECKey
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(Path(settings.data_dir) / "server-tokens.log", "wb")
    proc = serve(str(REPO), settings, port, log)
    try:
        forms = [inst.form(base + "/auth/token", "system/*.rs") for _ in range(4000)]
        done = 0
        with httpx.Client() as c:
            c.post(base + "/auth/token", data=forms[-1]).raise_for_status()
            start = time.perf_counter()
            while done < len(forms) - 1 and time.perf_counter() - start < seconds:
                r = c.post(base + "/auth/token", data=forms[done])
                assert r.status_code == 200, r.text
                done += 1
            elapsed = time.perf_counter() - start
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
        log.close()
    return {"tokens": done, "seconds": round(elapsed, 2), "per_second": round(done / elapsed, 1)}


def verification(settings, chain: int) -> dict:
    from hutong.api.app import node_store
    from hutong.core.caller import Caller
    from hutong.security import audit

    store = node_store(settings)
    try:
        t0 = time.perf_counter()
        existing = audit.verify(store)
        t_existing = time.perf_counter() - t0
        caller = Caller(client_id="bench", institution="h1", roles=frozenset({"system"}), auth="token")
        trail = audit.AuditTrail(store, settings)
        t0 = time.perf_counter()
        for start in range(0, chain, 2000):
            entries = [audit.Entry(audit.now_us(), "R", "read", caller, "127.0.0.1", "TREAT", "0", [f"p{i}"],
                                   [f"Patient/p{i}"]) for i in range(start, min(chain, start + 2000))]
            with store.write() as tx:
                audit.append(tx.conn, entries)
        t_append = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = audit.verify(store)
        t_verify = time.perf_counter() - t0
        assert result.ok, result.text()
        assert trail
    finally:
        store.close()
    return {"events_from_runs": existing.checked, "verify_runs_s": round(t_existing, 2),
            "chain_events": result.checked, "append_s": round(t_append, 2), "verify_s": round(t_verify, 2),
            "verify_s_per_million": round(t_verify / result.checked * 1e6, 1),
            "append_events_per_s": round(chain / t_append, 0)}


def extract(rev: str, folder: Path) -> Path:
    """The tree of commit ``rev`` in ``folder`` (``git archive``)."""
    if not folder.exists():
        folder.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=5, help="length of one burst")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--chain", type=int, default=200_000)
    ap.add_argument("--workdir", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secure-before", default="", help="also serve this commit (secure) in the same rounds")
    args = ap.parse_args()
    from hutong.config import load_settings

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-security-"))
    prev = extract(PREVIOUS, work / "previous")
    settings = load_settings(data_dir=work / "data", database_url="", workers=False, nats_url="")
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    seed(settings, args.patients)
    from hutong.api.app import node_store
    from tests.conftest import bootstrap_token

    store = node_store(settings)
    token = bootstrap_token(store, frozenset({"system/*.rs"}))
    store.close()
    results = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
               "patients": args.patients, "seconds": args.seconds, "connections": args.connections}
    servers = {"previous": (Server("previous", str(prev), settings), None),
               "open": (Server("open", str(REPO), settings, "benchmarks.security.open_app:app"), None),
               "secure": (Server("secure", str(REPO), settings), token)}
    if args.secure_before:  # an earlier secure tree, token and audit on, measured in the same rounds
        servers["secure-before"] = (Server("secure-before", str(extract(args.secure_before, work / "before")),
                                           settings), token)
    try:
        rounds = interleaved(servers, args.patients, args.seconds, args.connections, args.rounds)
    finally:
        for server, _ in servers.values():
            server.stop()
    results["rounds"] = rounds
    for label, runs in rounds.items():
        results[label] = {kind: sorted(runs[kind], key=lambda x: x["rps"])[len(runs[kind]) // 2]
                          for kind in ("read", "search")}
    # the cost of security per round (secure against open in the same round), and its median
    results["cost_per_round"] = {
        kind: [round(100 * (1 - s["rps"] / o["rps"]), 1) for o, s in zip(rounds["open"][kind], rounds["secure"][kind],
                                                                          strict=True)]
        for kind in ("read", "search")}
    results["cost_median"] = {kind: sorted(v)[len(v) // 2] for kind, v in results["cost_per_round"].items()}
    results["tokens"] = token_issuance(settings, min(args.seconds, 10))
    results["audit"] = verification(settings, args.chain)
    results["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    for kind in ("read", "search"):
        for label in rounds:
            r = results[label][kind]
            print(f"{kind:7s} {label:9s} {r['rps']:8.1f} rps p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms {r['statuses']}")
        o, s = results["open"][kind], results["secure"][kind]
        print(f"{kind:7s} cost of security (secure vs open, same tree): medians {100 * (1 - s['rps'] / o['rps']):.1f}%, "
              f"per round {results['cost_per_round'][kind]} (median {results['cost_median'][kind]}%)")
        print(f"{kind:7s} rounds rps: " + "; ".join(
            f"{label} {[r['rps'] for r in rounds[label][kind]]}" for label in rounds))
    print("tokens", results["tokens"])
    print("audit", results["audit"])
    print(results["uptime"], "/", results["uptime_after"])


if __name__ == "__main__":
    main()
