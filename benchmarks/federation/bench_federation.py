"""Federation benchmark: the relay against raw JetStream, and a city's changes reaching the province.

One command, loopback only, bounded in time::

    PYTHONPATH=. python benchmarks/federation/bench_federation.py            # about four minutes
    PYTHONPATH=. python benchmarks/federation/bench_federation.py --quick    # about two minutes
    PYTHONPATH=. python benchmarks/federation/bench_federation.py --soak     # the issue's ten-minute cut (~17 min)

Part 1, **relay vs raw JetStream** (in one process, one private ``nats-server``): ``N`` committed
changes are drained from a node's outbox by ``hutong.federation.relay.Relay`` (read the outbox,
build the change events, publish pipelined with ``Nats-Msg-Id``, wait for the acknowledgements,
record the position), and the same number of messages of the same size are published by a bare
nats-py loop in the same pipelined way to a stream with the same limits: the baseline is the
broker's own rate on this machine, measured in the same run.

Part 2, **one node vs province + city** (separate ``hutong serve`` processes, each with its own
SQLite database; the city's link to the province through a loopback proxy that can be cut). First
a standalone node takes a steady writer's Bundles of Patients (the baseline commit latency). Then a
province and a city: the same writer at the city (Patients flow up) and a second writer at the
province (Organizations, a registry type, flow down), both running throughout. The end-to-end lag
of each resource is its commit at the origin (``origin_us``) to its commit at the receiver
(``applied_us``), both read from the receiver's ``federation_replica`` (one machine, one clock).
Then the link is cut for ``--outage`` seconds while both writers go on, and restored; catch-up is
the time from the restore until each side has applied the other's newest change as of the restore,
with the writers still on. Finally each side's digest of the other's tenant must equal the origin's
(counts, a checksum of every current resource, version sums) and the change-event counts must be
equal: the figures count only if nothing was lost or applied twice.
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
from datetime import date, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from hutong.china.ids import make_resident_id  # noqa: E402
from hutong.config import load_settings  # noqa: E402
from hutong.federation import jetstream  # noqa: E402
from hutong.federation.localcluster import LinkProxy, NodeProcess, gateway_headers, get_json, wait_for  # noqa: E402
from hutong.federation.localnats import NATS_SERVER, PrivateNats  # noqa: E402
from hutong.federation.relay import Relay  # noqa: E402

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎"
GIVEN = ["秀英", "桂英", "秀兰", "玉兰", "建华", "建国", "志强", "海燕", "丽娟", "春梅", "立新", "国庆", "文博", "子涵",
         "浩然", "雨轩", "思远", "欣怡", "晓东", "红梅", "淑珍", "宏伟", "俊杰", "佳怡", "明辉", "德胜", "凤琴", "永刚"]


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
    """Posts a transaction Bundle of ``per_bundle`` resources every ``every_s`` seconds to a node, as
    a trusted caller of the local cluster, and keeps each Bundle's commit latency."""

    def __init__(self, fhir: str, per_bundle: int, every_s: float, kind: str = "Patient"):
        super().__init__(daemon=True)
        self.fhir, self.per_bundle, self.every_s, self.kind = fhir, per_bundle, every_s, kind
        self.stop = threading.Event()
        self.written = 0
        self.errors = 0
        self.retries = 0
        self.first_error = ""
        self.latencies_ms: list[float] = []

    def resource(self, k: int, j: int) -> dict:
        if self.kind == "Organization":  # a registry type: the province distributes it down
            return {"resourceType": "Organization", "name": f"基准测试机构 {k}-{j}", "active": True,
                    "identifier": [{"system": "urn:bench:province", "value": f"{k}-{j}"}]}
        # Distinct residents (a name, a birth date, a valid resident ID): the patient index at both
        # nodes blocks on them as on real data, instead of comparing every Patient with every other.
        n = k * self.per_bundle + j
        born = date(1940, 1, 1) + timedelta(days=(n * 7919) % 25000)
        sex = "male" if n % 2 else "female"
        family, given = SURNAMES[n % len(SURNAMES)], GIVEN[(n // len(SURNAMES)) % len(GIVEN)]
        return {"resourceType": "Patient", "gender": sex, "birthDate": born.isoformat(),
                "name": [{"text": family + given, "family": family, "given": [given]}],
                "identifier": [{"system": "urn:oid:2.16.156.10011.1.3",
                                "value": make_resident_id("220402", born, n % 999 + 1, sex)},
                               {"system": "urn:bench:city", "value": f"{k}-{j}"}]}

    def bundle(self, k: int) -> bytes:
        entries = [{"resource": self.resource(k, j), "request": {"method": "POST", "url": self.kind}}
                   for j in range(self.per_bundle)]
        return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})

    def run(self) -> None:
        k = 0
        nxt = time.monotonic()
        headers = {"Content-Type": "application/fhir+json", **gateway_headers()}
        with httpx.Client(timeout=60, headers=headers) as client:
            while not self.stop.is_set():
                body = self.bundle(k)
                t0 = time.perf_counter()
                for _attempt in range(10):
                    r = client.post(self.fhir, content=body)
                    if r.status_code not in (429, 503):
                        break
                    self.retries += 1
                    time.sleep(float(r.headers.get("retry-after") or 1))
                if r.status_code == 200:
                    self.written += self.per_bundle
                    self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                else:
                    self.errors += 1
                    self.first_error = self.first_error or f"{r.status_code}: {r.text[:200]}"
                k += 1
                nxt += self.every_s
                time.sleep(max(0.0, nxt - time.monotonic()))


def _sql(db: Path, query: str, **params) -> list:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as c:
            return c.execute(text(query), params).all()
    finally:
        engine.dispose()


def _events(db: Path, tenant: str, res_type: str) -> int:
    """Change events of ``tenant`` and ``res_type`` in a node's change log: every version it made or applied."""
    return int(_sql(db, "SELECT count(*) FROM change_event WHERE tenant = :t AND res_type = :r",
                    t=tenant, r=res_type)[0][0])


def standalone_baseline(work: Path, steady_s: float, per_bundle: int, every_s: float) -> dict:
    """The same writer against one node without federation: what the city's writes cost on their own."""
    node = NodeProcess("standalone", "2204", "standalone", work / "standalone").start()
    try:
        node.wait_ready()
        writer = Writer(node.url + "/fhir", per_bundle, every_s)
        writer.start()
        time.sleep(steady_s)
        writer.stop.set()
        writer.join(60)
        return {"written": writer.written, "errors": writer.errors, "first_error": writer.first_error,
                "bundle_p50_ms": pct(writer.latencies_ms, 50), "bundle_p99_ms": pct(writer.latencies_ms, 99)}
    finally:
        node.stop()


def city_to_province(work: Path, steady_s: float, outage_s: float, per_bundle: int, every_s: float,
                     down_every_s: float) -> dict:
    """A province and a city (HTTPS uplink through a cuttable link), written on both sides throughout:
    Patients at the city (up), Organizations at the province (down). Steady phase, then the link cut
    for ``outage_s`` with both writers going on, then restored under the same load."""
    province = NodeProcess("province", "22", "province", work / "province").start()
    city = link = None
    writers: list[Writer] = []
    try:
        province.wait_ready()
        link = LinkProxy(province.port)
        city = NodeProcess("2204", "2204", "city", work / "2204",
                           province_url=f"http://127.0.0.1:{link.port}").start()
        city.wait_ready()
        pdb, cdb = work / "province" / "hutong.db", work / "2204" / "hutong.db"
        # Measure from when both links are up (not the nodes' start-up and first connection).
        wait_for(lambda: (lambda st: st["uplink"]["connected"] and st.get("downlink", {}).get("connected"))(
            get_json(city.url, "/api/federation/status")), 60, "the city's links", 0.2)
        up = Writer(city.url + "/fhir", per_bundle, every_s)
        down = Writer(province.url + "/fhir", 1, down_every_s, kind="Organization")
        writers = [up, down]
        for w in writers:
            w.start()
        t_start_us = time.time_ns() // 1000
        time.sleep(steady_s)
        steady_end_us = time.time_ns() // 1000
        steady_bundles = len(up.latencies_ms)
        link.cut()
        cut_at = time.perf_counter()
        wait_for(lambda: not get_json(city.url, "/api/federation/status")["uplink"]["connected"], 30, "the cut")
        progress = []
        while time.perf_counter() - cut_at < outage_s:
            time.sleep(min(30.0, max(0.0, outage_s - (time.perf_counter() - cut_at))))
            progress.append((round(time.perf_counter() - cut_at), up.written, down.written))
            print(f"  cut for {progress[-1][0]} s: {up.written:,} Patients written at the city, "
                  f"{down.written:,} Organizations at the province", flush=True)
        peer0 = [p for p in get_json(province.url, "/api/federation/status")["peers"] if p["tenant"] == "2204"][0]
        # The newest change each side has for the other (the city's log also holds what came down).
        city_head = int(_sql(cdb, "SELECT max(seq) FROM change_event WHERE tenant = '2204' AND res_type = 'Patient'"
                             )[0][0] or 0)
        province_head = int(_sql(pdb, "SELECT max(seq) FROM change_event WHERE tenant = '22' AND "
                                      "res_type = 'Organization'")[0][0] or 0)
        city_status = get_json(city.url, "/api/federation/status")
        restored = time.perf_counter()
        link.restore()  # the writers go on: the catch-up runs under the same load

        def up_caught():
            peers = [p for p in get_json(province.url, "/api/federation/status")["peers"] if p["tenant"] == "2204"]
            return peers and peers[0]["applied_through"] >= city_head and peers[0]

        def down_caught():
            peers = [p for p in get_json(city.url, "/api/federation/status")["peers"] if p["direction"] == "down"]
            return peers and peers[0]["applied_through"] >= province_head and peers[0]

        # Both directions polled together: each time is from the restore to that side being caught up.
        peer1 = None
        catch_up_s = down_catch_up_s = None
        deadline = time.perf_counter() + max(300.0, 2 * outage_s)
        while catch_up_s is None or down_catch_up_s is None:
            if time.perf_counter() > deadline:
                raise TimeoutError("the nodes did not catch up after the restore")
            if catch_up_s is None and (got := up_caught()):
                peer1, catch_up_s = got, time.perf_counter() - restored
            if down_catch_up_s is None and down_caught():
                down_catch_up_s = time.perf_counter() - restored
            time.sleep(0.1)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(60)

        # Quiet: both sides converge; then the checks that make the figures count.
        def same(tenant: str, types: str, a: NodeProcess, b: NodeProcess):
            want = get_json(a.url, "/api/federation/digest", tenant=tenant, types=types)
            got = get_json(b.url, "/api/federation/digest", tenant=tenant, types=types)
            return (want, got) if want == got else None

        converged = True
        try:
            up_d, _ = wait_for(lambda: same("2204", "Patient", city, province), 300, "up convergence", 0.5)
            down_d, _ = wait_for(lambda: same("22", "Organization", province, city), 300, "down convergence", 0.5)
        except TimeoutError:
            converged = False
            up_d = get_json(city.url, "/api/federation/digest", tenant="2204", types="Patient")
            down_d = get_json(province.url, "/api/federation/digest", tenant="22", types="Organization")
        rows = _sql(pdb, "SELECT origin_us, applied_us FROM federation_replica WHERE origin_tenant = '2204'")
        steady_lags = [(a - o) / 1000 for o, a in rows if t_start_us <= o < steady_end_us]
        down_rows = _sql(cdb, "SELECT origin_us, applied_us FROM federation_replica WHERE origin_tenant = '22'")
        down_lags = [(a - o) / 1000 for o, a in down_rows if t_start_us <= o < steady_end_us]
        final_up = [p for p in get_json(province.url, "/api/federation/status")["peers"] if p["tenant"] == "2204"][0]
        final_down = [p for p in get_json(city.url, "/api/federation/status")["peers"] if p["direction"] == "down"][0]
        backlog = int(_sql(cdb, "SELECT count(*) FROM change_event WHERE tenant = '2204' AND res_type = 'Patient' "
                                "AND seq > :a AND seq <= :b", a=peer0["applied_through"], b=peer1["applied_through"]
                           )[0][0])
        return {
            "converged": converged,
            "written": up.written, "write_errors": up.errors, "write_retries": up.retries,
            "first_error": up.first_error or down.first_error,
            "down_written": down.written, "down_errors": down.errors,
            "steady_rate_per_s": per_bundle / every_s, "down_rate_per_s": 1 / down_every_s,
            "steady_resources": len(steady_lags),
            "lag_p50_ms": pct(steady_lags, 50), "lag_p99_ms": pct(steady_lags, 99),
            "lag_max_ms": max(steady_lags) if steady_lags else float("nan"),
            "lag_mean_ms": statistics.fmean(steady_lags) if steady_lags else float("nan"),
            "down_lag_p50_ms": pct(down_lags, 50), "down_lag_p99_ms": pct(down_lags, 99),
            "down_resources": len(down_lags),
            "bundle_p50_ms": pct(up.latencies_ms[:steady_bundles], 50),
            "bundle_p99_ms": pct(up.latencies_ms[:steady_bundles], 99),
            "cut_bundle_p50_ms": pct(up.latencies_ms[steady_bundles:], 50),
            "outage_s": outage_s, "backlog_events": backlog, "queued_at_city": city_status["uplink"],
            "catch_up_s": catch_up_s, "catch_up_per_s": backlog / catch_up_s if catch_up_s else float("nan"),
            "down_catch_up_s": down_catch_up_s,
            "up_digest": up_d, "down_digest": down_d,
            "events_city": _events(cdb, "2204", "Patient"), "events_province": _events(pdb, "2204", "Patient"),
            "down_events_province": _events(pdb, "22", "Organization"),
            "down_events_city": _events(cdb, "22", "Organization"),
            "duplicates_dropped": final_up["duplicates_dropped"], "gaps": final_up["gaps"],
            "conflicts": final_up["conflicts"], "down_duplicates": final_down["duplicates_dropped"],
            "down_gaps": final_down["gaps"], "down_conflicts": final_down["conflicts"],
        }
    finally:
        for w in writers:
            w.stop.set()
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
    ap.add_argument("--down-every", type=float, default=0.5, help="seconds between Organizations written at the province")
    ap.add_argument("--quick", action="store_true", help="5000 events, 10 s steady, 10 s outage")
    ap.add_argument("--soak", action="store_true", help="the issue's proof: the link cut for ten minutes (600 s)")
    ap.add_argument("--skip-cluster", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.events, args.steady, args.outage = 5000, 10.0, 10.0
    if args.soak:
        args.outage = 600.0
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
        base = standalone_baseline(work / "standalone", args.steady, args.per_bundle, args.every)
        c = city_to_province(work / "cluster", args.steady, args.outage, args.per_bundle, args.every, args.down_every)
        print("\n## One node vs province + city over HTTPS (separate processes, SQLite each, loopback)")
        print(f"load on the city: {c['steady_rate_per_s']:.0f} Patients/s in Bundles of {args.per_bundle}; "
              f"{c['written']:,} written, {c['write_errors']} failed, {c['write_retries']} retried after 503; "
              f"on the province {c['down_rate_per_s']:.1f} Organizations/s, {c['down_written']:,} written, "
              f"{c['down_errors']} failed {c['first_error']}")
        print("| figure | value |")
        print("|---|---:|")
        print(f"| Bundle commit p50 / p99, one standalone node (baseline) | {base['bundle_p50_ms']:,.1f} / "
              f"{base['bundle_p99_ms']:,.1f} ms ({base['written']:,} written, {base['errors']} failed) |")
        print(f"| Bundle commit p50 / p99, city with federation on | {c['bundle_p50_ms']:,.1f} / "
              f"{c['bundle_p99_ms']:,.1f} ms |")
        print(f"| Bundle commit p50 at the city while cut off | {c['cut_bundle_p50_ms']:,.1f} ms |")
        print(f"| end-to-end lag p50 / p99 up (city commit → province commit) | {c['lag_p50_ms']:,.0f} / "
              f"{c['lag_p99_ms']:,.0f} ms |")
        print(f"| end-to-end lag max / mean up | {c['lag_max_ms']:,.0f} / {c['lag_mean_ms']:,.0f} ms |")
        print(f"| resources measured up (steady phase) | {c['steady_resources']:,} |")
        print(f"| lag p50 / p99 down (province commit → city commit, feed polled every 2 s) | "
              f"{c['down_lag_p50_ms']:,.0f} / {c['down_lag_p99_ms']:,.0f} ms ({c['down_resources']:,} resources) |")
        print(f"| link cut, both sides writing | {c['outage_s']:.0f} s |")
        print(f"| backlog applied up after the restore | {c['backlog_events']:,} events |")
        print(f"| catch-up time up (restore → province past the city's head at restore), writers on | "
              f"{c['catch_up_s']:.1f} s |")
        print(f"| catch-up rate up | {c['catch_up_per_s']:,.0f} events/s |")
        print(f"| catch-up time down (restore → city past the province's head at restore) | {c['down_catch_up_s']:.1f} s |")
        ud, dd = c["up_digest"], c["down_digest"]
        print(f"| Patients: city digest == province digest (counts, checksum, version sums) | {c['converged']} "
              f"({ud['total']:,} resources, {ud['versions']:,} versions) |")
        print(f"| Patient change events: at the city / applied at the province | {c['events_city']:,} / "
              f"{c['events_province']:,} |")
        print(f"| Organizations: province digest == city digest | {c['converged']} ({dd['total']:,} resources) |")
        print(f"| Organization change events: at the province / applied at the city | {c['down_events_province']:,} / "
              f"{c['down_events_city']:,} |")
        print(f"| up: repeats dropped / gaps / conflicts | {c['duplicates_dropped']} / {c['gaps']} / {c['conflicts']} |")
        print(f"| down: repeats dropped / gaps / conflicts | {c['down_duplicates']} / {c['down_gaps']} / "
              f"{c['down_conflicts']} |")
        exact = (c["converged"] and c["events_city"] == c["events_province"]
                 and c["down_events_province"] == c["down_events_city"] and not c["write_errors"])
        if not exact:
            sys.exit("the nodes do not hold exactly each other's data: the figures above do not count")
    print(f"\nload after: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


if __name__ == "__main__":
    main()
