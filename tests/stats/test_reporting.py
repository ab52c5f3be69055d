"""Direct reporting on both backends: entry, validation rules, completeness and timeliness, reminders,
approval county → city → province with unlock, and the Excel round trip — checked against numbers
worked out by hand."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import load_workbook

from hutong.core.clock import SHANGHAI, to_us
from hutong.core.errors import FhirError
from hutong.stats import report_excel, reporting
from hutong.stats.datasets import BUILTIN, DataSet
from hutong.stats.periods import parse_period

DIV = "https://hutong.example/fhir/StructureDefinition/division-code"
HRMS = BUILTIN["HRMS_M"]
ORGS = {"h1": ("长春市第一医院", "220102"), "h2": ("南关区中心医院", "220102"), "h3": ("宽城区医院", "220103"),
        "h4": ("吉林市医院", "220202")}


def _org(oid: str) -> dict:
    name, div = ORGS[oid]
    return {"resourceType": "Organization", "id": oid, "name": name, "extension": [{"url": DIV, "valueCode": div}]}


@pytest.fixture
def province(store):
    for oid in ORGS:
        store.update("Organization", oid, _org(oid))
    with store.write() as tx:
        reporting.assign(tx, HRMS, list(ORGS))
    return store


def _values(**kw) -> list[dict]:
    out = []
    for key, value in kw.items():
        element, _, coc = key.partition("__")
        out.append({"dataElement": element, "categoryOptionCombo": coc, "value": value})
    return out


GOOD = _values(OP_EM_VISITS__male_a15_64=60, OP_EM_VISITS__female_a15_64=40, OP_VISITS=90, EM_VISITS=10,
               ADMISSIONS=20, DISCHARGES=18, BED_DAYS=300, DISCHARGE_BED_DAYS=200, BEDS=12, STAFF=50,
               HEALTH_TECH=40, DOCTORS=12, NURSES=20, PHARMACISTS=3, TECHNICIANS=4)


def _at(day: date) -> int:
    return to_us(datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI))


def test_a_broken_rule_is_listed_and_fixed(province):
    bad = [v for v in GOOD if v["dataElement"] != "OP_VISITS"] + _values(OP_VISITS=80)   # 100 != 80 + 10
    with province.write() as tx:
        state = reporting.save_values(tx, HRMS, "h1", "202611", bad, "h1-user")
    assert state["status"] == "draft"
    assert [(v["rule"], v["left"], v["right"]) for v in state["violations"]] == [("VR_OPEM_SUM", 100.0, 90.0)]
    with province.read() as tx:
        listed = reporting.violations(tx.conn, HRMS, "202611", "2201")
    assert [(v["org"], v["rule"], v["importance"]) for v in listed] == [("h1", "VR_OPEM_SUM", "high")]
    with province.write() as tx:
        state = reporting.save_values(tx, HRMS, "h1", "202611", _values(OP_VISITS=90), "h1-user")
    assert state["violations"] == []


def test_rule_with_days_of_the_period(province):
    # discharges ≤ admissions + beds × days: November has 30 days → 5 + 1 × 30 = 35
    with province.write() as tx:
        ok = reporting.save_values(tx, HRMS, "h2", "202611", _values(DISCHARGES=35, ADMISSIONS=5, BEDS=1), "u")
        assert "VR_DISCHARGES" not in {v["rule"] for v in ok["violations"]}
        bad = reporting.save_values(tx, HRMS, "h2", "202611", _values(DISCHARGES=36), "u")
    assert ("VR_DISCHARGES", 36.0, 35.0) in {(v["rule"], v["left"], v["right"]) for v in bad["violations"]}


def test_values_are_checked_cell_by_cell_and_nothing_is_saved_on_error(province):
    with province.write() as tx, pytest.raises(reporting.EntryRejected) as err:
        reporting.save_values(tx, HRMS, "h1", "202611", _values(BEDS=10, STAFF="many", NURSES=-1, DOCTORS=2.5,
                                                                NOPE=1, OP_VISITS__male_a0_14=3), "u")
    messages = {(e.element, e.message.split(" (")[0]) for e in err.value.errors}
    assert ("STAFF", "“many”不是数字") in messages
    assert ("NURSES", "不能为负数") in messages
    assert ("DOCTORS", "其中：执业（助理）医师应为整数") in messages
    assert {e.element for e in err.value.errors} == {"STAFF", "NURSES", "DOCTORS", "NOPE", "OP_VISITS"}
    assert err.value.status == 422
    with province.read() as tx:
        assert reporting.values(tx.conn, HRMS, "h1", "202611") == {}
    with province.write() as tx, pytest.raises(FhirError) as bad_period:
        reporting.save_values(tx, HRMS, "h1", "2026Q4", GOOD, "u")
    assert bad_period.value.status == 400


def test_completeness_timeliness_and_approval_chain(province):
    period = parse_period("202611", "monthly")
    assert reporting.deadline(HRMS, period) == date(2026, 12, 10)
    with province.write() as tx:
        for org in ("h1", "h2", "h3"):
            reporting.save_values(tx, HRMS, org, "202611", GOOD, org)
        reporting.submit(tx.conn, HRMS, "h1", "202611", "h1", _at(date(2026, 12, 5)))    # on time
        reporting.submit(tx.conn, HRMS, "h2", "202611", "h2", _at(date(2026, 12, 12)))   # late
    with province.read() as tx:
        whole = reporting.completeness(tx.conn, HRMS, "202611")
        city = reporting.completeness(tx.conn, HRMS, "202611", "2201")
        county = reporting.completeness(tx.conn, HRMS, "202611", "220102")
    assert whole["total"] | {} == {**whole["total"], "expected": 4, "received": 2, "onTime": 1,
                                   "completeness": 0.5, "timeliness": 0.25}
    assert [(c["unit"], c["name"], c["expected"], c["received"]) for c in whole["children"]] == [
        ("2201", "长春市", 3, 2), ("2202", "吉林市", 1, 0)]
    assert [(c["unit"], c["expected"], c["received"], c["onTime"]) for c in city["children"]] == [
        ("220102", 2, 2, 1), ("220103", 1, 0, 0)]
    assert [(c["unit"], c["name"], c["received"]) for c in county["children"]] == [
        ("h1", "长春市第一医院", 1), ("h2", "南关区中心医院", 1)]

    with province.write() as tx:
        with pytest.raises(FhirError) as locked:
            reporting.save_values(tx, HRMS, "h1", "202611", _values(BEDS=13), "h1")
        assert locked.value.status == 409
        with pytest.raises(FhirError):      # the city cannot approve before the county
            reporting.approve(tx.conn, HRMS, "h1", "202611", 2, "city")
        with pytest.raises(FhirError):      # an unsubmitted report cannot be approved
            reporting.approve(tx.conn, HRMS, "h3", "202611", 1, "county")
        assert reporting.approve(tx.conn, HRMS, "h1", "202611", 1, "county")["approvedLevel"] == 1
        assert reporting.approve(tx.conn, HRMS, "h1", "202611", 2, "city")["approvedLevel"] == 2
        with pytest.raises(FhirError):      # the county cannot withdraw once the city has approved
            reporting.unapprove(tx.conn, HRMS, "h1", "202611", 1, "county")
        assert reporting.unapprove(tx.conn, HRMS, "h1", "202611", 2, "city")["approvedLevel"] == 1
        with pytest.raises(FhirError):      # the county may not unlock above its approval... it may at its own
            reporting.unlock(tx.conn, HRMS, "h1", "202611", 0, "nobody")
        state = reporting.unlock(tx.conn, HRMS, "h1", "202611", 1, "county")
        assert (state["status"], state["approvedLevel"], state["locked"]) == ("returned", 0, False)
        state = reporting.save_values(tx, HRMS, "h1", "202611", _values(BEDS=13), "h1")
        assert [h["action"] for h in state["history"]] == ["submit", "approve", "approve", "unapprove", "unlock"]
    with province.read() as tx:
        agg = reporting.aggregate(tx.conn, HRMS, "202611", "220102")
    # h1 (returned, BEDS 13) + h2 (submitted, BEDS 12): county sums
    assert agg[("BEDS", "")] == 25
    assert agg[("OP_EM_VISITS", "male_a15_64")] == 120


def test_reminders_only_in_the_window_and_only_once(province):
    with province.write() as tx:
        reporting.save_values(tx, HRMS, "h1", "202611", GOOD, "h1")
        reporting.submit(tx.conn, HRMS, "h1", "202611", "h1", _at(date(2026, 12, 1)))
    with province.write() as tx:
        assert reporting.send_reminders(tx, HRMS, "202611", date(2026, 12, 1)) == []   # window opens 12-07
        sent = reporting.send_reminders(tx, HRMS, "202611", date(2026, 12, 8))
    assert sorted(s["org"] for s in sent) == ["h2", "h3", "h4"]
    with province.read() as tx:
        comm = tx.read("Communication", sent[0]["communication"]).resource
    assert comm["recipient"][0]["reference"] == f"Organization/{sent[0]['org']}"
    assert "截止日期 2026-12-10" in comm["payload"][0]["contentString"]
    with province.write() as tx:
        assert reporting.send_reminders(tx, HRMS, "202611", date(2026, 12, 9)) == []


def test_excel_round_trip_with_cell_errors(province):
    period = parse_period("202611", "monthly")
    with province.write() as tx:
        reporting.save_values(tx, HRMS, "h1", "202611", _values(BEDS=12), "h1")
        current = reporting.values(tx.conn, HRMS, "h1", "202611")
    content = report_excel.template(HRMS, "h1", "长春市第一医院", period, current)
    wb = load_workbook(io.BytesIO(content))
    ws = wb[report_excel.SHEET]
    assert ws.protection.sheet and ws.column_dimensions["A"].hidden
    keys = {ws.cell(row=r, column=1).value: r for r in range(5, ws.max_row + 1) if ws.cell(row=r, column=1).value}
    assert ws.cell(row=keys["BEDS|"], column=5).value == 12
    assert len(keys) == 6 + 13   # 6 sex × age cells of OP_EM_VISITS, 13 single-cell elements
    filled = {f"{k['dataElement']}|{k['categoryOptionCombo']}": k["value"] for k in GOOD}
    for key, row in keys.items():
        ws.cell(row=row, column=5, value=filled.get(key))
    ws.cell(row=keys["STAFF|"], column=5, value="五十")
    ws.cell(row=keys["NURSES|"], column=5, value=-2)
    buf = io.BytesIO()
    wb.save(buf)

    entries, errors = report_excel.read_upload(HRMS, "h1", period, buf.getvalue())
    assert errors == []
    with province.write() as tx, pytest.raises(reporting.EntryRejected) as err:
        reporting.save_values(tx, HRMS, "h1", "202611", entries, "h1")
    assert sorted((e.cell, e.element) for e in err.value.errors) == sorted(
        [(f"E{keys['STAFF|']}", "STAFF"), (f"E{keys['NURSES|']}", "NURSES")])

    ws.cell(row=keys["STAFF|"], column=5, value=50)
    ws.cell(row=keys["NURSES|"], column=5, value=20)
    buf = io.BytesIO()
    wb.save(buf)
    entries, _ = report_excel.read_upload(HRMS, "h1", period, buf.getvalue())
    with province.write() as tx:
        state = reporting.save_values(tx, HRMS, "h1", "202611", entries, "h1")
    assert state["violations"] == []
    assert {(v["dataElement"], v["categoryOptionCombo"]): v["value"] for v in state["dataValues"]} == {
        (k["dataElement"], k["categoryOptionCombo"]): k["value"] for k in GOOD}

    # a template of another report is refused
    with pytest.raises(FhirError):
        report_excel.read_upload(HRMS, "h2", period, buf.getvalue())
    with pytest.raises(FhirError):
        report_excel.read_upload(HRMS, "h1", period, b"not a workbook")


def test_custom_data_sets_are_checked_and_stored(province):
    doc = {"code": "FLU_W", "name": "流感样病例月报", "periodType": "monthly",
           "dataElements": [{"code": "ILI", "name": "流感样病例数"}, {"code": "VISITS", "name": "门诊人次"}],
           "validationRules": [{"code": "R1", "name": "ILI ≤ visits", "left": "#{ILI}", "operator": "<=",
                                "right": "#{VISITS}"}]}
    with province.write() as tx:
        reporting.save_dataset(tx.conn, doc)
        ds = reporting.get_dataset(tx.conn, "FLU_W")
        assert isinstance(ds, DataSet) and [r.code for r in ds.rules] == ["R1"]
        for broken in ({**doc, "periodType": "weekly"},
                       {**doc, "validationRules": [{**doc["validationRules"][0], "right": "#{NOPE}"}]},
                       {**doc, "validationRules": [{**doc["validationRules"][0], "left": "#{ILI} +"}]},
                       {**doc, "code": "HRMS_M"}):
            with pytest.raises(FhirError):
                reporting.save_dataset(tx.conn, broken)
        assert {d.code for d in reporting.list_datasets(tx.conn)} == {"HRMS_M", "TCM_Q", "FLU_W"}
