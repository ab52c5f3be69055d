"""Recognition benchmark: the order-time CDS hook under a large result index, and HL7 v2 ORU ingest
over MLLP against the same results posted as FHIR transactions. Both over loopback from a second
process, side by side in one run with the previous version of the code (``--previous REV``, served
from ``git archive REV`` on the same database).

    .venv/bin/python benchmarks/recognition/bench_recognition.py                       # SQLite
    .venv/bin/python benchmarks/recognition/bench_recognition.py --backend postgres    # PostgreSQL (own schema)
    .venv/bin/python benchmarks/recognition/bench_recognition.py --results 200000 --patients 20000   # smaller

1. **Hook.** ``--results`` lab results (default 1,000,000) for ``--patients`` patients (default
   100,000) across 60 hospitals. Patients are stored as FHIR resources; the results are written
   straight into the result index table (``recognition_result``, the rows the index consumer makes
   from stored results: the hook reads only these) and each patient's patient-index rows
   (``mpi_ident``, ``mpi_record``: what the patient index makes of a one-record person) likewise,
   because storing a million Observations through the FHIR API and linking 100,000 patients would
   take longer than this benchmark's budget on the shared machine. Each request is an
   ``order-sign`` call with two draft ServiceRequests (a CBC and a chest CT) for a random patient
   given by the HIS's own record number, authorised as CDS Hooks says: a JWT (ES384) signed by the
   registered client for each request (``aud`` the service URL, ``jti`` used once); cards are built
   and recorded (a write per call). Driven by ``cdsload.py`` in its own process at 1, 4 and 8
   connections. Baselines in the same run: FHIR read by id ``GET /fhir/Patient/{id}`` through the
   same server (an access token), the in-process ``recognisable_results`` call, and the previous
   version of the code on the same data.
2. **Ingest.** ``--messages`` ORU^R01 messages (default 400), each one report with ``--obx`` results
   (default 10), sent over MLLP on 4 connections, one message at a time per connection (each ACK
   after its commit); the same results as FHIR transaction Bundles (DiagnosticReport + Observations
   + Specimen, the same resources) POSTed to ``/fhir`` on 4 keep-alive connections. Resources/s compared.

Bounded in count and time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PG_URL = os.environ.get("HUTONG_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
LOINC = "http://loinc.org"
HOSPITALS = 60
CODES = [("http://loinc.org|58410-2", 7), ("https://hutong.example/fhir/CodeSystem/lab-panel|GGN", 14),
         ("http://loinc.org|24362-6", 14), ("http://loinc.org|57698-3", 30), ("http://loinc.org|4548-4", 30),
         ("http://loinc.org|24627-2", 30), ("http://loinc.org|14771-0", 7), ("http://loinc.org|24357-6", 7)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(backend: str, data_dir: Path) -> tuple[dict, str | None]:
    env = {"HUTONG_DATA_DIR": str(data_dir), "HUTONG_WORKERS": "false", "HUTONG_NATS_URL": ""}
    if backend == "sqlite":
        env["HUTONG_DATABASE_URL"] = ""
        return env, None
    from sqlalchemy import create_engine, text

    schema = "bench_rec_" + uuid.uuid4().hex[:10]
    eng = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
    with eng.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng.dispose()
    env["HUTONG_DATABASE_URL"] = f"{PG_URL}?options=-csearch_path%3D{schema}"
    return env, schema


def drop_schema(schema: str | None) -> None:
    if not schema:
        return
    from sqlalchemy import create_engine, text

    eng = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
    with eng.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    eng.dispose()


def open_store(env: dict):
    os.environ.update(env)
    from hutong.api.app import node_store
    from hutong.config import load_settings

    return node_store(load_settings())


def org(i: int) -> dict:
    from hutong.recognition import vocab as V

    city = ["2201", "2202", "2203", "2204"][i % 4]
    return {"resourceType": "Organization", "id": f"bh{i}", "name": f"基准医院{i}", "active": True,
            "extension": [{"url": V.PLATFORM_EXT, "valueCoding": {"system": V.BASE + "/CodeSystem/city-platform",
                                                                   "code": city}}],
            "type": [{"coding": [{"system": V.LEVEL_SYSTEM, "code": "3A" if i % 5 else "2A"}]}]}


CDS_ISS = "bench-his"
HOME = 3  # the ordering hospital (bh3): its HIS calls the hook for its own patients


def setup(store, patients: int, results: int, key, seed: int = 7) -> dict:
    """Hospitals, the starter catalog, patients (FHIR), their patient-index rows and result-index rows
    (direct), the HIS registered as a CDS client with ``key``; returns timings."""
    from hutong.core.clock import now_us
    from hutong.core.ids import new_id
    from hutong.mpi.tables import mpi_ident, mpi_record
    from hutong.recognition.catalog import install_starter
    from hutong.recognition.cdsauth import register_client
    from hutong.recognition.tables import recognition_result

    rng = random.Random(seed)
    t0 = time.perf_counter()
    install_starter(store)
    with store.write() as tx:
        for i in range(HOSPITALS):
            tx.update("Organization", f"bh{i}", org(i))
    batch = 2000
    for start in range(0, patients, batch):
        with store.write() as tx:
            for p in range(start, min(patients, start + batch)):
                home = p % HOSPITALS
                tx.update("Patient", f"bp{p}", {"resourceType": "Patient", "id": f"bp{p}", "gender": "female",
                                                "identifier": [{"system": f"urn:hutong:mrn:bh{home}", "value": f"M{p}"}]})
        ts = now_us()
        with store.write() as tx:
            span = range(start, min(patients, start + batch))
            tx.conn.execute(mpi_ident.insert(), [{"system": f"urn:hutong:mrn:bh{p % HOSPITALS}", "value": f"M{p}",
                                                  "patient_id": f"bp{p}"} for p in span])
            tx.conn.execute(mpi_record.insert(), [{"patient_id": f"bp{p}", "tenant": "", "person_id": f"bperson{p}",
                                                   "features": "{}", "grade": "certain", "score": 1.0,
                                                   "method": "auto", "updated_us": ts} for p in span])
    register_client(store, CDS_ISS, f"bh{HOME}", jwks={"keys": [key.as_dict(private=False)]})
    t_pat = time.perf_counter() - t0
    now = now_us()
    day = 86_400_000_000
    t1 = time.perf_counter()
    rows = []
    summary = json.dumps({"title": "血常规", "conclusion": "未见明显异常"}, ensure_ascii=False)

    def flush():
        with store.write() as tx:
            tx.conn.execute(recognition_result.insert(), rows)
        rows.clear()

    for k in range(results):
        p = k % patients
        code, window = CODES[rng.randrange(len(CODES))]
        rows.append({"res_type": "DiagnosticReport", "res_id": new_id(), "code": code, "tenant": "22",
                     "patient": f"bp{p}", "institution": f"bh{rng.randrange(HOSPITALS)}",
                     "effective_us": now - rng.randrange(0, 90 * day), "status": "final", "hidden": False,
                     "summary": summary})
        if len(rows) >= 20000:
            flush()
    if rows:
        flush()
    return {"patients_s": round(t_pat, 1), "results_s": round(time.perf_counter() - t1, 1)}


def version_tree(rev: str, into: Path) -> Path:
    """The code of ``rev`` (``git archive``) in ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start_server(env: dict, port: int, mllp_port: int = 0, tree: Path = REPO) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "uvicorn", "hutong.api.asgi:app", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--log-level", "warning", "--no-access-log"]
    e = {**os.environ, **env, "PYTHONPATH": str(tree)}
    if mllp_port:
        e["HUTONG_MLLP_PORT"] = str(mllp_port)
    proc = subprocess.Popen(cmd, env=e, cwd=tree)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def loadgen(urls: list[str], *, requests: int, connections: int, seconds: float, method: str = "GET",
            bodies: list[bytes] | None = None, headers: list[str] = ()) -> dict:
    with tempfile.TemporaryDirectory() as d:
        uf = Path(d) / "urls.txt"
        uf.write_text("\n".join(urls) + "\n")
        cmd = [sys.executable, str(REPO / "benchmarks" / "loadgen.py"), "--url-file", str(uf), "--connections",
               str(connections), "--requests", str(requests), "--seconds", str(seconds), "--method", method]
        for h in headers:
            cmd += ["--header", h]
        if bodies:
            bf = Path(d) / "bodies.txt"
            bf.write_bytes(b"\n".join(bodies) + b"\n")
            cmd += ["--body-file", str(bf)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        return json.loads(out.stdout.strip().splitlines()[-1])


def hook_body(p: int) -> bytes:
    drafts = [{"resourceType": "ServiceRequest", "id": f"sr{p}a", "status": "draft", "intent": "order",
               "code": {"coding": [{"system": LOINC, "code": "58410-2"}]}, "subject": {"reference": f"Patient/x{p}"}},
              {"resourceType": "ServiceRequest", "id": f"sr{p}b", "status": "draft", "intent": "order",
               "code": {"coding": [{"system": LOINC, "code": "24627-2"}]}, "subject": {"reference": f"Patient/x{p}"}}]
    body = {"hook": "order-sign", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/bench-doc", "patientId": f"M{p}",
                        "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                        "entry": [{"resource": d} for d in drafts]}}}
    return json.dumps(body).encode()


def signed(key, aud: str) -> str:
    """A CDS client's JWT for one request (ES384, five minutes, a fresh jti)."""
    from joserfc import jwt

    now = int(time.time())
    return jwt.encode({"alg": "ES384", "typ": "JWT", "kid": key.kid},
                      {"iss": CDS_ISS, "sub": CDS_ISS, "aud": aud, "iat": now, "exp": now + 280,
                       "jti": str(uuid.uuid4())}, key, algorithms=["ES384"])


def cdsload(url: str, key, bodies: list[bytes], connections: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "calls.tsv"
        f.write_bytes(b"".join(signed(key, url).encode() + b"\t" + b + b"\n" for b in bodies))
        out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "recognition" / "cdsload.py"), "--url", url,
                              "--requests-file", str(f), "--connections", str(connections), "--seconds", "200"],
                             capture_output=True, text=True, check=True, cwd=REPO)
        result = json.loads(out.stdout.strip().splitlines()[-1])
    if set(result["statuses"]) != {"200"}:
        raise SystemExit(f"hook calls failed: {result['statuses']}")
    return result


def in_process(store, patients: int) -> dict:
    """The domain call alone (no HTTP, no card, no write), current code."""
    from hutong.recognition.service import recognisable_results, resolve_patient

    rng = random.Random(11)
    sample = [rng.randrange(HOME, patients, HOSPITALS) for _ in range(300)]
    lat, offers = [], 0
    with store.read() as tx:
        recognisable_results(tx, ["bp0"], ["http://loinc.org|58410-2"], "bh1")  # warm caches
    for p in sample:
        t0 = time.perf_counter()
        with store.read() as tx:
            pids = resolve_patient(tx, f"M{p}", None, f"bh{HOME}")
            offers += len(recognisable_results(tx, pids, ["http://loinc.org|58410-2", "http://loinc.org|24627-2"],
                                               f"bh{HOME}"))
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"calls": len(lat), "p50_ms": round(1000 * lat[len(lat) // 2], 2),
            "p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 2), "offers_per_call": round(offers / len(lat), 2)}


def bench_hook(base: str, key, token: str, patients: int, n: int, levels: list[int]) -> dict:
    import httpx

    rng = random.Random(11)
    url = f"{base}/cds-services/recognition-order-sign"
    mine = list(range(HOME, patients, HOSPITALS))  # the HIS's record numbers are its own patients'
    cdsload(url, key, [hook_body(rng.choice(mine)) for _ in range(200)], 4)  # warm-up
    out: dict = {}
    for c in levels:
        out[f"hook_{c}conn"] = cdsload(url, key, [hook_body(rng.choice(mine)) for _ in range(n)], c)
    picks = [rng.randrange(patients) for _ in range(n)]
    out["patient_read_8conn"] = loadgen([f"{base}/fhir/Patient/bp{p}" for p in picks], requests=n, connections=8,
                                        seconds=120, headers=[f"Authorization: Bearer {token}"])
    cards = 0
    with httpx.Client(timeout=30) as client:
        for _ in range(50):
            r = client.post(url, content=hook_body(rng.choice(mine)),
                            headers={"content-type": "application/json", "authorization": f"Bearer {signed(key, url)}"})
            r.raise_for_status()
            cards += len(r.json()["cards"])
    out["cards_per_call_sample"] = round(cards / 50, 2)
    return out


def oru_message(i: int, obx: int, patient: int) -> bytes:
    """One ORU^R01: a CBC report of ``obx`` NM results for a bh0 patient (by its record number)."""
    segs = [f"MSH|^~\\&|LIS|bh0|HUTONG|JL|20261201083000+0800||ORU^R01^ORU_R01|B{i}|P|2.5|||||CHN|UNICODE UTF-8",
            f"PID|1||M{patient}^^^bh0^MR||王^小明||19900307|M",
            f"OBR|1||BR{i}|58410-2^血常规^LN|||20261201080000",
            "SPM|1|||BLD^Whole blood^HL70487"]
    for k in range(obx):
        segs.append(f"OBX|{k + 1}|NM|6690-{k}^项目{k}^LN||{5 + k * 0.1:.2f}|10*9/L^^UCUM|3.5-9.5|N|||F")
    return ("\r".join(segs) + "\r").encode()


def fhir_bundle(i: int, obx: int, patient: int) -> bytes:
    meta = {"source": "urn:hutong:org:bh0"}
    subj = {"reference": f"Patient/bp{patient}"}
    perf = [{"reference": "Organization/bh0"}]
    entries = [{"fullUrl": "urn:uuid:" + (sid := str(uuid.uuid4())),
                "resource": {"resourceType": "Specimen", "meta": meta, "subject": subj,
                             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0487", "code": "BLD"}]}},
                "request": {"method": "POST", "url": "Specimen"}}]
    results = []
    for k in range(obx):
        oid = str(uuid.uuid4())
        results.append({"reference": f"urn:uuid:{oid}"})
        entries.append({"fullUrl": f"urn:uuid:{oid}", "resource": {
            "resourceType": "Observation", "meta": meta, "status": "final", "subject": subj, "performer": perf,
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": f"6690-{k}", "display": f"项目{k}"}], "text": f"项目{k}"},
            "effectiveDateTime": "2026-12-01T08:00:00+08:00",
            "valueQuantity": {"value": round(5 + k * 0.1, 2), "unit": "10*9/L", "system": "http://unitsofmeasure.org", "code": "10*9/L"},
            "referenceRange": [{"low": {"value": 3.5, "unit": "10*9/L", "system": "http://unitsofmeasure.org", "code": "10*9/L"},
                                "high": {"value": 9.5, "unit": "10*9/L", "system": "http://unitsofmeasure.org", "code": "10*9/L"}}],
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}],
            "specimen": {"reference": f"urn:uuid:{sid}"}}, "request": {"method": "POST", "url": "Observation"}})
    entries.append({"resource": {"resourceType": "DiagnosticReport", "meta": meta, "status": "final",
                                 "identifier": [{"system": "urn:hutong:report:bh0", "value": f"FR{i}"}],
                                 "code": {"coding": [{"system": LOINC, "code": "58410-2"}], "text": "血常规"},
                                 "subject": subj, "performer": perf, "effectiveDateTime": "2026-12-01T08:00:00+08:00",
                                 "result": results, "specimen": [{"reference": f"urn:uuid:{sid}"}]},
                    "request": {"method": "POST", "url": "DiagnosticReport"}})
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


async def _mllp_client(port: int, messages: list[bytes], lat: list[float], codes: dict) -> None:
    from hutong.recognition.mllp import END, frame

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for m in messages:
            t0 = time.perf_counter()
            writer.write(frame(m))
            block = await reader.readuntil(END)
            lat.append(time.perf_counter() - t0)
            code = block.split(b"MSA|", 1)[1][:2].decode()
            codes[code] = codes.get(code, 0) + 1
    finally:
        writer.close()


def bench_ingest(mllp: int, base: str, token: str, messages: int, obx: int, patients: int, offset: int,
                 connections: int = 4) -> dict:
    per_message = obx + 2  # Observations + DiagnosticReport + Specimen
    rng = random.Random(5 + offset)
    home = [p for p in range(0, patients, HOSPITALS)]  # patients of bh0 (their record numbers are bh0's)
    msgs = [oru_message(offset + i, obx, rng.choice(home)) for i in range(messages + 40)]
    lat: list[float] = []
    codes: dict = {}

    async def run(batch):
        chunks = [batch[k::connections] for k in range(connections)]
        await asyncio.gather(*[_mllp_client(mllp, c, lat, codes) for c in chunks])

    asyncio.run(run(msgs[:40]))  # warm-up
    lat.clear()
    codes.clear()
    t0 = time.perf_counter()
    asyncio.run(run(msgs[40:]))
    elapsed = time.perf_counter() - t0
    lat.sort()
    mllp_res = {"messages": len(lat), "seconds": round(elapsed, 2), "messages_per_s": round(len(lat) / elapsed, 1),
                "resources_per_s": round(len(lat) * per_message / elapsed, 1),
                "p50_ms": round(1000 * lat[len(lat) // 2], 1), "p95_ms": round(1000 * lat[int(len(lat) * 0.95)], 1),
                "acks": codes}
    bundles = [fhir_bundle(offset + i, obx, rng.choice(home)) for i in range(messages + 40)]
    hdr = ["Content-Type: application/fhir+json", f"Authorization: Bearer {token}"]
    loadgen([f"{base}/fhir"], requests=40, connections=connections, seconds=60,
            method="POST", bodies=bundles[:40], headers=hdr)
    fhir = loadgen([f"{base}/fhir"], requests=messages, connections=connections, seconds=300,
                   method="POST", bodies=bundles[40:], headers=hdr)
    fhir["resources_per_s"] = round(fhir["rps"] * per_message, 1)
    return {"resources_per_message": per_message, "mllp": mllp_res, "fhir_transaction": fhir,
            "ratio": round(mllp_res["resources_per_s"] / fhir["resources_per_s"], 3) if fhir["resources_per_s"] else None}


def access_token(store) -> str:
    """A system client's access token (SMART Backend Services client registered in the store)."""
    from joserfc.jwk import ECKey

    from hutong.security.tokens import TokenService

    service = TokenService(store, store.settings)
    scope = "system/*.* hutong/*"
    if service.client("bench-system") is None:
        k = ECKey.generate_key("P-384", parameters={"kid": "bench", "alg": "ES384"})
        service.add_client("recognition benchmark", scope, jwks={"keys": [k.as_dict(private=False)]},
                           client_id="bench-system")
    return service.mint("bench-system", frozenset(scope.split()), ttl_s=3600)


def main() -> None:
    from joserfc.jwk import ECKey

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000, help="hook calls per connection level")
    ap.add_argument("--levels", default="1,4,8", help="connection counts for the hook")
    ap.add_argument("--messages", type=int, default=400)
    ap.add_argument("--obx", type=int, default=10)
    ap.add_argument("--previous", default="3ec8b21", help="git revision measured beside the working tree ('' for none)")
    ap.add_argument("--skip-hook", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x]
    out = {"backend": args.backend, "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    key = ECKey.generate_key("P-384", parameters={"kid": "bench-his-1"})
    with tempfile.TemporaryDirectory() as d:
        env, schema = settings_env(args.backend, Path(d) / "data")
        versions = [("current", REPO)]
        if args.previous:
            versions.insert(0, (f"previous ({args.previous})", version_tree(args.previous, Path(d) / "previous")))
        try:
            store = open_store(env)
            out["setup"] = setup(store, args.patients, args.results, key)
            out["setup"].update(patients=args.patients, results=args.results)
            token = access_token(store)
            if not args.skip_hook:
                out["in_process_current"] = in_process(store, args.patients)
            for n, (name, tree) in enumerate(versions):
                port, mllp = _free_port(), _free_port()
                proc = start_server(env, port, mllp_port=mllp, tree=tree)
                try:
                    res: dict = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
                    base = f"http://127.0.0.1:{port}"
                    if not args.skip_hook:
                        res.update(bench_hook(base, key, token, args.patients, args.requests, levels))
                    if not args.skip_ingest:
                        res["ingest"] = bench_ingest(mllp, base, token, args.messages, args.obx, args.patients,
                                                     offset=100_000 * (n + 1))
                    out[name] = res
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                print(json.dumps({name: out[name]}, ensure_ascii=False), file=sys.stderr, flush=True)
            store.close()
        finally:
            drop_schema(schema)
    out["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
