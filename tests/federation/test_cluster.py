"""Proof on one machine: a province and three city nodes as separate processes on loopback.

The province loads the registry of the three cities' institutions and distributes it down; each
city then loads its institutions' simulated Patients and clinical data, two of them with their
link to the province cut for a while in the middle of the load. At the end the province holds
exactly each city's data (counts per type and a checksum of every resource's current version),
nothing was applied twice or skipped, a resident recorded in two cities is one person at the
province, and a hosted city's operator sees only their city.

Links: 辽源 (2204) pushes over HTTPS (SQLite), 通化 (2205) over HTTPS with a PostgreSQL database, 白山
(2206) over JetStream on the shared (private) broker. The longer run is
``benchmarks/federation/bench_federation.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date

import httpx
import pytest
from sqlalchemy import create_engine, text

from hutong.china.ids import make_resident_id
from hutong.federation.config import TYPE_SETS
from hutong.federation.localcluster import (
    LinkProxy,
    NodeProcess,
    get_json,
    load_node,
    split_simulation,
    wait_for,
)
from hutong.federation.localnats import NATS_SERVER, PrivateNats
from tests.conftest import PG_URL, SKIP_PG

pytestmark = pytest.mark.slow

CITIES = {"2204": "https", "2205": "https-pg", "2206": "jetstream"}
REGISTRY = "Organization,Location,HealthcareService,Practitioner,PractitionerRole"
CLINICAL = ",".join(sorted(TYPE_SETS["clinical"]))


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from hutong.sim.config import SimConfig
    from hutong.sim.generate import simulate

    base = tmp_path_factory.mktemp("fedsim")
    cfg = SimConfig(residents=600, years=1, seed=11, practitioner_scale=0.1, per_institution=True)
    simulate(cfg, base / "sim", jobs=1)
    return split_simulation(base / "sim", base / "split", list(CITIES))


@pytest.fixture
def pg_schema():
    if SKIP_PG:
        yield ""
        return
    schema = "fed_" + uuid.uuid4().hex[:12]
    admin = create_engine("postgresql+psycopg://" + PG_URL.split("://", 1)[1])
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _patient(mrn_system: str, mrn: str, resident_id: str) -> dict:
    return {"resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": resident_id},
                           {"system": mrn_system, "value": mrn}],
            "name": [{"text": "韩秀英", "family": "韩", "given": ["秀英"]}], "gender": "female",
            "birthDate": "1962-03-14", "telecom": [{"system": "phone", "value": "13904351234"}]}


def test_province_and_three_cities(tmp_path, sim, pg_schema):
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed: the JetStream city needs a broker (apt-get install nats-server)")
    nats = PrivateNats(tmp_path / "nats").start()
    nodes: list[NodeProcess] = []
    proxies: list[LinkProxy] = []
    try:
        province = NodeProcess("province", "22", "province", tmp_path / "province", nats_url=nats.url,
                               federation_nats_url=nats.url).start()
        nodes.append(province)
        province.wait_ready()
        cities: dict[str, NodeProcess] = {}
        links: dict[str, list[LinkProxy]] = {}
        for tenant, mode in CITIES.items():
            http_link = LinkProxy(province.port)
            links[tenant] = [http_link]
            shared = ""
            if mode == "jetstream":
                nats_link = LinkProxy(nats.port)
                links[tenant].append(nats_link)
                shared = f"nats://127.0.0.1:{nats_link.port}"
            proxies.extend(links[tenant])
            cities[tenant] = NodeProcess(
                tenant, tenant, "city", tmp_path / tenant, province_url=f"http://127.0.0.1:{http_link.port}",
                database_url=pg_schema if mode == "https-pg" else "", federation_nats_url=shared).start()
            nodes.append(cities[tenant])
        for city in cities.values():
            city.wait_ready()

        # Down: the province's registry reaches every city (and only through the feed).
        assert load_node(sim["province"], province.url + "/fhir", size=200)["errors"] == 0
        registry = get_json(province.url, "/api/federation/digest", tenant="22", types=REGISTRY)
        assert registry["total"] > 100
        for tenant, city in cities.items():
            wait_for(lambda c=city: get_json(c.url, "/api/federation/digest", tenant="22", types=REGISTRY)
                     == registry, 90, f"the registry at {tenant}", 0.5)

        # Up, under load, with two cities cut off for a while in the middle.
        loaded: dict[str, dict] = {}

        def load_city(tenant: str) -> None:
            loaded[tenant] = load_node(sim[tenant], cities[tenant].url + "/fhir", size=100)

        loaders = [threading.Thread(target=load_city, args=(t,)) for t in cities]
        for t in loaders:
            t.start()
        time.sleep(1.0)
        for link in links["2205"] + links["2206"]:
            link.cut()
        for tenant in ("2205", "2206"):  # the cut cities know they are cut off, and keep working
            wait_for(lambda t=tenant: not get_json(cities[t].url, "/api/federation/status")["uplink"]["connected"],
                     20, f"{tenant} noticing the cut")
        # Both sides keep writing while cut off: the cities take their load, the province changes its
        # registry (a new institution, a renamed one), which must reach every city after the restore.
        created = httpx.post(province.url + "/fhir/Organization", json={
            "resourceType": "Organization", "name": "断网期间新建的机构", "active": True})
        assert created.status_code == 201
        renamed = httpx.get(province.url + "/fhir/Organization", params={"_count": 1}).json()["entry"][0]["resource"]
        renamed["name"] = renamed["name"] + "（更名）"
        assert httpx.put(province.url + f"/fhir/Organization/{renamed['id']}", json=renamed).status_code == 200
        time.sleep(4.0)  # the cities keep taking data while cut off
        for tenant in ("2205", "2206"):
            behind = get_json(cities[tenant].url, "/api/federation/status")["uplink"]
            assert behind["down_since_us"] > 0
        for link in links["2205"] + links["2206"]:
            link.restore()
        for t in loaders:
            t.join(180)
        assert {t: r["errors"] for t, r in loaded.items()} == {t: 0 for t in cities}, loaded

        # Down after the restore: every city holds exactly the province's registry again, each version
        # once (the digest's version sums: a change applied twice or skipped would differ).
        registry = get_json(province.url, "/api/federation/digest", tenant="22", types=REGISTRY)
        for tenant, city in cities.items():
            wait_for(lambda c=city: get_json(c.url, "/api/federation/digest", tenant="22", types=REGISTRY)
                     == registry, 90, f"the registry changed during the cut at {tenant}", 0.5)
        for tenant, city in cities.items():
            want = get_json(city.url, "/api/federation/digest", tenant=tenant, types=CLINICAL)
            assert want["total"] > 100
            wait_for(lambda t=tenant, w=want: get_json(province.url, "/api/federation/digest", tenant=t,
                                                       types=CLINICAL) == w, 120, f"{tenant}'s data at the province", 0.5)
        status = get_json(province.url, "/api/federation/status")
        peers = {p["tenant"]: p for p in status["peers"] if p["direction"] == "up"}
        assert set(peers) == set(cities)
        for tenant, peer in peers.items():
            assert peer["gaps"] == 0 and peer["conflicts"] == 0, (tenant, peer)
            assert peer["events_behind"] == 0
        assert status["stream_ingest"]["refused"] == 0
        for tenant, city in cities.items():  # the province seen from each city: caught up, nothing behind
            down = [p for p in get_json(city.url, "/api/federation/status")["peers"] if p["direction"] == "down"]
            assert len(down) == 1 and down[0]["gaps"] == 0 and down[0]["duplicates_dropped"] == 0, (tenant, down)
            wait_for(lambda c=city: [p for p in get_json(c.url, "/api/federation/status")["peers"]
                                     if p["direction"] == "down"][0]["events_behind"] == 0, 30,
                     f"{tenant} showing no lag behind the province")

        # A resident seen in 辽源 and in 通化 is one person at the province, within seconds.
        rid = make_resident_id("220402", date(1962, 3, 14), 317, "female")
        a = httpx.post(cities["2204"].url + "/fhir/Patient", json=_patient("urn:hutong:mrn:liaoyuan", "LY1", rid))
        b = httpx.post(cities["2205"].url + "/fhir/Patient", json=_patient("urn:hutong:mrn:tonghua", "TH9", rid))
        assert a.status_code == b.status_code == 201
        pa, pb = a.json()["id"], b.json()["id"]

        def linked():
            r = httpx.get(province.url + f"/api/mpi/patients/{pa}/linked")
            return r.status_code == 200 and pb in r.json()["patients"]
        wait_for(linked, 30, "the province linking the two cities' records")

        # A hosted city's operator (tenant 2207, 松原, hosted at the province) sees only their city.
        op = get_json(province.url, "/api/federation/status", as_tenant="2207")
        assert op["peers"] == [] and "relay" not in op
        refused = httpx.get(province.url + "/api/federation/digest", params={"tenant": "2204"},
                            headers={"X-Hutong-Tenant": "2207"})
        assert refused.status_code == 403
        city_op = get_json(province.url, "/api/federation/status", as_tenant="2204")
        assert [p["tenant"] for p in city_op["peers"]] == ["2204"]
    finally:
        for node in nodes:
            node.stop()
        for proxy in proxies:
            proxy.close()
        nats.stop()
