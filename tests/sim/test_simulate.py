import collections
import re
from dataclasses import replace
from datetime import date, datetime

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from hutong.china.ids import (
    is_valid_resident_id,
    is_valid_uscc,
    resident_id_check_char,
    upgrade_resident_id,
)
from hutong.sim import SimConfig, generate_demo, simulate
from hutong.sim import systems as S
from hutong.sim.load import iter_bundles, load

REF = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def _tier(org: dict) -> str:
    return org["type"][1]["coding"][0]["code"]


def _level(org: dict) -> str:
    return org["type"][2]["coding"][0]["code"]


def test_institution_counts_and_levels(province):
    orgs = province.res("Organization")
    lv = collections.Counter(_level(o)[0] for o in orgs)
    assert lv["3"] == 59
    assert lv["2"] == 138
    tiers = collections.Counter(_tier(o) for o in orgs)
    assert tiers["chc"] + tiers["thc"] == 857
    assert tiers["village-clinic"] > 50
    assert len(orgs) == len(province.res("Location"))
    platforms = {e["valueCoding"]["code"] for o in orgs for e in o["extension"] if e["url"] == S.EXT_PLATFORM}
    assert len(platforms) == 11


def test_credit_codes_valid_and_unique(province):
    codes = [i["value"] for o in province.res("Organization") for i in o["identifier"] if i["system"] == S.USCC]
    assert len(codes) == len(province.res("Organization"))
    assert all(is_valid_uscc(c) for c in codes)
    assert len(set(codes)) == len(codes)


def test_part_of_hierarchy(province):
    orgs = {o["id"]: o for o in province.res("Organization")}
    for o in orgs.values():
        t = _tier(o)
        parent = orgs[o["partOf"]["reference"].split("/")[1]] if "partOf" in o else None
        if t == "village-clinic":
            assert _tier(parent) == "thc"
        elif t == "thc":
            assert _level(parent)[0] in "23"
            assert parent.get("partOf") is None


def test_online_doctors(province):
    roles = province.res("PractitionerRole")
    online = [r for r in roles if any(c["coding"][0]["code"] == "online-consultation" for c in r["code"])]
    assert len(online) == 1682
    assert len({r["organization"]["reference"] for r in online}) == 155
    titles = collections.Counter(r["code"][0]["coding"][0]["display"] for r in roles)
    assert {"主任医师", "副主任医师", "主治医师", "住院医师", "医师", "乡村医生"} <= set(titles)


def test_services_fever_and_internet(province):
    hcs = province.res("HealthcareService")
    kinds = collections.Counter(h["type"][0]["coding"][0]["code"] for h in hcs)
    assert kinds["internet-hospital"] == 155
    assert kinds["fever-clinic"] >= 59
    assert all(h.get("availableTime") for h in hcs)
    assert all(loc["hoursOfOperation"] and -90 < loc["position"]["latitude"] < 90 for loc in province.res("Location"))


def test_every_reference_resolves(province):
    ids = {(r["resourceType"], r["id"]) for r in province.all()}
    missing = []

    def walk(x):
        if isinstance(x, dict):
            ref = x.get("reference")
            if isinstance(ref, str):
                m = REF.match(ref)
                if not m or (m.group(1), m.group(2)) not in ids:
                    missing.append(ref)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for r in province.all():
        walk(r)
    assert not missing[:5]


def test_resources_valid_r4(province):
    validation = pytest.importorskip("hutong.fhir.validation")
    bad = []
    for r in province.all():
        issues = [i for i in validation.validate_resource(r) if i.severity in ("error", "fatal")]
        if issues:
            bad.append((r["resourceType"], r["id"], issues[:2]))
    assert not bad[:5]


def test_ids_unique_and_deterministic_format(province):
    seen = set()
    for r in province.all():
        key = (r["resourceType"], r["id"])
        assert key not in seen
        seen.add(key)
        assert re.match(r"^[A-Za-z0-9\-.]{1,64}$", r["id"])


def _rid(p: dict) -> str | None:
    return next((i["value"] for i in p["identifier"] if i["system"] == S.RESIDENT_ID), None)


def test_resident_ids_valid_exactly_where_no_error_injected(province):
    persons = {p["person_id"]: p for p in province.truth("persons")}
    assert len({p["resident_id"] for p in persons.values()}) == len(persons)
    for p in persons.values():
        assert is_valid_resident_id(p["resident_id"])
        # sex parity and birth date encoded in the number
        assert (int(p["resident_id"][16]) % 2 == 1) == (p["sex"] == "male")
        assert p["resident_id"][6:14] == p["birth_date"].replace("-", "")
    truth = {t["source_patient_id"]: t for t in province.truth("source_patients")}
    pats = province.res("Patient")
    assert len(pats) == len(truth)
    kinds = collections.Counter()
    for pat in pats:
        t = truth[pat["id"]]
        var = set(filter(None, t["variations"].split(";")))
        person = persons[t["person_id"]]
        rid = _rid(pat)
        if var & {"id_missing", "newborn_placeholder"}:
            assert rid is None
            kinds["none"] += 1
        elif "id_old15" in var:
            assert len(rid) == 15 and upgrade_resident_id(rid) == person["resident_id"]
            assert person["birth_date"] < "1985"
            kinds["old15"] += 1
        elif var & {"id_digit_typo", "id_transposition"}:
            assert len(rid) == 18 and not is_valid_resident_id(rid) and rid != person["resident_id"]
            kinds["typo"] += 1
        else:
            assert rid == person["resident_id"] and is_valid_resident_id(rid)
            kinds["valid"] += 1
        if not var & {"name_homophone", "name_traditional", "newborn_placeholder"}:
            assert pat["name"][0]["text"] == person["name"]
        if "birthdate_swap" not in var:
            assert pat["birthDate"] == person["birth_date"]
    assert kinds["valid"] > 0.7 * len(pats)


def test_distributions(province):
    persons = province.truth("persons")
    sex = collections.Counter(p["sex"] for p in persons)
    assert 0.9 < sex["male"] / sex["female"] < 1.1
    ages = [2024 - int(p["birth_date"][:4]) for p in persons]
    n = len(ages)
    assert 0.08 < sum(a < 15 for a in ages) / n < 0.25
    assert 0.10 < sum(a >= 65 for a in ages) / n < 0.30
    assert max(ages) <= 100
    eth = collections.Counter(p["ethnicity"] for p in persons)
    assert eth["01"] / n > 0.8
    # families share addresses and phones
    by_hh = collections.defaultdict(list)
    for p in persons:
        by_hh[p["household"]].append(p)
    multi = [m for m in by_hh.values() if len(m) > 1]
    assert multi and all(len({m["address_line"] for m in hh}) == 1 for hh in multi)
    assert any(len({m["phone"] for m in hh}) < len(hh) for hh in multi)
    # visits per resident per year, source records per resident
    enc = province.manifest["counts"]["Encounter"] / n / 2
    assert 2 < enc < 15
    per_person = collections.Counter(t["person_id"] for t in province.truth("source_patients"))
    assert 1.5 < sum(per_person.values()) / len(per_person) < 6


def test_encounters_seasonal_and_classes(province):
    encs = province.res("Encounter")
    cls = collections.Counter(e["class"]["code"] for e in encs)
    assert cls["AMB"] > cls["IMP"] > 0 and cls["EMER"] > 0
    resp = collections.Counter(
        int(e["period"]["start"][5:7]) for e in encs if e["reasonCode"][0]["coding"][0]["code"].startswith("J"))
    assert resp[1] + resp[12] > resp[7] + resp[8]


def test_labs(province):
    obs = province.res("Observation")
    flags = collections.Counter(o["interpretation"][0]["coding"][0]["code"] for o in obs)
    assert flags["N"] > flags["H"] > 0 and flags["L"] > 0
    for o in obs[:5000]:
        if "valueQuantity" in o:
            q = o["valueQuantity"]
            assert q["system"] == S.UCUM and q["value"] > 0
            rr = o["referenceRange"][0]
            hi, lo = rr.get("high", {}).get("value"), rr.get("low", {}).get("value")
            flag = o["interpretation"][0]["coding"][0]["code"]
            want = "H" if hi is not None and q["value"] > hi else "L" if lo is not None and q["value"] < lo else "N"
            assert flag == want
    reports = {r["id"]: r for r in province.res("DiagnosticReport")}
    repeats = province.truth("repeat_tests")
    assert len(repeats) > 50
    for row in repeats:
        a, b = reports[row["first_report"]], reports[row["repeat_report"]]
        assert a["code"] == b["code"] and row["first_organization"] != row["repeat_organization"]
        assert a["performer"] != b["performer"]
        assert 0 < int(row["days_apart"]) <= 45
        da = datetime.fromisoformat(a["effectiveDateTime"]).date()
        db = datetime.fromisoformat(b["effectiveDateTime"]).date()
        assert (db - da).days == int(row["days_apart"])


def test_newborn_placeholders(province):
    truth = {t["source_patient_id"]: t for t in province.truth("source_patients")}
    babies = [p for p in province.res("Patient") if "newborn_placeholder" in truth[p["id"]]["variations"]]
    assert babies
    for b in babies:
        assert re.search(r"之[子女]$", b["name"][0]["text"]) and _rid(b) is None


def test_variation_rates_near_configuration(noisy):
    rows = noisy.truth("source_patients")
    persons = {p["person_id"]: p for p in noisy.truth("persons")}
    n = len(rows)
    c = collections.Counter(v for r in rows for v in r["variations"].split(";") if v)
    nb = c["newborn_placeholder"]
    eligible = n - nb

    def near(observed, expected, count):
        sd = (expected * (1 - expected) / count) ** 0.5
        return abs(observed / count - expected) < 5 * sd + 0.01

    assert near(c["id_missing"], 0.2, eligible)
    assert near(c["phone_new"], 0.25, n)
    assert near(c["phone_missing"], 0.1, n)
    assert near(c["address_rewrite"], 0.4, n)
    with_id = eligible - c["id_missing"]
    assert near(c["id_digit_typo"], 0.1, with_id - c["id_old15"])
    assert near(c["id_transposition"], 0.1, with_id - c["id_old15"])
    old_eligible = sum(1 for r in rows if persons[r["person_id"]]["birth_date"] < "1985"
                       and "id_missing" not in r["variations"] and "newborn" not in r["variations"])
    assert near(c["id_old15"], 0.2, old_eligible)
    # homophones need a confusable character; most common names have one
    assert 0.15 * eligible < c["name_homophone"] <= 0.3 * eligible + 5 * (eligible ** 0.5)
    swap_eligible = sum(1 for r in rows if int(persons[r["person_id"]]["birth_date"][8:]) <= 12
                        and int(persons[r["person_id"]]["birth_date"][8:]) != int(persons[r["person_id"]]["birth_date"][5:7]))
    assert near(c["birthdate_swap"], 0.3, swap_eligible)


def test_determinism_by_seed(tmp_path):
    cfg = SimConfig(residents=200, seed=42, practitioner_scale=0.05, per_institution=True)
    simulate(cfg, tmp_path / "a")
    simulate(cfg, tmp_path / "b")
    simulate(replace(cfg, seed=43), tmp_path / "c")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert any(str(f).startswith("institutions") for f in files)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "Patient.ndjson").read_bytes() != (tmp_path / "c" / "Patient.ndjson").read_bytes()
    # a second run into the same folder gives the same bytes too
    simulate(cfg, tmp_path / "a")
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_output_does_not_depend_on_the_number_of_processes(tmp_path, monkeypatch):
    from hutong.sim import generate

    monkeypatch.setattr(generate, "CHUNK_HOUSEHOLDS", 20)  # several chunks at a test's size
    cfg = SimConfig(residents=150, seed=5, practitioner_scale=0.05, per_institution=True)
    one = simulate(cfg, tmp_path / "one", jobs=1)
    two = simulate(cfg, tmp_path / "two", jobs=2)
    assert one == two and one["households"] > 3 * 20
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert not any(".chunks" in str(f) for f in files)
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    # Chunks number their records in separate blocks: record numbers stay unique per institution.
    seen = set()
    for line in (tmp_path / "one" / "Patient.ndjson").read_bytes().splitlines():
        for ident in orjson.loads(line).get("identifier", []):
            if ident["system"].startswith("urn:hutong:mrn:"):
                key = (ident["system"], ident["value"])
                assert key not in seen, key
                seen.add(key)
    assert seen


def test_config_file_and_unknown_keys(tmp_path):
    p = tmp_path / "sim.toml"
    p.write_text("residents = 123\nseed = 9\n[variation]\nid_missing = 0.5\n", encoding="utf-8")
    cfg = SimConfig.from_file(p)
    assert cfg.residents == 123 and cfg.variation.id_missing == 0.5
    p.write_text("residnts = 1\n", encoding="utf-8")
    with pytest.raises(ValueError):
        SimConfig.from_file(p)


def test_cli(tmp_path):
    import typer

    from hutong.sim.cli import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root():
        pass

    cfg = tmp_path / "c.json"
    cfg.write_text('{"practitioner_scale": 0.05}', encoding="utf-8")
    r = CliRunner().invoke(app, ["simulate", "-n", "50", "--seed", "2", "--out", str(tmp_path / "o"),
                                 "--config", str(cfg), "--var", "id_missing=1.0"])
    assert r.exit_code == 0, r.output
    m = orjson.loads((tmp_path / "o" / "manifest.json").read_bytes())
    assert m["residents"] == 50 and m["config"]["variation"]["id_missing"] == 1.0
    r = CliRunner().invoke(app, ["simulate", "-n", "5", "--out", str(tmp_path / "o"), "--var", "bogus=1"])
    assert r.exit_code != 0


def test_generate_demo(tmp_path):
    m = generate_demo(tmp_path)
    assert m["residents"] == 2000 and m["counts"]["Organization"] > 1000
    assert (tmp_path / "Patient.ndjson").exists() and (tmp_path / "truth" / "source_patients.csv").exists()


def test_load_posts_put_bundles_in_dependency_order(tmp_path):
    simulate(SimConfig(residents=30, seed=1, practitioner_scale=0.02), tmp_path)
    seen_types: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        b = orjson.loads(request.content)
        assert b["resourceType"] == "Bundle" and b["type"] == "batch" and len(b["entry"]) <= 200
        for e in b["entry"]:
            assert e["request"]["method"] == "PUT"
            assert e["request"]["url"] == f"{e['resource']['resourceType']}/{e['resource']['id']}"
            if not seen_types or seen_types[-1] != e["resource"]["resourceType"]:
                seen_types.append(e["resource"]["resourceType"])
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response",
                                         "entry": [{"response": {"status": "201 Created"}} for _ in b["entry"]]})

    res = load(tmp_path, "http://x/fhir", size=200, bundle_type="batch", progress=False,
               transport=httpx.MockTransport(handler))
    assert res["errors"] == 0 and res["resources"] == sum(orjson.loads((tmp_path / "manifest.json").read_bytes())["counts"].values())
    assert seen_types.index("Organization") < seen_types.index("Patient") < seen_types.index("Encounter")
    assert seen_types.index("ImagingStudy") < seen_types.index("DiagnosticReport")
    assert sum(1 for _ in iter_bundles(tmp_path, 1000)) >= 1


def test_ids_helpers_still_consistent():
    # the check digit the simulator relies on (ISO 7064 MOD 11-2) detects single-digit errors
    first17 = "22010219900101123"
    good = resident_id_check_char(first17)
    for i in range(17):
        d = int(first17[i])
        bad = first17[:i] + str((d + 1) % 10) + first17[i + 1:]
        assert resident_id_check_char(bad) != good
    assert date(2024, 1, 1)
