"""Fever-clinic navigation: nearest open clinics (checked against brute force), status, hours, features."""

import random
from datetime import datetime

import httpx

from hutong.core.caller import Caller
from hutong.core.clock import SHANGHAI
from hutong.registry import clinics, geo, seed
from tests.registry.helpers import ALLDAYS, fever_clinic, load, location, organization, with_consumers

CHANGCHUN = (43.8868, 125.3245)  # 人民广场
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI)  # a Wednesday


def _province(n: int = 60, seed_: int = 5) -> list[dict]:
    """``n`` clinics placed at random inside the province's cities, some night-only, some children's."""
    rng = random.Random(seed_)
    out = []
    cities = list(geo.CITY_CODES.values())
    for i in range(n):
        city = "2201" if i < n // 2 else cities[i % len(cities)]
        lat, lon = geo.point_in_city(city, rng, near=CHANGCHUN if city == "2201" else None, spread_km=25)
        org, loc, svc = f"o{i}", f"l{i}", f"s{i}"
        available = None
        if i % 7 == 3:  # night clinic
            available = [{"daysOfWeek": ALLDAYS, "availableStartTime": "18:00:00", "availableEndTime": "08:00:00"}]
        out += [organization(org, f"测试医院{i}", city + "02" if city != "2224" else "222401", None),
                location(loc, org, lat, lon),
                fever_clinic(svc, org, loc, f"测试医院{i}发热门诊", available, ("children",) if i % 5 == 0 else ())]
    return out


def _brute(resources, lat, lon, at, k, feature=None):
    locs = {r["id"]: r for r in resources if r["resourceType"] == "Location"}
    rows = []
    for r in resources:
        if r["resourceType"] != "HealthcareService":
            continue
        if feature and not any(e.get("valueCode") == feature for e in r.get("extension", [])):
            continue
        from hutong.registry import hours
        if not hours.open_at(r["availableTime"], at):
            continue
        p = locs[r["location"][0]["reference"].split("/")[1]]["position"]
        rows.append((geo.haversine_km(lat, lon, p["latitude"], p["longitude"]), r["id"]))
    return [sid for _d, sid in sorted(rows)[:k]]


def test_nearest_three_open_in_changchun_match_brute_force(store):
    res = _province()
    load(store, res)
    rng = random.Random(9)
    for _ in range(15):
        lat, lon = geo.point_in_city("2201", rng, near=CHANGCHUN, spread_km=20)
        for at in (NOON, datetime(2026, 12, 2, 23, 30, tzinfo=SHANGHAI)):
            with store.read() as tx:
                got = [h.service_id for h in clinics.nearest_clinics(tx.conn, lat, lon, k=3, at=at)]
            assert got == _brute(res, lat, lon, at, 3)
    with store.read() as tx:
        got = clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=5, at=NOON, features=["children"])
    assert [h.service_id for h in got] == _brute(res, *CHANGCHUN, NOON, 5, "children")
    assert all("children" in h.features for h in got)


def test_far_away_position_still_finds_the_nearest(store):
    res = _province(12)
    load(store, res)
    with store.read() as tx:  # 北京: everything is hundreds of km away
        got = [h.service_id for h in clinics.nearest_clinics(tx.conn, 39.9, 116.4, k=2, at=NOON)]
    assert got == _brute(res, 39.9, 116.4, NOON, 2)


def test_closing_a_clinic_removes_it_at_once(store):
    res = _province(20)
    load(store, res)
    with store.read() as tx:
        first = clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=3, at=NOON)[0]
    out = clinics.set_clinic_status(store, first.service_id, "paused", note="人员不足")
    assert out["listed"] is False and out["status_text"] == "暂停接诊"
    with store.read() as tx:  # no consumer run: the status change updated the index in its own transaction
        after = [h.service_id for h in clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=3, at=NOON)]
    assert first.service_id not in after
    with store.read() as tx:
        svc = tx.read("HealthcareService", first.service_id).resource
    assert clinics.clinic_status(svc)[0] == "paused"
    clinics.set_clinic_status(store, first.service_id, "full")
    with store.read() as tx:
        back = clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=3, at=NOON)
    assert back[0].service_id == first.service_id and back[0].status == "full" and back[0].status_set


def test_an_institution_sets_only_its_own_clinic(store):
    load(store, _province(4))
    clinics.set_clinic_status(store, "s1", "closed", caller=Caller("his-o1", institution="o1", roles=frozenset({"terminal"})))
    try:
        clinics.set_clinic_status(store, "s2", "closed", caller=Caller("his-o1", institution="o1", roles=frozenset({"terminal"})))
    except Exception as exc:  # noqa: BLE001
        assert getattr(exc, "status", None) == 403
    else:
        raise AssertionError("another institution's clinic was changed")


def test_fhir_changes_reach_the_index_through_the_change_log(store):
    load(store, _province(4))
    with store.write() as tx:  # move a clinic to the middle of 长春 and make it a night clinic
        loc = tx.read("Location", "l3").resource
        loc["position"] = {"latitude": CHANGCHUN[0] + 0.001, "longitude": CHANGCHUN[1]}
        tx.update("Location", "l3", loc)
        svc = tx.read("HealthcareService", "s3").resource
        svc["availableTime"] = [{"daysOfWeek": ["wed"], "availableStartTime": "22:00:00", "availableEndTime": "06:00:00"}]
        tx.update("HealthcareService", "s3", svc)
    store.run_consumers()
    with store.read() as tx:
        late = clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=1, at=datetime(2026, 12, 3, 1, 0, tzinfo=SHANGHAI))
        noon = clinics.nearest_clinics(tx.conn, *CHANGCHUN, k=1, at=NOON)
    assert late[0].service_id == "s3" and late[0].distance_km < 0.2 and late[0].hours == "周三 22:00–次日06:00"
    assert noon[0].service_id != "s3"
    with store.write() as tx:
        tx.delete("HealthcareService", "s3")
    store.run_consumers()
    with store.read() as tx:
        assert "s3" not in {c["service_id"] for c in clinics.all_clinics(tx.conn)}


def test_real_2020_list_imports_inside_each_city(store):
    with_consumers(store)
    assert seed.import_fever_clinics(store) == 112 * 3
    assert seed.import_fever_clinics(store) == 0  # idempotent
    store.run_consumers()
    with store.read() as tx:
        rows = clinics.all_clinics(tx.conn)
    assert len(rows) == 112
    for r in rows:
        assert geo.city_at(r["lat"], r["lon"]) == r["city"], r["name"]
        assert set(r["demo_defaults"]) == {"hours", "phone", "position"}
    assert sum("designated" in r["features"] for r in rows) == 56
    nongan = next(r for r in rows if r["name"] == "农安县人民医院发热门诊")
    assert nongan["division"] == "220122"


def test_navigation_api(server, server_store):
    load(server_store, _province(20))
    r = httpx.get(f"{server}/api/registry/fever-clinics/nearest",
                  params={"lat": CHANGCHUN[0], "lon": CHANGCHUN[1], "k": 3, "at": "2026-12-02T12:00:00"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["clinics"]) == 3 and body["origin"]["datum"] == "WGS-84"
    d = [c["distance_km"] for c in body["clinics"]]
    assert d == sorted(d) and body["clinics"][0]["phone"] == "0431-88880000"
    # the same point as a 高德 (GCJ-02) position gives the same origin within a metre
    g = geo.wgs84_to_gcj02(*CHANGCHUN)
    r2 = httpx.get(f"{server}/api/registry/fever-clinics/nearest", params={"lat": g[0], "lon": g[1], "datum": "gcj02"})
    assert geo.haversine_km(*CHANGCHUN, r2.json()["origin"]["latitude"], r2.json()["origin"]["longitude"]) < 0.001
    by_district = httpx.get(f"{server}/api/registry/fever-clinics/nearest", params={"district": "220122"})
    assert by_district.status_code == 200 and by_district.json()["clinics"]
    sid = body["clinics"][0]["service_id"]
    put = httpx.put(f"{server}/api/registry/fever-clinics/{sid}/status", json={"status": "closed"})
    assert put.status_code == 200 and put.json()["listed"] is False
    again = httpx.get(f"{server}/api/registry/fever-clinics/nearest",
                      params={"lat": CHANGCHUN[0], "lon": CHANGCHUN[1], "k": 3, "at": "2026-12-02T12:00:00"})
    assert sid not in [c["service_id"] for c in again.json()["clinics"]]
    for bad in ({"lat": 100, "lon": 1}, {}, {"district": "110101"}, {"lat": 1, "lon": 2, "datum": "x"},
                {"lat": 43, "lon": 125, "feature": "vip"}):
        resp = httpx.get(f"{server}/api/registry/fever-clinics/nearest", params=bad)
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["resourceType"] == "OperationOutcome"
    bad_status = httpx.put(f"{server}/api/registry/fever-clinics/{sid}/status", json={"status": "gone"})
    assert bad_status.status_code == 400
    missing = httpx.put(f"{server}/api/registry/fever-clinics/nope/status", json={"status": "open"})
    assert missing.status_code == 404
