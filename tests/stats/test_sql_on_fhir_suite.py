"""The official SQL on FHIR v2 test suite (134 tests), run against ``hutong.stats.views``.

Each test of each file is one pytest case. Rows are compared as an unordered multiset, as the
upstream reference runner does (same keys, same values, arrays included); ``expectError`` tests
pass when the view is rejected; ``expectColumns`` checks the column order too. The results are
written in the suite's report shape to ``test-artifacts/sql_on_fhir_v2/test_report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from hutong.stats.views import View, ViewError

SUITE = Path(__file__).resolve().parent / "conformance" / "sql_on_fhir_v2"   # copied unchanged (MIT)
REPORT = Path(__file__).resolve().parents[2] / "test-artifacts" / "sql_on_fhir_v2" / "test_report.json"


def _cases():
    out = []
    for path in sorted((SUITE / "tests").glob("*.json")):
        doc = json.loads(path.read_text())
        for test in doc["tests"]:
            out.append(pytest.param(path.name, doc, test, id=f"{path.stem}::{test['title']}"))
    return out


CASES = _cases()
RESULTS: dict[str, dict] = {}


def _canonical(row: dict) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def run_case(doc: dict, test: dict) -> tuple[bool, str | None]:
    """Run one suite test: (passed, reason)."""
    try:
        view = View(test["view"])
        rows = list(view.run(doc["resources"]))
    except ViewError as exc:
        if test.get("expectError"):
            return True, None
        return False, f"rejected: {exc}"
    if test.get("expectError"):
        return False, "the view was accepted and ran, but the test expects an error"
    if "expectColumns" in test and view.column_names != test["expectColumns"]:
        return False, f"columns {view.column_names} != {test['expectColumns']}"
    got = sorted(_canonical(r) for r in rows)
    want = sorted(_canonical(r) for r in test.get("expect", []))
    if got != want:
        return False, f"rows differ: got {[orjson.loads(g) for g in got]}, expected {[orjson.loads(w) for w in want]}"
    return True, None


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not RESULTS:
        return
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(RESULTS, indent=2, ensure_ascii=False) + "\n")


def test_suite_is_complete():
    assert len(CASES) == 134


@pytest.mark.parametrize(("file", "doc", "test"), CASES)
def test_sql_on_fhir_v2(file, doc, test):
    passed, reason = run_case(doc, test)
    entry = {"name": test["title"], "result": {"passed": passed}}
    if reason:
        entry["result"]["reason"] = reason[:2000]
    RESULTS.setdefault(file, {"tests": []})["tests"].append(entry)
    assert passed, reason
