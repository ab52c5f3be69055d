"""mCSD queries a hospital system sends, over real HTTP: Location Distance (``near``), change feeds,
the hierarchy, services and roles."""

import time
import urllib.parse
from datetime import UTC, datetime

from hutong.registry import geo
from tests.registry.helpers import load, location, organization, small_registry

EXT = "http://hl7.org/fhir/StructureDefinition/location-distance"
ORIGIN = (43.8868, 125.3245)

# Locations at known offsets north of the origin (1° of latitude ≈ 111.195 km on the mean sphere)
SPOTS = {"n1": 0.005, "n2": 0.02, "n3": 0.045, "n4": 0.09, "n5": 0.2, "n6": 0.0005}


def _locations(store):
    res = [organization("o-near", "近邻医院", "220102", "2A")]
    res += [location(k, "o-near", ORIGIN[0] + d, ORIGIN[1] + (0.001 if k == "n3" else 0), f"点{k}") for k, d in SPOTS.items()]
    load(store, res)


def _dist(entry) -> dict:
    (ext,) = entry["search"]["extension"]
    assert ext["url"] == EXT
    return ext["valueDistance"]


def test_near_sorts_by_distance_with_the_distance_extension(fhir, server_store):
    _locations(server_store)
    near = f"{ORIGIN[0]}|{ORIGIN[1]}|12|km"
    b = fhir.get("/Location", params={"near": near}).json()
    ids = [e["resource"]["id"] for e in b["entry"]]
    assert ids == ["n6", "n1", "n2", "n3", "n4"] and b["total"] == 5  # n5 is 22 km away
    for e in b["entry"]:
        pos = e["resource"]["position"]
        want = geo.haversine_km(*ORIGIN, pos["latitude"], pos["longitude"])
        d = _dist(e)
        assert d["unit"] == "km" and d["code"] == "km" and d["system"] == "http://unitsofmeasure.org"
        assert abs(d["value"] - want) < 1e-5
        assert e["search"]["mode"] == "match"
    # metres, and a radius that cuts between n2 (2.22 km) and n3 (5.0 km)
    b = fhir.get("/Location", params={"near": f"{ORIGIN[0]}|{ORIGIN[1]}|3000|m"}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["n6", "n1", "n2"]
    assert _dist(b["entry"][2])["unit"] == "m" and 2200 < _dist(b["entry"][2])["value"] < 2240


def test_near_pages_in_distance_order_and_combines_with_other_filters(fhir, server_store):
    _locations(server_store)
    load(server_store, [organization("o-far", "远方医院", "220102", "2A"),
                        location("f1", "o-far", ORIGIN[0] + 0.001, ORIGIN[1])])
    near = f"{ORIGIN[0]}|{ORIGIN[1]}|50|km"
    seen = []
    url = "/Location?" + urllib.parse.urlencode({"near": near, "_count": 2})
    while url:
        b = fhir.get(url).json()
        seen += [e["resource"]["id"] for e in b["entry"] if e["search"]["mode"] == "match"]
        nxt = [lk["url"] for lk in b["link"] if lk["relation"] == "next"]
        url = nxt[0].split("/fhir", 1)[1] if nxt else None
    assert seen == ["n6", "f1", "n1", "n2", "n3", "n4", "n5"]
    only = fhir.get("/Location", params={"near": near, "organization": "Organization/o-far"}).json()
    assert [e["resource"]["id"] for e in only["entry"]] == ["f1"]
    inc = fhir.get("/Location", params={"near": f"{ORIGIN[0]}|{ORIGIN[1]}|1", "_include": "Location:organization"}).json()
    kinds = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in inc["entry"]]
    assert kinds[:3] == [("Location", "match")] * 3 and ("Organization", "include") in kinds
    count = fhir.get("/Location", params={"near": near, "_summary": "count"}).json()
    assert count["total"] == 7 and "entry" not in count


def test_bad_near_values_are_400(fhir, server_store):
    for bad in ("abc", "43.8|", "95|125|1|km", "43.8|125.3|1|parsec", "43.8|125.3|-1|km"):
        r = fhir.get("/Location", params={"near": bad})
        assert r.status_code == 400, bad
        assert r.json()["resourceType"] == "OperationOutcome"


def test_hierarchy_services_and_roles_queries(fhir, server_store):
    load(server_store, small_registry())
    b = fhir.get("/Organization", params={"partof": "Organization/h-county"}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["h-town"]
    b = fhir.get("/Organization", params={"type": "https://hutong.example/fhir/CodeSystem/institution-level|3A",
                                          "_revinclude": "Location:organization"}).json()
    assert {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]} == {
        ("Organization", "h-prov"), ("Location", "l-prov")}
    b = fhir.get("/HealthcareService", params={"organization": "Organization/h-prov",
                                               "specialty": "https://hutong.example/fhir/CodeSystem/department|07"}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["d-ped"]
    b = fhir.get("/PractitionerRole", params={"organization": "Organization/h-prov", "_include": "PractitionerRole:practitioner",
                                              "role": "https://hutong.example/fhir/CodeSystem/practitioner-role|online-consultation"}).json()
    assert {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]} == {
        ("PractitionerRole", "r1"), ("Practitioner", "p1")}


def test_change_feeds_lastupdated_and_history(fhir, server_store):
    load(server_store, small_registry())
    time.sleep(0.01)
    since = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    time.sleep(0.01)
    org = fhir.get("/Organization/h-town").json()
    org["name"] = "合隆镇中心卫生院"
    assert fhir.put("/Organization/h-town", json=org).status_code == 200
    changed = fhir.get("/Organization", params={"_lastUpdated": f"gt{since}"}).json()
    assert [e["resource"]["id"] for e in changed["entry"]] == ["h-town"]
    hist = fhir.get("/Organization/_history", params={"_since": since}).json()
    assert hist["type"] == "history"
    assert [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in hist["entry"]] == [("h-town", "2")]
    whole = fhir.get("/_history", params={"_since": since}).json()
    assert [e["resource"]["id"] for e in whole["entry"]] == ["h-town"]
