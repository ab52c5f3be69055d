"""Consult benchmark: 1,700 doctors and 5,000 residents, 2,000 open conversations, on one live server
(loopback, SQLite in a temporary folder).

Measures, side by side in one run:
- **message delivery latency**: a doctor's ``POST /api/consult/items/{id}/messages`` until the resident's
  open server-sent-event stream (``GET …/events``) delivers it, with ``--listeners`` streams open at once
  on different conversations; baselines: the event bus alone (``publish_sync`` → subscriber, no HTTP, no
  store) and the raw store write of the same Communication (no event);
- **queue pages**: the doctor's desk (``GET /api/consult/desk`` and the HTML page ``/workstation/consult``)
  and a department queue; baseline: the FHIR search a hospital system would use for the same queue
  (``GET /fhir/Task?owner=…&status=requested``).

Bounded: every loop has a fixed count. Run: ``python benchmarks/consult/bench_consult.py`` (``--nats ''``
for database-carried events; by default a private nats-server with JetStream). Prints the figures; nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hutong.api.app import create_app, node_store  # noqa: E402
from hutong.config import load_settings  # noqa: E402
from hutong.consult import consultation as cs  # noqa: E402
from hutong.consult.work import Env  # noqa: E402
from hutong.core.ids import new_id  # noqa: E402

B = "https://hutong.example/fhir"
DEPTS = ["03.01", "03.02", "03.04", "03.07", "04.01", "05", "07", "13"]
TEXTS = {"03.01": "咳嗽两周有痰", "03.02": "胃胀反酸一个月", "03.04": "血压控制不好头晕", "03.07": "血糖偏高口渴",
         "04.01": "腹股沟有个包", "05": "月经不规律", "07": "孩子发烧两天", "13": "手上起红疹很痒"}


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def line(name, values_ms):
    return (f"{name:<58} n={len(values_ms):>5}  p50={pct(values_ms, .5):8.2f} ms  p90={pct(values_ms, .9):8.2f} ms  "
            f"p99={pct(values_ms, .99):8.2f} ms")


def seed(store, doctors: int, residents: int, hospitals: int) -> dict:
    orgs = [f"org-{i:03d}" for i in range(hospitals)]
    roles = []
    with store.write() as tx:
        for i, o in enumerate(orgs):
            tx.update("Organization", o, {"resourceType": "Organization", "id": o, "active": True, "name": f"医院{i}",
                                          "type": [{"coding": [{"system": f"{B}/CodeSystem/institution-level",
                                                                "code": "3A"}]}]})
    for start in range(0, doctors, 500):
        with store.write() as tx:
            for i in range(start, min(doctors, start + 500)):
                rid = f"prr-{i:05d}"
                org, dept = orgs[i % hospitals], DEPTS[(i // hospitals) % len(DEPTS)]
                tx.update("PractitionerRole", rid, {
                    "resourceType": "PractitionerRole", "id": rid, "active": True,
                    "practitioner": {"display": f"医生{i}"}, "organization": {"reference": f"Organization/{org}"},
                    "code": [{"coding": [{"system": f"{B}/CodeSystem/practitioner-role", "code": "online-consultation"}]}],
                    "specialty": [{"coding": [{"system": f"{B}/CodeSystem/department", "code": dept}]}]})
                roles.append((rid, org, dept))
    patients = []
    for start in range(0, residents, 1000):
        with store.write() as tx:
            for i in range(start, min(residents, start + 1000)):
                pid = f"pat-{i:05d}"
                tx.update("Patient", pid, {"resourceType": "Patient", "id": pid, "name": [{"text": f"居民{i}"}]})
                patients.append(pid)
    return {"orgs": orgs, "roles": roles, "patients": patients}


def open_conversations(env, world, n: int, waiting: int, rng) -> list[tuple[str, str, str]]:
    """``n`` accepted conversations (item, doctor, patient) and ``waiting`` unanswered questions."""
    out = []
    roles = world["roles"]
    for i in range(n + waiting):
        rid, org, dept = roles[rng.randrange(len(roles))]
        pid = world["patients"][i % len(world["patients"])]
        asked = cs.ask_question(env, patient=f"Patient/{pid}", text=TEXTS[dept], hospital=f"Organization/{org}",
                                department=dept)
        if i < n:
            cs.accept_consultation(env, asked["id"], f"PractitionerRole/{rid}")
            out.append((asked["id"], f"PractitionerRole/{rid}", f"Patient/{pid}"))
    return out


def serve(app):
    from tests.conftest import LiveServer

    live = LiveServer(app)
    live.__enter__()
    return live


async def delivery(base: str, convs, listeners: int, messages: int, rng) -> tuple[list[float], int]:
    """Latency from POST to SSE delivery, ``listeners`` streams open at once."""
    chosen = rng.sample(convs, listeners)
    pending: dict[str, float] = {}
    got: list[float] = []
    arrived = asyncio.Event()
    limits = httpx.Limits(max_connections=listeners + 20, max_keepalive_connections=listeners + 20)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60, read=120), limits=limits) as http:
        opened = 0
        ready = asyncio.Event()

        async def listen(item, patient):
            nonlocal opened
            headers = {"X-Hutong-Role": "resident", "X-Hutong-Patient": patient.split("/")[1], "X-Hutong-Client": patient}
            async with http.stream("GET", f"/api/consult/items/{item}/events", headers=headers) as r:
                opened += 1
                if opened == listeners:
                    ready.set()
                data = []
                async for ln in r.aiter_lines():
                    if ln.startswith("data:"):
                        data.append(ln[5:].strip())
                    elif ln == "" and data:
                        msg = orjson.loads("".join(data))
                        data = []
                        key = msg.get("text", "")
                        if key in pending:
                            got.append((time.perf_counter() - pending.pop(key)) * 1000)
                            arrived.set()

        tasks = [asyncio.create_task(listen(item, patient)) for item, _d, patient in chosen]
        await asyncio.wait_for(ready.wait(), 120)
        await asyncio.sleep(1.0)  # every subscription live
        for k in range(messages):
            item, doctor, _p = chosen[k % listeners]
            text = f"bench-{k}-{new_id()[:8]}"
            headers = {"X-Hutong-Role": "clinician", "X-Hutong-Client": doctor}
            pending[text] = time.perf_counter()
            r = await http.post(f"/api/consult/items/{item}/messages", headers=headers, json={"text": text})
            if r.status_code != 201:
                raise SystemExit(f"send failed: {r.status_code} {r.text[:200]}")
            if k % 20 == 19:  # a bounded pace: about 20 messages in flight
                await asyncio.sleep(0.02)
        deadline = time.time() + 30
        while pending and time.time() < deadline:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), 1)
            except TimeoutError:
                pass
        lost = len(pending)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got, lost


def bus_baseline(bus, n: int) -> list[float]:
    got: list[float] = []
    done = threading.Event()
    sent: dict[int, float] = {}

    async def main():
        async def handler(event):
            got.append((time.perf_counter() - sent[event.payload["k"]]) * 1000)
            if len(got) >= n:
                done.set()

        sub = await bus.subscribe("bench.base.*", handler)
        await asyncio.sleep(0.5)
        for k in range(n):
            sent[k] = time.perf_counter()
            await asyncio.to_thread(bus.publish_sync, "bench.base.x", {"k": k})
        await asyncio.to_thread(done.wait, 30)
        await sub.unsubscribe()

    asyncio.run(main())
    return got


def store_baseline(store, convs, n: int) -> list[float]:
    out = []
    for k in range(n):
        item, doctor, patient = convs[k % len(convs)]
        comm = {"resourceType": "Communication", "status": "completed", "partOf": [{"reference": f"Task/{item}"}],
                "subject": {"reference": patient}, "sender": {"reference": doctor},
                "payload": [{"contentString": f"base-{k}"}]}
        t = time.perf_counter()
        with store.write() as tx:
            tx.create(comm)
        out.append((time.perf_counter() - t) * 1000)
    return out


def timed_gets(http, paths_headers, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        path, headers = paths_headers[i % len(paths_headers)]
        t = time.perf_counter()
        r = http.get(path, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--doctors", type=int, default=1700)
    ap.add_argument("--residents", type=int, default=5000)
    ap.add_argument("--hospitals", type=int, default=155)
    ap.add_argument("--conversations", type=int, default=2000)
    ap.add_argument("--waiting", type=int, default=500)
    ap.add_argument("--listeners", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--nats", default="private", help="'private' (a nats-server of its own), a URL, or '' (none)")
    args = ap.parse_args()
    rng = random.Random(18)
    broker = None
    if args.nats == "private":
        from hutong.federation.localnats import PrivateNats

        broker = PrivateNats(Path(tempfile.mkdtemp(prefix="bench-nats-"))).start()
        args.nats = broker.url
    try:
        run(args, rng)
    finally:
        if broker is not None:
            broker.stop()


def run(args, rng) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), nats_url=args.nats, workers=False, consult_escalation_seconds=0,
                                 events_stream="BENCHCONSULT", events_subject_prefix="benchconsult")
        store = node_store(settings)
        t = time.perf_counter()
        world = seed(store, args.doctors, args.residents, args.hospitals)
        print(f"seeded {args.doctors} doctors, {args.residents} residents, {args.hospitals} hospitals "
              f"in {time.perf_counter() - t:.1f} s")
        app = create_app(settings, store=store)
        live = serve(app)
        try:
            from hutong.consult.service import env_of

            env = env_of(app.node) if hasattr(app, "node") else Env(store, settings)
            t = time.perf_counter()
            convs = open_conversations(env, world, args.conversations, args.waiting, rng)
            print(f"opened {args.conversations} conversations (+{args.waiting} waiting) through the services in "
                  f"{time.perf_counter() - t:.1f} s")
            from hutong.federation.events import event_bus

            bus = event_bus(app.node) if hasattr(app, "node") else None
            got, lost = asyncio.run(delivery(live.url, convs, args.listeners, args.messages, rng))
            print(f"event bus mode: {bus.mode if bus else '?'}")
            print(line(f"message POST → SSE delivery ({args.listeners} streams open)", got) + f"  lost={lost}")
            print(line("baseline: event bus publish → subscriber (no HTTP, no store)", bus_baseline(bus, 300)))
            print(line("baseline: raw store write of one Communication", store_baseline(store, convs, 300)))
            doctors = sorted({d for _i, d, _p in convs})
            sample = rng.sample(doctors, min(50, len(doctors)))
            with httpx.Client(base_url=live.url, timeout=60) as http:
                hdr = [{"X-Hutong-Role": "clinician", "X-Hutong-Client": d} for d in sample]
                timed_gets(http, [("/api/consult/desk", h) for h in hdr], 20)  # warm
                print(line("GET /api/consult/desk (doctor's queues, JSON)",
                           timed_gets(http, [("/api/consult/desk", h) for h in hdr], args.repeat)))
                print(line("GET /workstation/consult (desk page, HTML)",
                           timed_gets(http, [("/workstation/consult", h) for h in hdr], args.repeat)))
                q = [(f"/api/consult/queue?hospital=Organization/{o}&department={d}", hdr[0])
                     for o in world["orgs"][:20] for d in DEPTS[:3]]
                print(line("GET /api/consult/queue (one department's waiting list)", timed_gets(http, q, args.repeat)))
                f = [(f"/fhir/Task?owner=Organization/{o}&status=requested", {}) for o in world["orgs"][:50]]
                print(line("baseline: GET /fhir/Task?owner=…&status=requested", timed_gets(http, f, args.repeat)))
        finally:
            live.__exit__(None, None, None)
            store.close()


if __name__ == "__main__":
    main()
