"""The assessment over real HTTP: a city platform pulls its institutions' figures, an institution's
report names lab results without units with examples, the Excel and PDF exports open (the PDF with
its CJK font embedded), bad input gets 400/404."""

from __future__ import annotations

import io

import httpx
import openpyxl
import pypdf

from tests.quality.province import lab, organization, patient, visit


def _load(fhir: httpx.Client, store) -> dict[str, str]:
    for oid, name, city, platform in (("h1", "长春市第一医院", "长春市", "2201"), ("h2", "吉林市中心医院", "吉林市", "2202")):
        assert fhir.put(f"/Organization/{oid}", json=organization(oid, name, city, platform)).status_code == 201
    ids = {}
    for org in ("h1", "h2"):
        pid = fhir.post("/Patient", json=patient(org, 7 if org == "h1" else 8)).json()["id"]
        ids[org] = pid
        assert fhir.post("/Encounter", json=visit(org, pid)).status_code == 201
    for k in range(4):
        r = fhir.post("/Observation", json=lab("h1", ids["h1"], unit=k != 0))
        assert r.status_code == 201, r.text
        if k == 0:
            ids["bad"] = r.json()["id"]
    store.run_consumers()
    return ids


def test_city_platform_pulls_its_institutions_and_one_report(server, server_store, fhir):
    ids = _load(fhir, server_store)
    with httpx.Client(base_url=server, timeout=60) as http:
        today = http.get("/api/quality/institutions", params={"day": _today(), "days": 7}).json()
        assert {r["id"] for r in today["institutions"]} >= {"h1", "h2"}
        assert [r["rank"] for r in today["institutions"]] == list(range(1, len(today["institutions"]) + 1))
        city = http.get("/api/quality/institutions", params={"platform": "2202", "day": _today()}).json()
        assert [r["id"] for r in city["institutions"]] == ["h2"]

        rep = http.get("/api/quality/institutions/h1", params={"day": _today(), "days": 7}).json()
        unit = next(r for r in rep["rules"] if r["rule"] == "lab-unit")
        assert (unit["applicable"], unit["failed"]) == (4, 1)
        assert [e["res_id"] for e in unit["examples"]] == [ids["bad"]]
        assert rep["connectivity"]["byType"]["Observation"] == 4
        assert rep["estimatedLevel"]["code"] in ("1", "2")
        assert rep["missingForNextLevel"], "a next level always says what it lacks"
        used = {x["part"] for x in rep["services"] if x["used"]}
        assert used == {"WS/T 790.6", "WS/T 790.12"}  # patients; visits and results
        assert "lastArrival" in rep["connectivity"] and "fhir" in rep["connectivity"]["lastArrival"]

        x = http.get("/api/quality/institutions/h1/report.xlsx", params={"day": _today(), "days": 7})
        assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
        wb = openpyxl.load_workbook(io.BytesIO(x.content))
        assert wb.sheetnames[0] == "概要"
        quality = wb["数据质量"]
        row = next(r for r in quality.iter_rows(min_row=3, values_only=True) if r[0] == "检验结果缺少单位")
        assert row[3:5] == (4, 1) and ids["bad"] in row[6]
        ranking = openpyxl.load_workbook(io.BytesIO(http.get("/api/quality/institutions.xlsx").content))
        assert ranking.sheetnames == ["排名"]

        p = http.get("/api/quality/institutions/h1/report.pdf", params={"day": _today(), "days": 7})
        assert p.status_code == 200 and p.headers["content-type"] == "application/pdf"
        assert "filename*=UTF-8''" in p.headers["content-disposition"]
        doc = pypdf.PdfReader(io.BytesIO(p.content))
        words = "".join("".join(page.extract_text().split()) for page in doc.pages)  # cells wrap lines
        assert "长春市第一医院" in words and "检验结果缺少单位" in words and ids["bad"] in words
        fonts = [f["/DescendantFonts"][0].get_object() for page in doc.pages
                 for f in page["/Resources"]["/Font"].values() if "/DescendantFonts" in f.get_object()]
        assert fonts and all("/FontFile2" in f["/FontDescriptor"] for f in fonts)  # embedded, not referenced
        english = http.get("/api/quality/institutions/h1/report.pdf", params={"day": _today(), "days": 7, "lang": "en"})
        assert "lab result without a unit" in "".join(pg.extract_text() for pg in pypdf.PdfReader(
            io.BytesIO(english.content)).pages)

        levels = http.get("/api/quality/levels").json()
        assert [lv["code"] for lv in levels["levels"]] == ["1", "2", "3", "4B", "4A", "5B", "5A"]


def test_bad_input_gets_clear_errors(server, server_store, fhir):
    _load(fhir, server_store)
    with httpx.Client(base_url=server, timeout=60) as http:
        for params in ({"day": "2026-13-01"}, {"day": "yesterday"}, {"days": 0}, {"days": 9999}):
            r = http.get("/api/quality/institutions/h1", params=params)
            assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", params
        assert http.get("/api/quality/institutions/nobody").status_code == 404
        assert http.get("/api/quality/institutions/bad%20id").status_code == 400
        assert http.get("/api/quality/institutions", params={"days": "x"}).status_code in (400, 422)


def _today() -> str:
    from hutong.core.clock import local_day, now_us

    return local_day(now_us())


def test_duplicate_registrations_show_in_the_institution_report(server, server_store, fhir):
    """The same resident registered twice at h1 (a manual re-registration) is one duplicate record in h1's
    report; the same resident at h2 is not h1's duplicate."""
    for oid, name, city, platform in (("h1", "长春市第一医院", "长春市", "2201"), ("h2", "吉林市中心医院", "吉林市", "2202")):
        assert fhir.put(f"/Organization/{oid}", json=organization(oid, name, city, platform)).status_code == 201
    for org in ("h1", "h1", "h2"):
        assert fhir.post("/Patient", json=patient(org, 21)).status_code == 201
    assert fhir.post("/Patient", json=patient("h1", 22)).status_code == 201
    server_store.run_consumers()
    server_store.run_consumers()  # the patient index links, then the figures are read
    with httpx.Client(base_url=server, timeout=60) as http:
        h1 = http.get("/api/quality/institutions/h1", params={"day": _today(), "days": 7}).json()["identity"]
        h2 = http.get("/api/quality/institutions/h2", params={"day": _today(), "days": 7}).json()["identity"]
    assert (h1["linkedPatients"], h1["duplicateRecords"], h1["patientsRegistered"]) == (3, 1, 3)
    assert (h2["linkedPatients"], h2["duplicateRecords"]) == (1, 0)
    assert abs(h1["duplicateRate"] - 1 / 3) < 1e-9
