"""The FHIRPath R4 test suite (fhir-test-cases, 935 tests) against the engine views use.

The engine is fhirpathpy (R4 model) with the SQL on FHIR functions ``hutong.stats.fhirpath``
adds; it does not pass the whole suite (fhirpathpy lacks ``sort``, ``escape``, ``conformsTo``,
parts of quantity arithmetic…). This test counts, writes every result to
``test-artifacts/fhirpath_r4/report.json``, and fails if the pass count drops below the count
measured when the floor was set (so a regression in the engine or in our functions shows).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

from hutong.stats.fhirpath import Expression, FhirPathError

SUITE = Path(__file__).resolve().parent / "conformance" / "fhirpath_r4"
REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "fhirpath_r4" / "report.json"
FLOOR = 788  # measured 2026-12-02 (fhirpathpy 2.2.4); raise it when the engine improves


def _expected(out: ET.Element):
    kind, text = out.get("type"), (out.text or "")
    if kind == "boolean":
        return text == "true"
    if kind == "integer":
        return int(text)
    if kind == "decimal":
        return Decimal(text)
    if kind in ("date", "dateTime", "time"):
        return text.lstrip("@").lstrip("T")
    return text


def _same(got, want) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, Decimal):
        return isinstance(got, (int, float, Decimal)) and Decimal(str(got)) == want
    if isinstance(want, int):
        return isinstance(got, int) and got == want
    if isinstance(got, dict) and {"value", "unit"} <= set(got):  # a Quantity: "4 'g'" / "4 days"
        unit = got["unit"]
        return want in (f"{got['value']} '{unit}'", f"{got['value']} {unit}")
    return str(got).lstrip("T") == want


def run_suite() -> list[dict]:
    """Every test of the suite with its outcome."""
    tree = ET.parse(SUITE / "tests-fhir-r4.xml")
    inputs: dict[str, dict] = {}
    results = []
    for group in tree.getroot().iter("group"):
        for test in group.iter("test"):
            expr_el = test.find("expression")
            text = expr_el.text or ""
            invalid = expr_el.get("invalid")
            wants = [_expected(o) for o in test.findall("output")]
            name = test.get("inputfile")
            resource = {}
            if name:
                json_name = name.replace(".xml", ".json")
                if json_name not in inputs:
                    inputs[json_name] = json.loads((SUITE / "input_json" / json_name).read_text())
                resource = inputs[json_name]
            outcome, detail = "fail", None
            try:
                got = Expression(text).values(json.loads(json.dumps(resource)))
                if test.get("predicate") == "true":
                    got = [bool(got)]
                if invalid:
                    detail = f"expected an error, got {got!r}"[:300]
                elif len(got) == len(wants) and all(_same(g, w) for g, w in zip(got, wants, strict=True)):
                    outcome = "pass"
                else:
                    detail = f"got {got!r}, expected {wants!r}"[:300]
            except FhirPathError as exc:
                if invalid:
                    outcome = "pass"
                else:
                    detail = str(exc)[:300]
            except Exception as exc:  # noqa: BLE001 - an engine crash counts as a failure, not a test error
                detail = f"{type(exc).__name__}: {exc}"[:300]
            results.append({"group": group.get("name"), "name": test.get("name"), "expression": text,
                            "result": outcome, "detail": detail})
    return results


def test_fhirpath_r4_suite_pass_count():
    results = run_suite()
    passed = sum(r["result"] == "pass" for r in results)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"engine": "fhirpathpy (R4 model) + hutong.stats.fhirpath functions",
                                  "total": len(results), "passed": passed, "tests": results},
                                 indent=1, ensure_ascii=False, default=str))
    print(f"FHIRPath R4 suite: {passed}/{len(results)} passed")
    assert len(results) == 935
    assert passed >= FLOOR
