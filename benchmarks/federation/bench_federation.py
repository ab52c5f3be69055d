"""Federation benchmark: the relay against raw JetStream, and a city's changes reaching the province.

One command, loopback only, bounded in time::

    PYTHONPATH=. python benchmarks/federation/bench_federation.py            # about two minutes
    PYTHONPATH=. python benchmarks/federation/bench_federation.py --quick    # about forty seconds

Part 1, **relay vs raw JetStream** (in one process, one private ``nats-server``): ``N`` committed
changes are drained from a node's outbox by ``hutong.federation.relay.Relay`` (read the outbox,
build the change events, publish pipelined with ``Nats-Msg-Id``, wait for the acknowledgements,
record the position), and the same number of messages of the same size are published by a bare
nats-py loop in the same pipelined way to a stream with the same limits: the baseline is the
broker's own rate on this machine, measured in the same run.

Part 2, **city → province** (separate processes: ``hutong serve`` for a province and one city,
each with its own SQLite database, the city's link to the province through a loopback proxy that
can be cut): a steady writer posts small transaction Bundles of Patients to the city; the
end-to-end lag of each resource is its commit time at the city (``origin_us``) to its commit at the
province (``applied_us``), both read from the province's ``federation_replica`` (one machine, one
clock). Then the link is cut for ``--outage`` seconds while the writer goes on, and restored; the
catch-up rate is the backlog applied per second from the restore until the province has the
city's head. Finally the province's digest of the city's tenant must equal the city's own
(counts and a checksum of every resource's current version): the figures count only if nothing
was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hutong.config import load_settings  # noqa: E402
from hutong.federation import jetstream  # noqa: E402
from hutong.federation.localcluster import LinkProxy, NodeProcess, get_json, wait_for  # noqa: E402
from hutong.federation.localnats import NATS_SERVER, PrivateNats  # noqa: E402
from hutong.federation.relay import Relay  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))] if s else float("nan")


# ---------------------------------------------------------------------------- part 1
def relay_vs_raw(n: int, work: Path, nats_url: str, database_url: str = "") -> dict:
    from hutong.api.app import node_store

    settings = load_settings(data_dir=work / "relay-node", database_url=database_url, workers=False)
    settings = dataclasses.replace(settings, nats_url=nats_url, events_stream="BENCH")
    store = node_store(settings)
    try:
        for start in range(0, n, 1000):
            with store.write("2201") as tx:
                for i in range(start, min(n, start + 1000)):
                    tx.create({"resourceType": "Patient", "gender": "female", "birthDate": "1962-03-14",
                               "identifier": [{"system": "urn:bench", "value": str(i)}]})
        relay = Relay(store, settings, batch=500)

        async def drain() -> tuple[float, int]:
            t0 = time.perf_counter()
            total = 0
            while True:
                got = await relay.publish_batch()
                total += got
                if got == 0:
                    break
            dt = time.perf_counter() - t0
            await relay._disconnect()
            return dt, total

        relay_s, published = asyncio.run(drain())
        sample = store.outbox.read(0, 1)[0]
        size = len(orjson.dumps({"node": "x" * 32, "seq": sample.seq, "prev": 0, "tenant": sample.tenant,
                                 "type": sample.res_type, "id": sample.res_id, "version": 1, "op": "create",
                                 "ts_us": sample.ts_us}))
    finally:
        store.close()

    async def raw() -> float:
        nc = await jetstream.connect(nats_url, name="bench-raw")
        js = nc.jetstream(timeout=10)
        await jetstream.ensure_stream(js, jetstream.stream_config(settings, name="RAW", subjects=["raw.>"]))
        payload = b"x" * size
        t0 = time.perf_counter()
        for start in range(0, n, 500):
            futures = [await js.publish_async("raw.change.2201.Patient", payload, headers={"Nats-Msg-Id": f"r:{i}"})
                       for i in range(start, min(n, start + 500))]
            await asyncio.gather(*futures)
        dt = time.perf_counter() - t0
        await nc.close()
        return dt

    raw_s = asyncio.run(raw())
    return {"events": n, "published": published, "message_bytes": size,
            "relay_per_s": published / relay_s, "relay_s": relay_s, "raw_per_s": n / raw_s, "raw_s": raw_s,
            "backend": "postgresql" if database_url else "sqlite"}


# ---------------------------------------------------------------------------- part 2
class Writer(threading.Thread):
    """Posts a transaction Bundle of ``per_bundle`` Patients every ``every_s`` seconds to the city."""

    def __init__(self, fhir: str, per_bundle: int, every_s: float):
        super().__init__(daemon=True)
        self.fhir, self.per_bundle, self.every_s = fhir, per_bundle, every_s
        self.stop = threading.Event()
        self.written = 0
        self.errors = 0
        self.retries = 0

    def bundle(self, k: int) -> bytes:
        entries = [{"resource": {"resourceType": "Patient", "gender": "male", "birthDate": "1970-01-01",
                                 "identifier": [{"system": "urn:bench:city", "value": f"{k}-{j}"}]},
                    "request": {"method": "POST", "url": "Patient"}} for j in range(self.per_bundle)]
        return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})

    def run(self) -> None:
        k = 0
        nxt = time.monotonic()
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                body = self.bundle(k)
                for _attempt in range(10):
                    r = client.post(self.fhir, content=body, headers={"Content-Type": "application/fhir+json"})
                    if r.status_code not in (429, 503):
                        break
                    self.retries += 1
                    time.sleep(float(r.headers.get("retry-after") or 1))
                if r.status_code == 200:
                    self.written += self.per_bundle
                else:
                    self.errors += 1
                k += 1
                nxt += self.every_s
                time.sleep(max(0.0, nxt - time.monotonic()))


def city_to_province(work: Path, steady_s: float, outage_s: float, per_bundle: int, every_s: float) -> dict:
    province = NodeProcess("province", "22", "province", work / "province").start()
    city = link = None
    try:
        province.wait_ready()
        link = LinkProxy(province.port)
        city = NodeProcess("2204", "2204", "city", work / "2204",
                           province_url=f"http://127.0.0.1:{link.port}").start()
        city.wait_ready()
        writer = Writer(city.url + "/fhir", per_bundle, every_s)
        writer.start()
        time.sleep(steady_s)
        steady_end_us = time.time_ns() // 1000
        link.cut()
        cut_at = time.perf_counter()
        wait_for(lambda: not get_json(city.url, "/api/federation/status")["uplink"]["connected"], 30, "the cut")
        time.sleep(max(0.0, outage_s - (time.perf_counter() - cut_at)))
        writer.stop.set()  # the backlog is what was written while cut off; the catch-up runs unloaded
        writer.join(60)
        peer0 = [p for p in get_json(province.url, "/api/federation/status")["peers"] if p["tenant"] == "2204"][0]
        restored = time.perf_counter()
        link.restore()

        def caught_up():
            peers = [p for p in get_json(province.url, "/api/federation/status")["peers"] if p["tenant"] == "2204"]
            return peers and peers[0]["events_behind"] == 0 and peers[0]["applied_through"] >= head_seq and peers[0]

        engine_city = create_engine(f"sqlite:///{work / '2204' / 'hutong.db'}")
        with engine_city.connect() as c:
            head_seq = int(c.execute(text("SELECT max(seq) FROM change_event")).scalar() or 0)
        engine_city.dispose()
        peer1 = wait_for(caught_up, 300, "the province catching up", 0.1)
        catch_up_s = time.perf_counter() - restored
        engine = create_engine(f"sqlite:///{work / 'province' / 'hutong.db'}")
        with engine.connect() as c:
            rows = c.execute(text("SELECT origin_us, applied_us FROM federation_replica WHERE origin_tenant = '2204'"
                                  )).all()
        engine.dispose()
        steady_lags = [(a - o) / 1000 for o, a in rows if o < steady_end_us]
        want = get_json(city.url, "/api/federation/digest", tenant="2204")
        got = get_json(province.url, "/api/federation/digest", tenant="2204")
        backlog = peer1["applied_through"] - peer0["applied_through"]
        return {
            "written": writer.written, "write_errors": writer.errors, "write_retries": writer.retries,
            "steady_rate_per_s": per_bundle / every_s, "steady_resources": len(steady_lags),
            "lag_p50_ms": pct(steady_lags, 50), "lag_p99_ms": pct(steady_lags, 99),
            "lag_max_ms": max(steady_lags) if steady_lags else float("nan"),
            "lag_mean_ms": statistics.fmean(steady_lags) if steady_lags else float("nan"),
            "outage_s": outage_s, "backlog_events": backlog,
            "catch_up_s": catch_up_s, "catch_up_per_s": backlog / catch_up_s if catch_up_s else float("nan"),
            "digest_equal": want == got, "resources_at_city": want["total"], "resources_at_province": got["total"],
            "duplicates_dropped": peer1["duplicates_dropped"], "gaps": peer1["gaps"], "conflicts": peer1["conflicts"],
        }
    finally:
        for node in (city, province):
            if node is not None:
                node.stop()
        if link is not None:
            link.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20000, help="changes drained by the relay (part 1)")
    ap.add_argument("--steady", type=float, default=30.0, help="seconds of steady load before the cut (part 2)")
    ap.add_argument("--outage", type=float, default=30.0, help="seconds the city's link is cut, under load")
    ap.add_argument("--per-bundle", type=int, default=10, help="Patients per transaction Bundle")
    ap.add_argument("--every", type=float, default=0.2, help="seconds between Bundles")
    ap.add_argument("--postgres", default="", help="also run part 1 on this PostgreSQL URL")
    ap.add_argument("--quick", action="store_true", help="5000 events, 10 s steady, 10 s outage")
    ap.add_argument("--skip-cluster", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.events, args.steady, args.outage = 5000, 10.0, 10.0
    if NATS_SERVER is None:
        sys.exit("nats-server is not installed (apt-get install nats-server): the relay benchmark needs a broker")
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="hutong-bench-fed-") as tmp:
        work = Path(tmp)
        nats = PrivateNats(work / "nats").start()
        try:
            runs = [relay_vs_raw(args.events, work / "sqlite", nats.url)]
            if args.postgres:
                runs.append(relay_vs_raw(args.events, work / "pg", nats.url, args.postgres))
        finally:
            nats.stop()
        print("\n## Relay (outbox → JetStream) vs raw JetStream publish, same run, same broker")
        print("| backend | events | message bytes | relay events/s | raw JetStream msgs/s | relay / raw |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in runs:
            print(f"| {r['backend']} | {r['published']:,} | {r['message_bytes']} | {r['relay_per_s']:,.0f} | "
                  f"{r['raw_per_s']:,.0f} | {r['relay_per_s'] / r['raw_per_s']:.2f} |")
        if args.skip_cluster:
            return
        c = city_to_province(work / "cluster", args.steady, args.outage, args.per_bundle, args.every)
        print("\n## City → province over HTTPS (separate processes, SQLite each, loopback)")
        print(f"steady load {c['steady_rate_per_s']:.0f} Patients/s in Bundles of {args.per_bundle}; "
              f"{c['written']:,} written, {c['write_errors']} failed, {c['write_retries']} retried after 503")
        print("| figure | value |")
        print("|---|---:|")
        print(f"| end-to-end lag p50 (city commit → province commit) | {c['lag_p50_ms']:,.0f} ms |")
        print(f"| end-to-end lag p99 | {c['lag_p99_ms']:,.0f} ms |")
        print(f"| end-to-end lag max / mean | {c['lag_max_ms']:,.0f} / {c['lag_mean_ms']:,.0f} ms |")
        print(f"| resources measured (steady phase) | {c['steady_resources']:,} |")
        print(f"| link cut, under load | {c['outage_s']:.0f} s |")
        print(f"| backlog at restore | {c['backlog_events']:,} events |")
        print(f"| catch-up time | {c['catch_up_s']:.1f} s |")
        print(f"| catch-up rate | {c['catch_up_per_s']:,.0f} events/s |")
        print(f"| province digest == city digest | {c['digest_equal']} ({c['resources_at_province']:,} / "
              f"{c['resources_at_city']:,} resources) |")
        print(f"| duplicates dropped / gaps / conflicts | {c['duplicates_dropped']} / {c['gaps']} / {c['conflicts']} |")
        if not c["digest_equal"]:
            sys.exit("the province does not hold exactly the city's data: the figures above do not count")
    print(f"\nload after: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


if __name__ == "__main__":
    main()
