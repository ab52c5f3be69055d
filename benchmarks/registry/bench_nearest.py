"""Fever-clinic navigation benchmark: the nearest 10 open clinics over 10,000 clinic locations.

    python benchmarks/registry/bench_nearest.py [--clinics 10000] [--queries 400] [--backend sqlite|postgres]

Side by side in one run, on the same store and the same random origins inside the province:
- ``nearest_clinics`` (the registry's index: widening bounding box on (lat, lon), great-circle distance);
- baseline: brute force, every clinic row read and its haversine distance computed, then sorted
  (the same answer by construction; every query's result is compared, so correctness is checked too);
- mCSD ``Location?near=lat|lon|20|km&_count=10`` through the search engine (sorted by distance), in process.
The clinics are real FHIR resources (Organization, Location, HealthcareService) loaded through the store
and indexed by the registry's change-log consumer. Loopback/in-process only.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from sqlalchemy import select  # noqa: E402

from hutong.config import load_settings  # noqa: E402
from hutong.core.clock import SHANGHAI  # noqa: E402
from hutong.registry import clinics, geo, hours, vocab  # noqa: E402
from hutong.registry.tables import registry_clinic as RC  # noqa: E402

ALLDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI)


def _resources(n: int, rng: random.Random):
    cities = list(geo.CITY_CODES.values())
    weights = [30, 15, 8, 4, 6, 4, 8, 6, 9]  # more clinics where more people live
    for i in range(n):
        city = rng.choices(cities, weights)[0]
        lat, lon = geo.point_in_city(city, rng)
        o, loc, s = f"bo{i}", f"bl{i}", f"bs{i}"
        yield {"resourceType": "Organization", "id": o, "name": f"基准医院{i}", "active": True,
               "extension": [{"url": vocab.EXT_DIVISION, "valueCode": city}]}
        yield {"resourceType": "Location", "id": loc, "status": "active", "name": f"基准医院{i}",
               "position": {"latitude": lat, "longitude": lon}, "managingOrganization": {"reference": f"Organization/{o}"}}
        avail = [{"daysOfWeek": ALLDAYS, "allDay": True}] if i % 3 else [
            {"daysOfWeek": ALLDAYS, "availableStartTime": "08:00:00", "availableEndTime": "17:00:00"}]
        if i % 17 == 0:
            avail = [{"daysOfWeek": ALLDAYS, "availableStartTime": "18:00:00", "availableEndTime": "08:00:00"}]
        yield {"resourceType": "HealthcareService", "id": s, "active": True, "name": f"基准医院{i}发热门诊",
               "providedBy": {"reference": f"Organization/{o}"}, "location": [{"reference": f"Location/{loc}"}],
               "type": [{"coding": [{"system": vocab.SERVICE, "code": "fever-clinic"}]}], "availableTime": avail}


def _brute(conn, lat, lon, k, at):
    rows = conn.execute(select(RC.c.service_id, RC.c.lat, RC.c.lon, RC.c.hours, RC.c.status, RC.c.active)).all()
    hits = []
    for sid, la, lo, h, status, active in rows:
        if not active or status in clinics.HIDDEN_STATUSES or la is None:
            continue
        hh = orjson.loads(h)
        if hours.open_at(hh["availableTime"], at, hh["notAvailable"]):
            hits.append((geo.haversine_km(lat, lon, la, lo), sid))
    hits.sort()
    return [sid for _d, sid in hits[:k]]


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clinics", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    from hutong.api.app import node_store
    from hutong.registry.capability import CAPABILITY

    tmp = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    url = ""
    if args.backend == "postgres":
        import uuid

        from sqlalchemy import create_engine, text
        schema = "bench_" + uuid.uuid4().hex[:12]
        base = os.environ.get("HUTONG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
        admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{base}?options=-csearch_path%3D{schema}"
    store = node_store(load_settings(data_dir=tmp / "data", database_url=url, workers=False))
    for c in CAPABILITY.consumers:
        store.register_consumer(c.name, c.handler, c.types)
    rng = random.Random(17)
    t0 = time.perf_counter()
    batch = []
    for res in _resources(args.clinics, rng):
        batch.append(res)
        if len(batch) >= 3000:
            with store.write() as tx:
                for r in batch:
                    tx.update(r["resourceType"], r["id"], r)
            batch = []
    if batch:
        with store.write() as tx:
            for r in batch:
                tx.update(r["resourceType"], r["id"], r)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.run_consumers()
    index_s = time.perf_counter() - t0
    from hutong.search.index import SearchIndex

    index = SearchIndex()
    origins = [geo.point_in_city(rng.choices(list(geo.CITY_CODES.values()), [30, 15, 8, 4, 6, 4, 8, 6, 9])[0], rng)
               for _ in range(args.queries)]
    t_idx, t_brute, t_near, mismatches = [], [], [], 0
    with store.read() as tx:
        for lat, lon in origins[:20]:  # warm-up
            clinics.nearest_clinics(tx.conn, lat, lon, k=10, at=NOON)
        for lat, lon in origins:
            a = time.perf_counter()
            got = [h.service_id for h in clinics.nearest_clinics(tx.conn, lat, lon, k=10, at=NOON)]
            b = time.perf_counter()
            want = _brute(tx.conn, lat, lon, 10, NOON)
            c = time.perf_counter()
            index.search(tx, "Location", [("near", f"{lat}|{lon}|20|km"), ("_count", "10")], base_url="", strict=True)
            d = time.perf_counter()
            t_idx.append((b - a) * 1000)
            t_brute.append((c - b) * 1000)
            t_near.append((d - c) * 1000)
            mismatches += got != want
    store.close()
    load = os.getloadavg()
    print(f"# nearest-10 over {args.clinics:,} clinics, {args.queries} queries, backend {args.backend}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"load {args.clinics * 3:,} resources: {load_s:.1f} s; clinic index by the consumer: {index_s:.1f} s")
    print("| query | median ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for name, xs in (("nearest_clinics (index, open now, k=10)", t_idx),
                     ("baseline: brute force over every clinic", t_brute),
                     ("mCSD Location?near=…|20|km&_count=10 (search engine)", t_near)):
        print(f"| {name} | {statistics.median(xs):.2f} | {_pct(xs, 95):.2f} | {max(xs):.2f} |")
    print(f"answers different from brute force: {mismatches} of {len(origins)}")


if __name__ == "__main__":
    main()
