"""``POST /fhir/$viewdefinition-run`` over real HTTP on both backends: inline and stored views,
every output format, patient/group/_since/_limit, inline resources, and clear errors."""

from __future__ import annotations

import csv
import io
import time

import duckdb
import orjson
import pytest

from hutong.core.clock import instant, now_us
from hutong.stats import library

PATIENT_VIEW = {
    "resourceType": "ViewDefinition", "name": "patient_flat", "url": "http://hutong.org/views/patient_flat",
    "resource": "Patient", "status": "active",
    "select": [{"column": [{"name": "id", "path": "getResourceKey()", "type": "id"},
                           {"name": "gender", "path": "gender", "type": "code"},
                           {"name": "birth_date", "path": "birthDate", "type": "date"},
                           {"name": "active", "path": "active", "type": "boolean"}]},
               {"forEachOrNull": "name", "column": [{"name": "family", "path": "family", "type": "string"},
                                                    {"name": "given", "path": "given", "type": "string",
                                                     "collection": True}]}],
}
ENCOUNTER_VIEW = {
    "resourceType": "ViewDefinition", "name": "encounter_flat", "resource": "Encounter", "status": "active",
    "select": [{"column": [{"name": "id", "path": "getResourceKey()", "type": "id"},
                           {"name": "patient_id", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                           {"name": "start", "path": "period.start", "type": "dateTime"}]}],
}


def _params(*parts) -> dict:
    return {"resourceType": "Parameters", "parameter": list(parts)}


def _seed(fhir):
    for pid, gender, family, birth in [("p1", "female", "王", "1980-05-01"), ("p2", "male", "李", "1975-01-02"),
                                       ("p3", "male", None, "2001-09-09")]:
        body = {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth, "active": True}
        if family:
            body["name"] = [{"family": family, "given": ["小", "明"]}]
        assert fhir.put(f"/Patient/{pid}", json=body).status_code in (200, 201)
    for i, pid in enumerate(["p1", "p1", "p2"]):
        enc = {"resourceType": "Encounter", "id": f"e{i}", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": f"Patient/{pid}"}, "period": {"start": f"2026-11-0{i + 1}T09:00:00+08:00"}}
        assert fhir.put(f"/Encounter/e{i}", json=enc).status_code in (200, 201)
    group = {"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
             "member": [{"entity": {"reference": "Patient/p2"}}]}
    assert fhir.put("/Group/g1", json=group).status_code in (200, 201)


def _run(fhir, *parts, **kw):
    return fhir.post("/$viewdefinition-run", json=_params(*parts), **kw)


def test_inline_view_in_every_format(fhir):
    _seed(fhir)
    view = {"name": "viewResource", "resource": PATIENT_VIEW}

    r = _run(fhir, view, {"name": "_format", "valueCode": "json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    rows = sorted(r.json(), key=lambda x: x["id"])
    assert rows == [
        {"id": "p1", "gender": "female", "birth_date": "1980-05-01", "active": True, "family": "王", "given": ["小", "明"]},
        {"id": "p2", "gender": "male", "birth_date": "1975-01-02", "active": True, "family": "李", "given": ["小", "明"]},
        {"id": "p3", "gender": "male", "birth_date": "2001-09-09", "active": True, "family": None, "given": []},
    ]

    r = _run(fhir, view)   # ndjson by default
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert sorted(orjson.loads(line)["id"] for line in r.text.splitlines()) == ["p1", "p2", "p3"]

    r = _run(fhir, view, {"name": "_format", "valueCode": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == ["id", "gender", "birth_date", "active", "family", "given"]
    assert sorted(row[0] for row in table[1:]) == ["p1", "p2", "p3"]
    assert ["p3", "male", "2001-09-09", "true", "", "[]"] in table

    r = _run(fhir, view, {"name": "_format", "valueCode": "csv"}, {"name": "header", "valueBoolean": False})
    assert len(list(csv.reader(io.StringIO(r.text)))) == 3

    r = _run(fhir, view, {"name": "_format", "valueCode": "parquet"})
    assert r.status_code == 200 and r.content[:4] == b"PAR1"
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [_tmp_parquet(r.content)])
    assert con.execute("SELECT id, active FROM t ORDER BY id").fetchall() == [("p1", True), ("p2", True), ("p3", True)]
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name='t'")
                 .fetchall())
    assert types["active"] == "BOOLEAN"


def _tmp_parquet(content: bytes) -> str:
    import tempfile

    fh = tempfile.NamedTemporaryFile(suffix=".parquet", delete=False)
    fh.write(content)
    fh.close()
    return fh.name


def test_stored_view_by_reference_and_by_url(fhir, server_store):
    _seed(fhir)
    with server_store.write() as tx:
        vid = library.save_view(tx, ENCOUNTER_VIEW, "encounter-flat")
    assert vid == "encounter-flat"
    for ref in ({"name": "viewReference", "valueReference": {"reference": "ViewDefinition/encounter-flat"}},
                {"name": "viewReference", "valueReference": {"reference": "Basic/encounter-flat"}}):
        r = _run(fhir, ref, {"name": "_format", "valueCode": "json"})
        assert r.status_code == 200, r.text
        assert sorted((x["id"], x["patient_id"]) for x in r.json()) == [("e0", "p1"), ("e1", "p1"), ("e2", "p2")]
    # the stored definition is an ordinary Basic resource (R4 has no ViewDefinition type)
    basic = fhir.get("/Basic/encounter-flat").json()
    assert basic["code"]["coding"][0]["code"] == "ViewDefinition"

    with server_store.write() as tx:
        library.save_view(tx, PATIENT_VIEW)
    r = _run(fhir, {"name": "viewReference", "valueReference": {"reference": PATIENT_VIEW["url"]}},
             {"name": "_format", "valueCode": "json"})
    assert r.status_code == 200, r.text
    assert len(r.json()) == 3


def test_patient_group_since_and_limit(fhir):
    _seed(fhir)
    view = {"name": "viewResource", "resource": ENCOUNTER_VIEW}
    fmt = {"name": "_format", "valueCode": "json"}

    r = _run(fhir, view, fmt, {"name": "patient", "valueReference": {"reference": "Patient/p1"}})
    assert sorted(x["id"] for x in r.json()) == ["e0", "e1"]
    r = _run(fhir, view, fmt, {"name": "group", "valueReference": {"reference": "Group/g1"}})
    assert [x["id"] for x in r.json()] == ["e2"]
    r = _run(fhir, view, fmt, {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
             {"name": "group", "valueReference": {"reference": "Group/g1"}})
    assert len(r.json()) == 3
    r = _run(fhir, view, fmt, {"name": "_limit", "valueInteger": 2})
    assert len(r.json()) == 2

    time.sleep(0.01)
    since = instant(now_us())
    time.sleep(0.01)
    enc = fhir.get("/Encounter/e1").json()
    enc["status"] = "cancelled"
    assert fhir.put("/Encounter/e1", json=enc).status_code == 200
    r = _run(fhir, view, fmt, {"name": "_since", "valueInstant": since})
    assert [x["id"] for x in r.json()] == ["e1"]


def test_inline_resources_instead_of_the_store(fhir):
    r = _run(fhir, {"name": "viewResource", "resource": PATIENT_VIEW}, {"name": "_format", "valueCode": "json"},
             {"name": "resource", "resource": {"resourceType": "Patient", "id": "x1", "gender": "other"}},
             {"name": "resource", "resource": {"resourceType": "Observation", "id": "o1"}})
    assert r.status_code == 200, r.text
    assert r.json() == [{"id": "x1", "gender": "other", "birth_date": None, "active": None, "family": None,
                         "given": []}]


@pytest.mark.parametrize(("parts", "status", "needle"), [
    ([], 400, "exactly one"),
    ([{"name": "viewResource", "resource": {"resourceType": "ViewDefinition", "select": []}}], 400, "resource"),
    ([{"name": "viewResource", "resource": {"resource": "Patient", "select": [{"forEach": "@@"}]}}], 400, "parse"),
    ([{"name": "viewResource", "resource": PATIENT_VIEW}, {"name": "_format", "valueCode": "xlsx"}], 400, "_format"),
    ([{"name": "viewResource", "resource": PATIENT_VIEW}, {"name": "_limit", "valueInteger": 0}], 400, "_limit"),
    ([{"name": "viewReference", "valueReference": {"reference": "ViewDefinition/nope"}}], 404, "nope"),
    ([{"name": "viewResource", "resource": PATIENT_VIEW}, {"name": "group", "valueReference":
                                                            {"reference": "Group/none"}}], 404, "Group"),
    ([{"name": "viewResource", "resource": PATIENT_VIEW}, {"name": "bogus", "valueString": "x"}], 400, "bogus"),
])
def test_bad_requests_get_an_operation_outcome(fhir, parts, status, needle):
    r = _run(fhir, *parts)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert needle in body["issue"][0]["diagnostics"]


def test_a_view_failing_on_the_data_is_422_not_500(fhir):
    _seed(fhir)
    view = {"resource": "Patient", "select": [{"column": [{"name": "given", "path": "name.given"}]}]}
    r = _run(fhir, {"name": "viewResource", "resource": view}, {"name": "_format", "valueCode": "json"})
    assert r.status_code == 422, r.text
    assert "collection" in r.json()["issue"][0]["diagnostics"]


def test_the_operation_is_in_the_capability_statement(fhir):
    statement = fhir.get("/metadata").json()
    ops = [op for rest in statement["rest"] for op in rest.get("operation", [])]
    assert any(op["name"] == "viewdefinition-run" for op in ops)


def test_format_in_the_query_string_wins_over_accept(fhir):
    _seed(fhir)
    body = _params({"name": "viewResource", "resource": PATIENT_VIEW})
    r = fhir.post("/$viewdefinition-run?_format=csv", json=body, headers={"Accept": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(r.text)))[0][:2] == ["id", "gender"]

    r = fhir.post("/$viewdefinition-run", params={"_format": "text/csv"}, json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text

    r = fhir.post("/$viewdefinition-run?_format=ndjson", json=body, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson"), r.text
    assert sorted(orjson.loads(line)["id"] for line in r.text.splitlines()) == ["p1", "p2", "p3"]

    r = fhir.post("/$viewdefinition-run?_format=parquet", json=body)
    assert r.status_code == 200 and r.content[:4] == b"PAR1", r.text

    # Accept alone still chooses when there is no _format
    r = fhir.post("/$viewdefinition-run", json=body, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")

    # formats nobody produces are still refused, and only this operation speaks csv
    r = fhir.post("/$viewdefinition-run?_format=xml", json=body)
    assert r.status_code == 406 and r.json()["resourceType"] == "OperationOutcome"
    r = fhir.get("/Patient/p1", params={"_format": "csv"})
    assert r.status_code == 406
