"""The reporting API over real HTTP (both backends): an institution fills the monthly report through
the API and by Excel upload, a broken rule is shown, completeness counts it, the county approves."""

from __future__ import annotations

import io

import httpx
import pytest
from openpyxl import load_workbook

from hutong.stats import report_excel

DIV = "https://hutong.example/fhir/StructureDefinition/division-code"


@pytest.fixture
def api(server, server_store):
    for oid, name, div in (("h1", "长春市第一医院", "220102"), ("h2", "南关区中心医院", "220102")):
        server_store.update("Organization", oid, {"resourceType": "Organization", "id": oid, "name": name,
                                                  "extension": [{"url": DIV, "valueCode": div}]})
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post("/api/stats/datasets/HRMS_M/assignments", json={"orgUnits": ["h1", "h2"]})
        assert r.status_code == 200, r.text
        yield client


def test_fill_by_api_and_excel_then_complete_and_approve(api):
    form = api.get("/api/stats/datasets/HRMS_M").json()
    assert form["periodType"] == "monthly" and form["dataElements"][0]["name"] == "门急诊人次"
    assert len(form["dataElements"][0]["cells"]) == 6

    # h1 through the API, with門急诊 ≠ 门诊 + 急诊
    r = api.post("/api/stats/dataValueSets", json={"dataSet": "HRMS_M", "orgUnit": "h1", "period": "202611",
                                                    "dataValues": [
                                                        {"dataElement": "OP_EM_VISITS", "categoryOptionCombo":
                                                         "male_a15_64", "value": 100},
                                                        {"dataElement": "OP_VISITS", "value": 70},
                                                        {"dataElement": "EM_VISITS", "value": 20}]})
    assert r.status_code == 200, r.text
    assert [v["rule"] for v in r.json()["violations"]] == ["VR_OPEM_SUM"]
    r = api.get("/api/stats/violations", params={"dataSet": "HRMS_M", "period": "202611"})
    assert [(v["org"], v["rule"]) for v in r.json()["violations"]] == [("h1", "VR_OPEM_SUM")]
    r = api.post("/api/stats/reports/HRMS_M/h1/202611/submit")
    assert r.status_code == 200 and r.json()["status"] == "submitted"

    # h2 by Excel: download the template, fill it, one bad cell first
    r = api.get("/api/stats/reports/HRMS_M/h2/202611/template.xlsx")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    wb = load_workbook(io.BytesIO(r.content))
    ws = wb[report_excel.SHEET]
    rows = {ws.cell(row=i, column=1).value: i for i in range(5, ws.max_row + 1) if ws.cell(row=i, column=1).value}
    ws.cell(row=rows["BEDS|"], column=5, value="十二")
    ws.cell(row=rows["ADMISSIONS|"], column=5, value=30)
    buf = io.BytesIO()
    wb.save(buf)
    r = api.post("/api/stats/reports/HRMS_M/h2/202611/upload", content=buf.getvalue(),
                 headers={"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == [f"E{rows['BEDS|']}"] and "不是数字" in issue["diagnostics"]
    ws.cell(row=rows["BEDS|"], column=5, value=12)
    buf = io.BytesIO()
    wb.save(buf)
    r = api.post("/api/stats/reports/HRMS_M/h2/202611/upload", content=buf.getvalue())
    assert r.status_code == 200, r.text
    assert {v["dataElement"]: v["value"] for v in r.json()["dataValues"]} == {"ADMISSIONS": 30, "BEDS": 12}

    r = api.get("/api/stats/completeness", params={"dataSet": "HRMS_M", "period": "202611", "unit": "220102"})
    body = r.json()
    assert (body["total"]["expected"], body["total"]["received"]) == (2, 1)
    r = api.get("/api/stats/completeness", params={"dataSet": "HRMS_M", "period": "202611", "format": "xlsx"})
    assert r.status_code == 200 and r.content[:2] == b"PK"

    r = api.post("/api/stats/reports/HRMS_M/h1/202611/approve", json={"level": 2})
    assert r.status_code == 409 and r.json()["resourceType"] == "OperationOutcome"
    r = api.post("/api/stats/reports/HRMS_M/h1/202611/approve", json={"level": 1})
    assert r.status_code == 200 and r.json()["approvalName"] == "县级已审核"
    r = api.post("/api/stats/dataValueSets", json={"dataSet": "HRMS_M", "orgUnit": "h1", "period": "202611",
                                                    "dataValues": [{"dataElement": "BEDS", "value": 1}]})
    assert r.status_code == 409


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/api/stats/dataValueSets", {"dataSet": "NOPE", "orgUnit": "h1", "period": "202611"}, 404),
    ("post", "/api/stats/dataValueSets", {"dataSet": "HRMS_M", "orgUnit": "h9", "period": "202611"}, 403),
    ("post", "/api/stats/dataValueSets", {"dataSet": "HRMS_M", "orgUnit": "h1", "period": "2026Q4"}, 400),
    ("post", "/api/stats/dataValueSets", {"dataSet": "HRMS_M", "orgUnit": "h1", "period": "202611", "x": 1}, 400),
    ("post", "/api/stats/reports/HRMS_M/h1/202611/upload", b"garbage", 400),
    ("post", "/api/stats/reports/HRMS_M/h1/202611/submit", None, 409),
    ("get", "/api/stats/completeness?dataSet=HRMS_M&period=20261", None, 400),
])
def test_bad_requests_are_clear_errors(api, method, path, body, status):
    kw = {"content": body} if isinstance(body, bytes) else ({"json": body} if body is not None else {})
    r = getattr(api, method)(path, **kw)
    assert r.status_code == status, r.text


def test_an_institution_cannot_enter_another_ones_report(api):
    r = api.post("/api/stats/dataValueSets", json={"dataSet": "HRMS_M", "orgUnit": "h2", "period": "202611",
                                                    "dataValues": []},
                 headers={"X-Hutong-Institution": "h1", "X-Hutong-Role": "clinician"})
    assert r.status_code == 403, r.text
