"""Tests for the FHIR R4 structural validator (``hutong.fhir.validation``)."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hutong.core.errors import FhirError, Issue
from hutong.fhir.validation import (
    check_primitive,
    element_type,
    ensure_valid,
    is_known_resource_type,
    known_resource_types,
    validate_resource,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
EXAMPLES = DATA / "conformance" / "r4_examples" / "examples.ndjson.gz"
SYNTHEA = DATA / "synthea_fhir_r4"

needs_examples = pytest.mark.skipif(not EXAMPLES.exists(), reason="shared R4 examples not available")
needs_synthea = pytest.mark.skipif(not SYNTHEA.exists(), reason="shared Synthea data not available")

# Official R4 examples that are themselves structurally wrong, with the reason. Everything else of the
# 604 examples must validate with zero errors.
KNOWN_BAD_EXAMPLES = {
    ("Questionnaire", "qs1"): (
        # examplescenario-questionnaire.json: a Questionnaire generated from the ExampleScenario
        # definition; its "display" items have no linkId, but Questionnaire.item.linkId is 1..1.
        {("required", "Missing required element linkId in Questionnaire.item (minimum cardinality 1)")}
    ),
}


def _obs(**extra) -> dict:
    obs = {
        "resourceType": "Observation",
        "id": "bp-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2019-06-01T10:00:00+08:00",
        "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
    }
    obs.update(extra)
    return obs


def _patient(**extra) -> dict:
    p = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Wang", "given": ["Xiao", "Ming"]}],
        "gender": "female",
        "birthDate": "1980-02-29",
    }
    p.update(extra)
    return p


def _single(issues: list[Issue]) -> Issue:
    assert len(issues) == 1, [i.to_fhir() for i in issues]
    return issues[0]


# --- API -----------------------------------------------------------------------------------------


def test_known_resource_types():
    types = known_resource_types()
    assert isinstance(types, frozenset)
    assert len(types) == 146
    assert {"Patient", "Observation", "Bundle", "Parameters", "Binary"} <= types
    assert "Resource" not in types and "DomainResource" not in types and "HumanName" not in types
    assert is_known_resource_type("Patient")
    assert not is_known_resource_type("DomainResource")
    assert not is_known_resource_type("patient")
    assert not is_known_resource_type(["Patient"])  # type: ignore[arg-type]


def test_element_type():
    assert element_type("Observation.value[x]") == [
        "Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio",
        "SampledData", "time", "dateTime", "Period",
    ]  # fmt: skip
    assert element_type("Observation.value") == element_type("Observation.value[x]")
    assert element_type("Observation.valueQuantity") == ["Quantity"]
    assert element_type("Observation.valueQuantity.value") == ["decimal"]
    assert element_type("Observation.code") == ["CodeableConcept"]
    assert element_type("Observation.subject") == ["Reference"]
    assert element_type("Observation.component") == ["BackboneElement"]
    assert element_type("Observation.component.referenceRange.low") == ["Quantity"]  # contentReference
    assert element_type("Patient.name.family") == ["string"]
    assert element_type("Patient.name[0].given") == ["string"]
    assert element_type("Patient.contact.name") == ["HumanName"]
    assert element_type("Patient.id") == ["id"]
    assert element_type("Patient.birthDate") == ["date"]
    assert element_type("Bundle.entry.resource") == ["Resource"]
    assert element_type("Patient.nope") == []
    assert element_type("Nope.id") == []
    assert element_type("Patient") == []


def test_valid_minimal_resources():
    assert validate_resource(_obs()) == []
    assert validate_resource(_patient()) == []
    assert validate_resource({"resourceType": "Basic", "code": {"text": "x"}}) == []


# --- negative cases --------------------------------------------------------------------------------


def test_unknown_element_reports_path():
    p = _patient()
    p["name"][0]["nickname"] = "Xiaoming"
    i = _single(validate_resource(p))
    assert i.severity == "error" and i.code == "structure"
    assert i.expression == ["Patient.name[0].nickname"]
    assert "nickname" in i.diagnostics and "HumanName" in i.diagnostics

    i = _single(validate_resource(_patient(favouriteColour="blue")))
    assert i.expression == ["Patient.favouriteColour"]


def test_choice_without_type_suffix_is_unknown_with_hint():
    obs = _obs()
    obs["value"] = obs.pop("valueQuantity")
    i = _single(validate_resource(obs))
    assert i.code == "structure" and i.expression == ["Observation.value"]
    assert "valueQuantity" in i.diagnostics


def test_wrong_primitive_type():
    i = _single(validate_resource(_patient(active="true")))
    assert i.code == "structure" and i.expression == ["Patient.active"]
    assert "boolean" in i.diagnostics
    i = _single(validate_resource(_patient(multipleBirthInteger="2")))
    assert i.code == "structure" and i.expression == ["Patient.multipleBirthInteger"]
    i = _single(validate_resource(_patient(active=1)))
    assert i.code == "structure"
    obs = _obs()
    obs["valueQuantity"]["value"] = "120"
    i = _single(validate_resource(obs))
    assert i.expression == ["Observation.valueQuantity.value"] and "decimal" in i.diagnostics
    # bool is not an integer/decimal even though Python says it is an int
    obs["valueQuantity"]["value"] = True
    assert _single(validate_resource(obs)).code == "structure"


def test_array_versus_single_value():
    # object where the cardinality says array (Patient.name is 0..*)
    i = _single(validate_resource(_patient(name={"family": "Wang"})))
    assert i.code == "structure" and i.expression == ["Patient.name"] and "array" in i.diagnostics
    # array where the cardinality says single (Observation.code is 1..1)
    obs = _obs()
    obs["code"] = [obs["code"]]
    i = _single(validate_resource(obs))
    assert i.code == "structure" and i.expression == ["Observation.code"]
    # primitive array where single expected, and single where array expected
    i = _single(validate_resource(_patient(birthDate=["1980-01-01"])))
    assert i.code == "structure" and i.expression == ["Patient.birthDate"]
    p = _patient()
    p["name"][0]["given"] = "Xiao"
    i = _single(validate_resource(p))
    assert i.code == "structure" and i.expression == ["Patient.name[0].given"]
    # a complex element given as a string
    i = _single(validate_resource(_obs(subject="Patient/p1")))
    assert i.code == "structure" and "Reference" in i.diagnostics


def test_empty_values_rejected():
    assert _single(validate_resource(_patient(name=[]))).expression == ["Patient.name"]
    assert _single(validate_resource(_patient(maritalStatus={}))).expression == ["Patient.maritalStatus"]
    i = _single(validate_resource(_patient(gender="")))
    assert i.code == "value" and "empty" in i.diagnostics
    assert _single(validate_resource(_patient(birthDate=None))).code == "structure"


def test_missing_required():
    obs = _obs()
    del obs["status"]
    del obs["code"]
    issues = validate_resource(obs)
    assert {(i.code, i.expression[0]) for i in issues} == {
        ("required", "Observation.status"),
        ("required", "Observation.code"),
    }
    # required inside a backbone element and a data type
    obs = _obs(component=[{"valueString": "x"}])
    i = _single(validate_resource(obs))
    assert i.code == "required" and i.expression == ["Observation.component[0].code"]
    # a required primitive carried only by its _ extension counts as present
    obs = _obs()
    del obs["status"]
    obs["_status"] = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    assert validate_resource(obs) == []


def test_bad_primitive_formats():
    i = _single(validate_resource(_patient(birthDate="2019-13-01")))
    assert i.code == "value" and i.expression == ["Patient.birthDate"]
    assert "2019-13-01" in i.diagnostics and "date" in i.diagnostics
    assert _single(validate_resource(_patient(birthDate="2019-02-29"))).code == "value"  # not a leap year
    assert validate_resource(_patient(birthDate="2020-02-29")) == []
    assert validate_resource(_patient(birthDate="2020")) == []
    assert validate_resource(_patient(birthDate="2020-02")) == []
    i = _single(validate_resource(_patient(id="bad id!")))
    assert i.code == "value" and i.expression == ["Patient.id"]
    assert _single(validate_resource(_patient(id="x" * 65))).code == "value"
    # dateTime with a time needs a time zone
    i = _single(validate_resource(_obs(effectiveDateTime="2019-06-01T10:00:00")))
    assert i.code == "value" and i.expression == ["Observation.effectiveDateTime"]
    assert _single(validate_resource(_obs(issued="2019-06-01"))).code == "value"  # instant needs time
    obs = _obs(valueTime="25:00:00")
    del obs["valueQuantity"]
    assert _single(validate_resource(obs)).expression == ["Observation.valueTime"]
    assert _single(validate_resource(_patient(multipleBirthInteger=2**31))).code == "value"
    assert _single(validate_resource(_patient(implicitRules="has space"))).code == "value"
    i = _single(validate_resource(_patient(text={"status": "generated", "div": "plain text"})))
    assert i.code == "value" and i.expression == ["Patient.text.div"]


def test_required_binding():
    i = _single(validate_resource(_patient(gender="man")))
    assert i.code == "code-invalid" and i.expression == ["Patient.gender"]
    assert "administrative-gender" in i.diagnostics
    i = _single(validate_resource(_obs(status="done")))
    assert i.code == "code-invalid" and i.expression == ["Observation.status"]


def test_two_choice_variants():
    i = _single(validate_resource(_obs(valueString="high")))
    assert i.code == "structure" and "value[x]" in i.diagnostics
    assert i.expression[0] in ("Observation.valueString", "Observation.valueQuantity")
    i = _single(validate_resource(_patient(deceasedBoolean=False, deceasedDateTime="2020-01-01")))
    assert "deceased[x]" in i.diagnostics
    # a value and its own _ extension are one variant, not two
    assert validate_resource(_patient(deceasedBoolean=True, _deceasedBoolean={"id": "d1"})) == []


def test_unknown_resource_type():
    i = _single(validate_resource({"resourceType": "Patientt", "id": "x"}))
    assert i.code == "invalid" and "Patientt" in i.diagnostics
    i = _single(validate_resource({"resourceType": "DomainResource"}))
    assert i.code == "invalid" and "concrete" in i.diagnostics
    i = _single(validate_resource({"id": "x"}))
    assert i.code == "required"
    assert _single(validate_resource([])).code == "invalid"  # type: ignore[arg-type]


def test_contained_resources_are_validated():
    obs = _obs(
        contained=[
            {"resourceType": "Patient", "id": "c1", "birthDate": "1999-99-99"},
            {"resourceType": "Practitioner", "id": "c2", "nam": []},
            {"resourceType": "Nonsense", "id": "c3"},
        ]
    )
    issues = validate_resource(obs)
    got = {(i.code, i.expression[0]) for i in issues}
    assert got == {
        ("value", "Observation.contained[0].birthDate"),
        ("structure", "Observation.contained[1].nam"),
        ("invalid", "Observation.contained[2]"),
    }


def test_bundle_entry_errors_have_entry_path():
    entries = [{"fullUrl": f"urn:uuid:{i}", "resource": _patient(id=f"p{i}")} for i in range(4)]
    bad = _obs()
    del bad["status"]
    bad["valueQuantity"]["comparator"] = "<<"
    entries[2] = {"fullUrl": "urn:uuid:2", "resource": bad, "request": {"method": "POST", "url": "Observation"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    got = {(i.code, i.expression[0]) for i in validate_resource(bundle)}
    assert got == {
        ("required", "Bundle.entry[2].resource.status"),
        ("code-invalid", "Bundle.entry[2].resource.valueQuantity.comparator"),
    }
    # nested bundle in a Parameters resource
    params = {"resourceType": "Parameters", "parameter": [{"name": "b", "resource": bundle}]}
    got = {i.expression[0] for i in validate_resource(params)}
    assert "Parameters.parameter[0].resource.entry[2].resource.status" in got
    # the entry resource itself must be an object with a resourceType
    bundle["entry"][0]["resource"] = "Patient/1"
    assert any(i.expression == ["Bundle.entry[0].resource"] for i in validate_resource(bundle))


def test_primitive_extension_siblings():
    ext = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                          "valueDateTime": "1980-02-29T10:00:00+08:00"}]}  # fmt: skip
    assert validate_resource(_patient(_birthDate=ext)) == []
    # arrays: null placeholder where only the extension exists, lengths must line up
    p = _patient()
    p["name"][0]["given"] = ["Xiao", None]
    p["name"][0]["_given"] = [None, {"extension": [{"url": "http://example.org/x", "valueCode": "y"}]}]
    assert validate_resource(p) == []
    p["name"][0]["_given"] = [None, None]
    i = _single(validate_resource(p))
    assert i.expression == ["Patient.name[0].given[1]"]
    p["name"][0]["given"] = ["Xiao"]
    p["name"][0]["_given"] = [None, {"id": "g2"}]
    assert any("line up" in i.diagnostics for i in validate_resource(p))
    # bad content inside the _ sibling, and _ on a non-primitive
    i = _single(validate_resource(_patient(_birthDate={"extension": [{"url": "x", "valueDate": "1-1"}]})))
    assert i.code == "value" and i.expression == ["Patient.birthDate.extension[0].valueDate"]
    i = _single(validate_resource(_patient(_name={"id": "x"})))
    assert i.code == "structure" and i.expression == ["Patient._name"]
    i = _single(validate_resource(_patient(_birthDate={"foo": 1})))
    assert i.expression == ["Patient.birthDate.foo"]


def test_extension_structure():
    i = _single(validate_resource(_patient(extension=[{"valueString": "x"}])))
    assert i.code == "required" and i.expression == ["Patient.extension[0].url"]
    i = _single(validate_resource(_patient(extension=[{"url": "http://e.org/a"}])))
    assert i.code == "invariant" and "ext-1" in i.diagnostics
    both = {"url": "http://e.org/a", "valueString": "x", "extension": [{"url": "b", "valueCode": "c"}]}
    assert _single(validate_resource(_patient(extension=[both]))).code == "invariant"
    i = _single(validate_resource(_patient(modifierExtension=[{"url": "http://e.org/a", "valueStrin": "x"}])))
    assert i.expression == ["Patient.modifierExtension[0].valueStrin"]
    nested = {"url": "http://e.org/a", "extension": [{"url": "b", "valueQuantity": {"value": "1"}}]}
    i = _single(validate_resource(_patient(extension=[nested])))
    assert i.expression == ["Patient.extension[0].extension[0].valueQuantity.value"]


def test_backbone_and_content_reference():
    p = _patient(contact=[{"name": {"family": "Li"}, "telecom": [{"system": "phone", "value": "1"}]}])
    assert validate_resource(p) == []
    p["contact"][0]["relation"] = {"text": "x"}  # 0..* in a backbone element
    assert _single(validate_resource(p)).expression == ["Patient.contact[0].relation"]
    q = {
        "resourceType": "Questionnaire", "status": "draft",
        "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "strin"}]}],
    }  # fmt: skip
    i = _single(validate_resource(q))
    assert i.expression == ["Questionnaire.item[0].item[0].type"] and i.code == "code-invalid"


def test_max_issues_do_not_stop_at_first():
    issues = validate_resource(_patient(a=1, b=2, gender="x", birthDate="x"))
    assert len(issues) == 4
    for i in issues:
        assert i.severity == "error" and i.expression and i.diagnostics
        assert i.to_fhir()["expression"] == i.expression


def test_input_not_modified():
    obs = _obs(contained=[_patient(id="c")])
    before = copy.deepcopy(obs)
    validate_resource(obs)
    assert obs == before


# --- official examples and Synthea -------------------------------------------------------------------


@needs_examples
def test_all_official_r4_examples_validate():
    failures = {}
    count = 0
    with gzip.open(EXAMPLES, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            res = json.loads(line)
            count += 1
            issues = validate_resource(res)
            key = (res["resourceType"], res.get("id"))
            if key in KNOWN_BAD_EXAMPLES:
                assert {(i.code, i.diagnostics) for i in issues} == KNOWN_BAD_EXAMPLES[key], key
                continue
            if issues:
                failures[f"line {n} {key}"] = [(i.code, i.diagnostics, i.expression) for i in issues[:5]]
    assert count == 604
    assert not failures, json.dumps(failures, indent=1)[:5000]


@needs_synthea
def test_synthea_bundles_validate():
    files = sorted((SYNTHEA / "smart_2019").glob("*.json.gz"))[:25]
    files += sorted((SYNTHEA / "synthea_hiv_2021").glob("*.json.gz"))[:5]
    assert files
    total = 0
    for f in files:
        bundle = json.loads(gzip.decompress(f.read_bytes()))
        total += len(bundle["entry"])
        issues = validate_resource(bundle)
        assert issues == [], (f.name, [(i.diagnostics, i.expression) for i in issues[:5]])
    assert total > 1000


@needs_synthea
def test_synthea_mutation_is_caught_with_path():
    f = sorted((SYNTHEA / "smart_2019").glob("*.json.gz"))[0]
    bundle = json.loads(gzip.decompress(f.read_bytes()))
    idx = next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Observation")
    bundle["entry"][idx]["resource"]["effectiveDateTime"] = "2019-13-01"
    i = _single(validate_resource(bundle))
    assert i.code == "value" and i.expression == [f"Bundle.entry[{idx}].resource.effectiveDateTime"]


# --- property-based: primitive format checkers --------------------------------------------------------


@given(st.dates(min_value=dt.date(1, 1, 1)))
def test_generated_dates_pass(d: dt.date):
    s = d.isoformat()
    assert check_primitive("date", s)
    assert check_primitive("date", s[:7])
    assert check_primitive("date", s[:4])
    assert check_primitive("dateTime", s)
    assert not check_primitive("instant", s)


@given(
    st.datetimes(min_value=dt.datetime(1, 1, 1), timezones=st.timezones()),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_generated_datetimes_pass(d: dt.datetime, spec: str):
    s = d.isoformat(timespec=spec)
    offset = d.utcoffset()
    # FHIR offsets are whole minutes within -13:59..+14:00; skip the historic odd ones (LMT +08:05:43)
    if offset is None or offset.seconds % 60 or abs(offset) > dt.timedelta(hours=14):
        return
    assert check_primitive("dateTime", s), s
    assert check_primitive("instant", s), s
    assert not check_primitive("date", s)
    assert check_primitive("time", d.time().isoformat(timespec=spec))


@given(st.integers(1, 9999), st.integers(1, 12), st.integers(1, 31))
def test_day_validity_matches_calendar(y: int, m: int, d: int):
    s = f"{y:04d}-{m:02d}-{d:02d}"
    try:
        dt.date(y, m, d)
        real = True
    except ValueError:
        real = False
    assert check_primitive("date", s) == real


@given(st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True))
def test_generated_ids_pass(s: str):
    assert check_primitive("id", s)


@given(st.text())
def test_random_strings_never_crash(s: str):
    for t in ("date", "dateTime", "instant", "time", "id", "code", "uri", "oid", "uuid", "base64Binary",
              "string", "markdown", "canonical", "url"):  # fmt: skip
        assert check_primitive(t, s) in (True, False)
    issues = validate_resource(_patient(birthDate=s, id=s, gender=s))
    assert all(isinstance(i, Issue) for i in issues)


@given(st.binary(max_size=300))
def test_base64_of_any_bytes_passes(b: bytes):
    import base64

    enc = base64.b64encode(b).decode()
    if enc:
        assert check_primitive("base64Binary", enc)
        assert check_primitive("base64Binary", "\n".join(enc[i : i + 76] for i in range(0, len(enc), 76)))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(["name", "given", "value", "valueString", "extension", "url", "_given", "x", "code"]),
        children,
        max_size=4,
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["name", "contact", "extension", "_birthDate", "birthDate", "contained",
                                        "gender", "active", "deceasedBoolean", "link", "zzz"]), _json, max_size=6))  # fmt: skip
def test_random_json_never_crashes(body: dict):
    issues = validate_resource({"resourceType": "Patient", **body})
    for i in issues:
        assert i.severity == "error" and i.expression and i.expression[0].startswith("Patient")


def test_pathologically_deep_nesting_is_refused_not_raised():
    ext: dict = {"url": "http://e.org/leaf", "valueString": "x"}
    for _ in range(5000):
        ext = {"url": "http://e.org/n", "extension": [ext]}
    i = _single(validate_resource(_patient(extension=[ext])))
    assert i.code == "structure" and "nested" in i.diagnostics


def test_contained_invariants():
    inner = _patient(id="c1", meta={"versionId": "1", "security": [{"code": "R"}]}, contained=[_patient(id="c2")])
    got = {i.expression[0] for i in validate_resource(_obs(contained=[inner])) if i.code == "invariant"}
    assert got == {
        "Observation.contained[0].contained",
        "Observation.contained[0].meta",
        "Observation.contained[0].meta.security",
    }


def test_ensure_valid_raises_fhir_error():
    ensure_valid(_obs())
    with pytest.raises(FhirError) as exc:
        ensure_valid(_patient(birthDate="2019-13-01", gender="x", foo=1))
    err = exc.value
    assert err.status == 400 and len(err.issues) == 3
    assert "2 more" in str(err) and err.code in ("value", "code-invalid", "structure")
    outcome = err.outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    assert validate_resource(outcome) == []  # our own OperationOutcome is valid FHIR
