"""Search semantics against hand-checked expectations, on SQLite and PostgreSQL (``store`` fixture)."""

from __future__ import annotations

import pytest

from hutong.core.errors import FhirError

LOINC = "http://loinc.org"
MR = "http://terminology.hl7.org/CodeSystem/v2-0203"


def ids(store, rtype, params):
    with store.read() as tx:
        return sorted(tx.search_ids(rtype, params))


def bundle(store, rtype, params, strict=False, compartment=None):
    with store.read() as tx:
        return store.index.search(tx, rtype, params, base_url="http://h/fhir", strict=strict,
                                  compartment=compartment)


def match_ids(b):
    return [e["resource"]["id"] for e in b.get("entry", []) if e["search"]["mode"] == "match"]


@pytest.fixture
def data(store):
    """Three patients, observations, an encounter, a provenance, an organization."""
    up = store.update
    up("Organization", "org1", {"resourceType": "Organization", "id": "org1", "name": "吉林大学第一医院",
                                "identifier": [{"system": "urn:uscc", "value": "12220000"}]})
    up("Patient", "p1", {
        "resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1980-05-02", "active": True,
        "identifier": [{"system": "urn:mrn", "value": "A-1",
                        "type": {"coding": [{"system": MR, "code": "MR"}]}}],
        "name": [{"family": "Müller", "given": ["Ádam", "Bo"]}],
        "telecom": [{"system": "phone", "value": "13800000000"}, {"system": "email", "value": "a@x.cn"}],
        "address": [{"city": "长春", "postalCode": "130000"}],
        "managingOrganization": {"reference": "Organization/org1"},
        "meta": {"tag": [{"system": "urn:tag", "code": "vip"}], "profile": ["http://x.org/StructureDefinition/p"]},
    })
    up("Patient", "p2", {
        "resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1990",
        "identifier": [{"system": "urn:mrn", "value": "a-1"}],
        "name": [{"family": "王", "given": ["伟"], "text": "王伟"}],
        "deceasedDateTime": "2020-02-02",
    })
    up("Patient", "p3", {"resourceType": "Patient", "id": "p3", "name": [{"family": "Muller"}],
                         "link": [{"other": {"reference": "Patient/p1"}, "type": "seealso"}]})
    up("Encounter", "e1", {"resourceType": "Encounter", "id": "e1", "status": "finished",
                           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                           "subject": {"reference": "Patient/p1"},
                           "serviceProvider": {"reference": "Organization/org1"},
                           "period": {"start": "2020-01-01T08:00:00Z", "end": "2020-01-03T10:00:00Z"}})

    def obs(oid, pid, code, value, when, unit="mmol/L", **extra):
        res = {"resourceType": "Observation", "id": oid, "status": "final",
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                         "code": "laboratory"}]}],
               "code": {"coding": [{"system": LOINC, "code": code, "display": "Glucose"}], "text": "血糖"},
               "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when}
        if value is not None:
            res["valueQuantity"] = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        res.update(extra)
        up("Observation", oid, res)

    obs("o1", "p1", "2345-7", 5.4, "2020-01-02T10:00:00Z", encounter={"reference": "Encounter/e1"})
    obs("o2", "p1", "2345-7", 7.9, "2021-06-01")
    obs("o3", "p2", "2339-0", 100, "2019-12-31T23:59:59Z")
    obs("o4", "p2", "8867-4", None, "2022")
    up("Observation", "bp", {
        "resourceType": "Observation", "id": "bp", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]}, "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2020-03-01", "end": "2020-03-05"},
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        ],
    })
    up("Provenance", "prov1", {"resourceType": "Provenance", "id": "prov1", "recorded": "2020-01-02T10:00:00Z",
                               "target": [{"reference": "Observation/o1"}],
                               "agent": [{"who": {"reference": "Organization/org1"}}]})
    up("ValueSet", "vs1", {"resourceType": "ValueSet", "id": "vs1", "status": "active",
                           "url": "http://hl7.org/fhir/ValueSet/example/child"})
    return store


# ----------------------------------------------------------------------------------- string
def test_string_default_is_case_and_accent_insensitive_prefix(data):
    assert ids(data, "Patient", [("name", "mul")]) == ["p1", "p3"]
    assert ids(data, "Patient", [("name", "ADA")]) == ["p1"]
    assert ids(data, "Patient", [("family", "王")]) == ["p2"]
    assert ids(data, "Patient", [("name", "王伟")]) == ["p2"]  # HumanName.text
    assert ids(data, "Patient", [("address-city", "长")]) == ["p1"]


def test_string_exact_and_contains(data):
    assert ids(data, "Patient", [("name:exact", "Müller")]) == ["p1"]
    assert ids(data, "Patient", [("name:exact", "muller")]) == []
    assert ids(data, "Patient", [("name:contains", "ULL")]) == ["p1", "p3"]
    assert ids(data, "Organization", [("name:contains", "大学")]) == ["org1"]


# ----------------------------------------------------------------------------------- token
def test_token_forms(data):
    assert ids(data, "Patient", [("identifier", "urn:mrn|A-1")]) == ["p1"]
    assert ids(data, "Patient", [("identifier", "A-1")]) == ["p1"]  # case-sensitive value
    assert ids(data, "Patient", [("identifier", "urn:mrn|")]) == ["p1", "p2"]
    assert ids(data, "Patient", [("gender", "male")]) == ["p1"]
    assert ids(data, "Patient", [("gender", "|male")]) == ["p1"]
    assert ids(data, "Patient", [("active", "true")]) == ["p1"]
    assert ids(data, "Patient", [("deceased", "true")]) == ["p2"]
    assert ids(data, "Patient", [("phone", "13800000000")]) == ["p1"]
    assert ids(data, "Patient", [("email", "a@x.cn")]) == ["p1"]
    assert ids(data, "Patient", [("email", "13800000000")]) == []


def test_token_modifiers(data):
    assert ids(data, "Patient", [("gender:not", "male")]) == ["p2", "p3"]
    assert ids(data, "Observation", [("code:text", "血")]) == ["o1", "o2", "o3", "o4"]
    assert ids(data, "Observation", [("code:text", "gluc")]) == ["o1", "o2", "o3", "o4"]
    assert ids(data, "Patient", [("identifier:of-type", f"{MR}|MR|A-1")]) == ["p1"]
    assert ids(data, "Patient", [("gender:missing", "true")]) == ["p3"]
    assert ids(data, "Patient", [("gender:missing", "false")]) == ["p1", "p2"]


def test_token_case_insensitive_code_system(data):
    # LOINC codes are case-insensitive; other systems are not.
    data.update("Observation", "lc", {"resourceType": "Observation", "id": "lc", "status": "final",
                                      "code": {"coding": [{"system": LOINC, "code": "LP1234-5"}]}})
    assert ids(data, "Observation", [("code", f"{LOINC}|lp1234-5")]) == ["lc"]
    assert ids(data, "Observation", [("code", "lp1234-5")]) == ["lc"]
    assert ids(data, "Observation", [("status", "FINAL")]) == []


def test_common_params(data):
    assert ids(data, "Patient", [("_id", "p1,p3")]) == ["p1", "p3"]
    assert ids(data, "Patient", [("_tag", "urn:tag|vip")]) == ["p1"]
    assert ids(data, "Patient", [("_profile", "http://x.org/StructureDefinition/p")]) == ["p1"]
    assert ids(data, "Patient", [("_lastUpdated", "gt2000-01-01")]) == ["p1", "p2", "p3"]
    assert ids(data, "Patient", [("_lastUpdated", "lt2000-01-01")]) == []
    assert ids(data, "Patient", [("_content", "müller")]) == ["p1"]


# ----------------------------------------------------------------------------------- date
@pytest.mark.parametrize("value,expected", [
    ("1980", ["p1"]), ("1980-05", ["p1"]), ("1980-05-02", ["p1"]), ("1980-05-03", []),
    ("1990", ["p2"]), ("1990-03", []),  # stored precision year: a month does not contain it
    ("lt1985", ["p1"]), ("gt1985", ["p2"]), ("ge1990-01-01", ["p2"]), ("le1980-05-02", ["p1"]),
    ("sa1980-05-02", ["p2"]), ("eb1990", ["p1"]), ("ne1980-05-02", ["p2"]), ("ap1980-05-01", ["p1"]),
])
def test_date_prefixes_and_precision(data, value, expected):
    assert ids(data, "Patient", [("birthdate", value)]) == expected


def test_date_periods_and_ranges(data):
    assert ids(data, "Encounter", [("date", "2020-01-02")]) == []  # the period is not inside that day
    assert ids(data, "Encounter", [("date", "2020-01")]) == ["e1"]
    assert ids(data, "Encounter", [("date", "ge2020-01-02"), ("date", "le2020-01-02")]) == ["e1"]
    assert ids(data, "Observation", [("date", "2020")]) == ["bp", "o1"]
    assert ids(data, "Observation", [("date", "ge2020-01-01"), ("date", "lt2021-01-01")]) == ["bp", "o1"]
    assert ids(data, "Observation", [("date", "2019-12-31T23:59:59Z")]) == ["o3"]
    assert ids(data, "Observation", [("date", "2020-01-01T07:59:59+08:00")]) == ["o3"]  # same instant


def test_invalid_values_are_400_even_when_lenient(data):
    for params in ([("birthdate", "1980-13")], [("birthdate", "xx1980")], [("value-quantity", "abc")],
                   [("_count", "x")], [("subject:Foo.name", "x")]):
        with pytest.raises(FhirError) as err:
            bundle(data, "Patient" if params[0][0] == "birthdate" else "Observation", params)
        assert err.value.status == 400


# ----------------------------------------------------------------------------------- number / quantity
def test_quantity(data):
    assert ids(data, "Observation", [("value-quantity", "5.4")]) == ["o1"]
    assert ids(data, "Observation", [("value-quantity", "5")]) == ["o1"]  # 5 means [4.5, 5.5)
    assert ids(data, "Observation", [("value-quantity", "5.40")]) == ["o1"]
    assert ids(data, "Observation", [("value-quantity", "5.3")]) == []
    assert ids(data, "Observation", [("value-quantity", "gt7")]) == ["o2", "o3"]
    assert ids(data, "Observation", [("value-quantity", "le7.9")]) == ["o1", "o2"]
    assert ids(data, "Observation", [("value-quantity", "ap100")]) == ["o3"]
    assert ids(data, "Observation", [("value-quantity", "gt1|http://unitsofmeasure.org|mmol/L")]) == ["o1", "o2", "o3"]
    assert ids(data, "Observation", [("value-quantity", "gt1||mmol/L")]) == ["o1", "o2", "o3"]
    assert ids(data, "Observation", [("value-quantity", "gt1|http://unitsofmeasure.org|mg")]) == []
    assert ids(data, "Observation", [("component-value-quantity", "gt100")]) == ["bp"]


def test_number(data):
    data.update("RiskAssessment", "r1", {"resourceType": "RiskAssessment", "id": "r1", "status": "final",
                                         "subject": {"reference": "Patient/p1"},
                                         "prediction": [{"probabilityDecimal": 0.25}]})
    assert ids(data, "RiskAssessment", [("probability", "0.25")]) == ["r1"]
    assert ids(data, "RiskAssessment", [("probability", "gt0.2")]) == ["r1"]
    assert ids(data, "RiskAssessment", [("probability", "lt0.2")]) == []


# ----------------------------------------------------------------------------------- composite
def test_composite(data):
    assert ids(data, "Observation", [("code-value-quantity", f"{LOINC}|2345-7$gt6")]) == ["o2"]
    assert ids(data, "Observation", [("component-code-value-quantity", f"{LOINC}|8480-6$gt100")]) == ["bp"]
    # components stay paired: the diastolic code with the systolic value does not match
    assert ids(data, "Observation", [("component-code-value-quantity", f"{LOINC}|8462-4$gt100")]) == []
    assert ids(data, "Observation", [("combo-code-value-quantity", "8462-4$80")]) == ["bp"]


# ----------------------------------------------------------------------------------- reference
def test_reference_forms(data):
    assert ids(data, "Observation", [("subject", "Patient/p1")]) == ["bp", "o1", "o2"]
    assert ids(data, "Observation", [("subject", "p1")]) == ["bp", "o1", "o2"]
    assert ids(data, "Observation", [("subject:Patient", "p2")]) == ["o3", "o4"]
    assert ids(data, "Observation", [("patient", "http://h/fhir/Patient/p2")]) == []  # no base given to search_ids
    b = bundle(data, "Observation", [("patient", "http://h/fhir/Patient/p2")])
    assert sorted(match_ids(b)) == ["o3", "o4"]
    assert ids(data, "Observation", [("subject:missing", "true")]) == []
    assert ids(data, "Observation", [("encounter", "Encounter/e1")]) == ["o1"]


def test_chains_and_has(data):
    assert ids(data, "Observation", [("subject.identifier", "urn:mrn|A-1")]) == ["bp", "o1", "o2"]
    assert ids(data, "Observation", [("subject:Patient.name", "王")]) == ["o3", "o4"]
    assert ids(data, "Observation", [("subject.organization.name", "吉林")]) == ["bp", "o1", "o2"]
    assert ids(data, "Encounter", [("subject.organization.identifier", "urn:uscc|12220000")]) == ["e1"]
    assert ids(data, "Patient", [("_has:Observation:patient:code", "2339-0")]) == ["p2"]
    assert ids(data, "Patient", [("_has:Observation:subject:_has:Provenance:target:agent", "Organization/org1")]) == ["p1"]


def test_uri(data):
    assert ids(data, "ValueSet", [("url", "http://hl7.org/fhir/ValueSet/example/child")]) == ["vs1"]
    assert ids(data, "ValueSet", [("url:below", "http://hl7.org/fhir/ValueSet")]) == ["vs1"]
    assert ids(data, "ValueSet", [("url:above", "http://hl7.org/fhir/ValueSet/example/child/grandchild")]) == ["vs1"]
    assert ids(data, "ValueSet", [("url", "http://hl7.org/fhir/ValueSet")]) == []


def test_and_or_and_escaping(data):
    assert ids(data, "Observation", [("code", "2345-7,2339-0")]) == ["o1", "o2", "o3"]
    assert ids(data, "Observation", [("code", "2345-7"), ("date", "2021")]) == ["o2"]
    data.update("Patient", "esc", {"resourceType": "Patient", "id": "esc", "name": [{"family": "a,b|c$d"}],
                                   "identifier": [{"system": "urn:x", "value": "v|1,2"}]})
    assert ids(data, "Patient", [("family:exact", r"a\,b\|c\$d")]) == ["esc"]
    assert ids(data, "Patient", [("identifier", r"urn:x|v\|1\,2")]) == ["esc"]


def test_near(data):
    data.update("Location", "l1", {"resourceType": "Location", "id": "l1", "name": "长春",
                                   "position": {"latitude": 43.8171, "longitude": 125.3235}})
    data.update("Location", "l2", {"resourceType": "Location", "id": "l2", "name": "吉林",
                                   "position": {"latitude": 43.8378, "longitude": 126.5494}})
    assert ids(data, "Location", [("near", "43.82|125.33|5|km")]) == ["l1"]
    assert ids(data, "Location", [("near", "43.82|125.33|120|km")]) == ["l1", "l2"]


# ----------------------------------------------------------------------------------- results
def test_paging_with_cursor_stays_correct_while_others_write(data):
    for i in range(7):
        data.update("Patient", f"q{i}", {"resourceType": "Patient", "id": f"q{i}", "gender": "other"})
    b1 = bundle(data, "Patient", [("gender", "other"), ("_count", "3")])
    assert match_ids(b1) == ["q0", "q1", "q2"] and b1["total"] == 7
    nxt = next(link["url"] for link in b1["link"] if link["relation"] == "next")
    cursor = nxt.split("_cursor=")[1]
    # a concurrent writer inserts before the cursor: the next page is unaffected (no offset drift)
    data.update("Patient", "a0", {"resourceType": "Patient", "id": "a0", "gender": "other"})
    b2 = bundle(data, "Patient", [("gender", "other"), ("_count", "3"), ("_cursor", cursor)])
    assert match_ids(b2) == ["q3", "q4", "q5"]
    prev = next(link["url"] for link in b2["link"] if link["relation"] == "previous").split("_cursor=")[1]
    b0 = bundle(data, "Patient", [("gender", "other"), ("_count", "3"), ("_cursor", prev)])
    assert match_ids(b0) == ["q0", "q1", "q2"]
    last = next(link["url"] for link in b2["link"] if link["relation"] == "next").split("_cursor=")[1]
    b3 = bundle(data, "Patient", [("gender", "other"), ("_count", "3"), ("_cursor", last)])
    assert match_ids(b3) == ["q6"] and not any(link["relation"] == "next" for link in b3["link"])


def test_sort_multi_key_and_paging(data):
    b = bundle(data, "Observation", [("_sort", "-date")])
    assert match_ids(b) == ["o4", "o2", "bp", "o1", "o3"]
    b = bundle(data, "Observation", [("_sort", "code,-date")])
    assert match_ids(b) == ["o3", "o2", "o1", "bp", "o4"]
    got = []
    params = [("_sort", "-date"), ("_count", "2")]
    cursor = None
    while True:
        b = bundle(data, "Observation", params + ([("_cursor", cursor)] if cursor else []))
        got += match_ids(b)
        nxt = [link["url"] for link in b["link"] if link["relation"] == "next"]
        if not nxt:
            break
        cursor = nxt[0].split("_cursor=")[1]
    assert got == ["o4", "o2", "bp", "o1", "o3"]
    b = bundle(data, "Patient", [("_sort", "birthdate")])
    assert match_ids(b) == ["p1", "p2", "p3"]  # missing values last


def test_include_revinclude_iterate(data):
    b = bundle(data, "Observation", [("_id", "o1"), ("_include", "Observation:subject"),
                                     ("_include", "Observation:encounter"), ("_revinclude", "Provenance:target")])
    modes = {(e["resource"]["resourceType"], e["resource"]["id"]): e["search"]["mode"] for e in b["entry"]}
    assert modes == {("Observation", "o1"): "match", ("Patient", "p1"): "include",
                     ("Encounter", "e1"): "include", ("Provenance", "prov1"): "include"}
    b = bundle(data, "Observation", [("_id", "o1"), ("_include", "Observation:subject"),
                                     ("_include:iterate", "Patient:organization")])
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]}
    assert ("Organization", "org1") in got
    b = bundle(data, "Patient", [("_id", "p1"), ("_revinclude", "Observation:subject"),
                                 ("_revinclude:iterate", "Provenance:target")])
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]}
    assert ("Provenance", "prov1") in got and ("Observation", "bp") in got
    assert b["total"] == 1


def test_summary_elements_total(data):
    b = bundle(data, "Patient", [("_summary", "count")])
    assert b["total"] == 3 and "entry" not in b
    b = bundle(data, "Patient", [("_id", "p1"), ("_summary", "true")])
    res = b["entry"][0]["resource"]
    assert "name" in res and "telecom" in res and "text" not in res
    assert any(t["code"] == "SUBSETTED" for t in res["meta"]["tag"])
    b = bundle(data, "Patient", [("_id", "p1"), ("_elements", "gender")])
    assert set(b["entry"][0]["resource"]) == {"resourceType", "id", "meta", "gender"}
    b = bundle(data, "Patient", [("_count", "1"), ("_total", "none")])
    assert "total" not in b
    b = bundle(data, "Patient", [("_count", "1"), ("_total", "accurate")])
    assert b["total"] == 3


def test_unknown_params_strict_and_lenient(data):
    with pytest.raises(FhirError) as err:
        bundle(data, "Patient", [("foo", "1")], strict=True)
    assert err.value.status == 400 and "foo" in err.value.diagnostics
    b = bundle(data, "Patient", [("foo", "1"), ("gender", "male")])
    assert match_ids(b) == ["p1"]
    outcome = [e for e in b["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome and "foo" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    with pytest.raises(FhirError):
        ids(data, "Patient", [("foo", "1")])  # search_ids is always strict
    with pytest.raises(FhirError) as err:
        bundle(data, "Patient", [("gender:in", "http://x")])
    assert err.value.status == 400


def test_compartment_and_system_search(data):
    b = bundle(data, "Observation", [], compartment=("Patient", "p1"))
    assert sorted(match_ids(b)) == ["bp", "o1", "o2"]
    b = bundle(data, "Observation", [("code", "2345-7")], compartment=("Patient", "p1"))
    assert sorted(match_ids(b)) == ["o1", "o2"]
    b = bundle(data, "Encounter", [], compartment=("Patient", "p2"))
    assert match_ids(b) == []
    b = bundle(data, None, [("_type", "Patient,Observation"), ("_id", "p1,o1")])
    assert sorted(match_ids(b)) == ["o1", "p1"]
    b = bundle(data, None, [("_tag", "urn:tag|vip")])
    assert match_ids(b) == ["p1"]


def test_delete_and_update_reindex(data):
    data.delete("Observation", "o1")
    assert ids(data, "Observation", [("code", "2345-7")]) == ["o2"]
    data.update("Patient", "p3", {"resourceType": "Patient", "id": "p3", "name": [{"family": "Zhang"}]})
    assert ids(data, "Patient", [("name", "mul")]) == ["p1"]
    assert ids(data, "Patient", [("name", "zhang")]) == ["p3"]


def test_sorted_scan_pages_into_resources_without_a_value(data):
    got, cursor = [], None
    while True:
        b = bundle(data, "Patient", [("_sort", "-birthdate"), ("_count", "1")] + ([("_cursor", cursor)] if cursor else []))
        got += match_ids(b)
        nxt = [link["url"] for link in b["link"] if link["relation"] == "next"]
        if not nxt:
            break
        cursor = nxt[0].split("_cursor=")[1]
    assert got == ["p2", "p1", "p3"]
    # a non-selective filter with a sort (sort-driven plan) and the generic plan agree
    b = bundle(data, "Observation", [("status", "final"), ("_sort", "-date"), ("_count", "3")])
    assert match_ids(b) == ["o4", "o2", "bp"]
    b = bundle(data, "Observation", [("status", "final"), ("subject", "Patient/p1"), ("_sort", "-date")])
    assert match_ids(b) == ["o2", "bp", "o1"]


def test_driven_plan_pages_forward_and_back(data):
    params = [("subject", "Patient/p1"), ("_sort", "-date"), ("_count", "1")]
    got, cursors, cursor = [], [], None
    while True:
        b = bundle(data, "Observation", params + ([("_cursor", cursor)] if cursor else []))
        got += match_ids(b)
        cursors.append(cursor)
        nxt = [link["url"] for link in b["link"] if link["relation"] == "next"]
        if not nxt:
            break
        cursor = nxt[0].split("_cursor=")[1]
    assert got == ["o2", "bp", "o1"]
    assert b["total"] == 3
    prev = next(link["url"] for link in b["link"] if link["relation"] == "previous").split("_cursor=")[1]
    assert match_ids(bundle(data, "Observation", params + [("_cursor", prev)])) == ["bp"]
    # a token OR list with a reference driver, and a count on the driven plan
    b = bundle(data, "Observation", [("subject", "p1"), ("code", ",".join(["x1", "x2", "x3", "x4", "x5", "2345-7"]))])
    assert sorted(match_ids(b)) == ["o1", "o2"] and b["total"] == 2
    b = bundle(data, "Observation", [("subject", "p1"), ("_summary", "count")])
    assert b["total"] == 3
