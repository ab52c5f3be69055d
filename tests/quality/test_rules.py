"""The rules, code checks, weekday baseline and level table, as plain Python (no database)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hutong.china.ids import make_resident_id, uscc_check_char
from hutong.quality import arrivals, baseline, codes, levels, rules

LAB = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]


def _obs(**kw) -> dict:
    return {"resourceType": "Observation", "status": "final", "category": LAB,
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, **kw}


def _outcomes(resource) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for o in rules.evaluate(resource):
        out[o.rule] = out.get(o.rule, True) and o.ok
    return out


def test_loinc_check_digits_of_real_codes():
    for code in ("2345-7", "718-7", "6690-2", "789-8", "4544-3", "2160-0", "1742-6", "26464-8"):
        assert codes.is_valid_loinc(code), code
    for code in ("2345-8", "718-1", "2345", "LP1234-5", "", "12345678-1"):
        assert not codes.is_valid_loinc(code), code


@given(st.integers(min_value=1, max_value=9_999_999))
def test_exactly_one_check_digit_is_accepted(number):
    good = codes.loinc_check_digit(str(number))
    assert [d for d in range(10) if codes.is_valid_loinc(f"{number}-{d}")] == [good]


def test_icd10_forms_including_the_national_clinical_edition():
    for code in ("I10", "E11.9", "J44.9", "A00.001", "I10.x00", "U07.1", "Z38.0"):
        assert codes.is_valid_icd10(code), code
    for code in ("i10", "I1", "110", "E11..9", "高血压", "E11.99999X"):
        assert not codes.is_valid_icd10(code), code


def test_national_code_sets():
    assert codes.is_valid_ethnicity("01") and codes.is_valid_ethnicity("56") and codes.is_valid_ethnicity("97")
    assert not codes.is_valid_ethnicity("57") and not codes.is_valid_ethnicity("1")
    assert codes.is_valid_division("220102") and codes.is_valid_division("22")
    assert not codes.is_valid_division("229999") and not codes.is_valid_division("22010A")


def test_lab_result_without_unit_or_range_fails_completeness():
    ok = _obs(valueQuantity={"value": 5.2, "unit": "mmol/L"}, referenceRange=[{"text": "3.9-6.1"}])
    assert _outcomes(ok) == {"lab-loinc": True, "loinc-format": True, "lab-unit": True, "lab-range": True}
    bad = _obs(valueQuantity={"value": 5.2})
    assert _outcomes(bad) == {"lab-loinc": True, "loinc-format": True, "lab-unit": False, "lab-range": False}
    # Not a lab result: no lab rules apply.
    vital = {**bad, "category": [{"coding": [{"code": "vital-signs"}]}]}
    assert _outcomes(vital) == {}


def test_local_codes_and_bad_loinc_are_conformance_failures():
    local = _obs(code={"coding": [{"system": "urn:local", "code": "GLU"}]}, valueQuantity={"value": 1, "unit": "x"})
    assert _outcomes(local)["lab-loinc"] is False
    wrong = _obs(code={"coding": [{"system": "http://loinc.org", "code": "2345-1"}]})
    [o] = [o for o in rules.evaluate(wrong) if o.rule == "loinc-format"]
    assert not o.ok and o.detail == "2345-1"


def test_patient_identifiers_and_codes():
    good_id = make_resident_id("220102", date(1980, 5, 1), 12, "male")
    bad_id = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")
    base = {"resourceType": "Patient", "extension": [{"url": rules.ETHNICITY_URL, "valueCoding": {"code": "01"}}],
            "address": [{"extension": [{"url": rules.DIVISION_URL, "valueCode": "220102"}]}]}
    good = {**base, "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": good_id}]}
    assert set(_outcomes(good).values()) == {True}
    bad = {**base, "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": bad_id}],
           "extension": [{"url": rules.ETHNICITY_URL, "valueCoding": {"code": "77"}}]}
    out = _outcomes(bad)
    assert out["resident-id-check"] is False and out["patient-resident-id"] is False and out["ethnicity-code"] is False
    # The resident ID is personal data: never carried as a detail.
    assert all(bad_id not in o.detail for o in rules.evaluate(bad))
    assert _outcomes({"resourceType": "Patient"}) == {"patient-resident-id": False}


def test_organization_credit_code():
    first = "12220000412760530"
    good = first + uscc_check_char(first)
    org = {"resourceType": "Organization", "identifier": [{"system": "https://hutong.example/fhir/sid/uscc", "value": good}]}
    assert _outcomes(org) == {"org-uscc": True, "uscc-check": True}
    org["identifier"][0]["value"] = first + ("0" if good[-1] != "0" else "1")
    assert _outcomes(org)["uscc-check"] is False


def test_outpatient_visit_needs_a_coded_diagnosis():
    visit = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
    assert _outcomes(visit) == {"visit-dx": False}
    visit["reasonCode"] = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]}]
    assert _outcomes(visit) == {"visit-icd10-format": True, "visit-dx": True}
    assert _outcomes({**visit, "class": {"code": "IMP"}}) == {"visit-icd10-format": True}


def test_every_rule_has_a_check_and_names():
    assert len({r.id for r in rules.RULES}) == len(rules.RULES)
    for r in rules.RULES:
        assert r.zh and r.en and r.element.startswith(r.res_type) and len(r.id) <= 32


def test_sender_interface_and_latency():
    res = {"resourceType": "Observation", "meta": {"source": "urn:hutong:org:h1#lis-hl7v2"},
           "issued": "2026-11-02T10:00:00+08:00"}
    assert arrivals.institution_of(res) == "h1"
    assert arrivals.interface_of("Observation", res) == "hl7v2"
    assert arrivals.interface_of("DocumentReference", res) == "document"
    assert arrivals.interface_of("Patient", {"meta": {"source": "urn:hutong:org:h1"}}) == "fhir"
    assert arrivals.institution_of({"meta": {"source": "http://elsewhere"}}) == ""
    assert arrivals.event_time_us(res) is not None
    assert arrivals.event_time_us({"resourceType": "Observation", "effectiveDateTime": "2026-11-02"}) is None
    assert [arrivals.latency_bucket(s) for s in (0, 3600, 3601, 86_400 * 7, 86_400 * 8)] == \
        ["le_1h", "le_1h", "le_1d", "le_7d", "gt_7d"]


def _weekdays_only(start: date, weeks: int, n: int = 50) -> dict[str, int]:
    out = {}
    for k in range(weeks * 7):
        d = start + timedelta(days=k)
        if d.weekday() < 5:
            out[d.isoformat()] = n
    return out


def test_a_hospital_that_stops_is_flagged_and_sundays_are_not():
    start = date(2026, 10, 5)  # a Monday
    per_day = _weekdays_only(start, 6)
    days = baseline.days_back((start + timedelta(days=41)).isoformat(), 14)
    assert [c for c in baseline.check_days(per_day, days) if c.gap] == []  # weekends never flagged
    stop = start + timedelta(days=42)  # a Monday with nothing
    check = baseline.check_day(per_day, stop.isoformat())
    assert check.expected and check.gap and check.baseline == 50
    per_day[stop.isoformat()] = 2  # a trickle is a gap too
    assert baseline.check_day(per_day, stop.isoformat()).gap
    per_day[stop.isoformat()] = 30
    assert not baseline.check_day(per_day, stop.isoformat()).gap


def test_a_new_sender_is_not_expected_yet():
    per_day = {"2026-11-02": 10, "2026-11-09": 10}
    c = baseline.check_day(per_day, "2026-11-16")
    assert not c.expected and not c.gap


def _full_marks() -> dict[str, float]:
    ind: dict[str, float] = {}
    for lv in levels.LEVELS:
        for r in lv.requirements:
            ind[r.indicator] = max(ind.get(r.indicator, 0), r.threshold) if r.op == ">=" else 0
    return ind


def test_levels_are_cumulative_and_say_what_is_missing():
    ind = _full_marks()
    assert levels.estimate(ind).level.code == "5A" and levels.estimate(ind).next_level is None
    ind["rate:lab-unit"] = 0.5  # a level-3 requirement fails: stuck at level 2, whatever else holds
    est = levels.estimate(ind)
    assert est.level.code == "2" and est.next_level.code == "3"
    assert [(s.requirement.indicator, s.value) for s in est.missing] == [("rate:lab-unit", 0.5)]
    assert levels.estimate({}).level is None and levels.estimate({}).rank == 0
    del ind["sends:DocumentReference"]
    ind["rate:lab-unit"] = 1.0
    assert levels.estimate(ind).level.code == "3"  # no documents seen: the requirement does not hold
