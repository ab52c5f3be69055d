"""Materialised views: a stored view runs into DuckDB with the same rows as ``$viewdefinition-run``,
from the store (both backends) and from Bulk Data NDJSON; queries are read-only and cannot reach files."""

from __future__ import annotations

import gzip

import orjson
import pytest

from hutong.core.errors import FhirError
from hutong.stats import analytics, library, run
from hutong.stats.views import View

VIEW = {"resourceType": "ViewDefinition", "name": "encounter_flat", "resource": "Encounter",
        "select": [{"column": [{"name": "id", "path": "getResourceKey()", "type": "id"},
                               {"name": "org", "path": "serviceProvider.getReferenceKey(Organization)", "type": "id"},
                               {"name": "day", "path": "period.start.toString().substring(0, 10)", "type": "date"},
                               {"name": "los", "path": "length.value", "type": "decimal"}]}]}


def _encounter(i: int, org: str) -> dict:
    return {"resourceType": "Encounter", "id": f"e{i}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "serviceProvider": {"reference": f"Organization/{org}"},
            "period": {"start": f"2026-11-{i % 3 + 1:02d}T09:00:00+08:00"},
            "length": {"value": i, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}}


@pytest.fixture
def seeded(store):
    for org in ("a", "b"):
        store.update("Organization", org, {"resourceType": "Organization", "id": org, "name": org})
    for i in range(12):
        store.update("Encounter", f"e{i}", _encounter(i, "a" if i % 4 else "b"))
    with store.write() as tx:
        library.save_view(tx, VIEW, "encounter-flat")
    return store


def test_materialised_view_has_the_rows_of_the_run(seeded, tmp_path):
    view = View(VIEW)
    path = tmp_path / "a.duckdb"
    assert analytics.materialize(seeded, view, path) == 12
    with seeded.read() as tx:
        expected = sorted(tuple(r.values()) for r in run.view_rows(tx, view))
    got = analytics.query(path, "SELECT id, org, day, los FROM encounter_flat ORDER BY id")
    assert got["columns"] == ["id", "org", "day", "los"]
    assert sorted(tuple(r) for r in got["rows"]) == expected
    # an analytic question answered in DuckDB: stays per institution, average length of stay
    agg = analytics.query(path, "SELECT org, count(*), avg(los) FROM encounter_flat GROUP BY org ORDER BY org")
    assert agg["rows"] == [["a", 9, sum(i for i in range(12) if i % 4) / 9], ["b", 3, (0 + 4 + 8) / 3]]
    assert analytics.tables(path) == [{"table": "encounter_flat", "rows": 12}]

    # refresh after a change: the table follows the record
    seeded.delete("Encounter", "e1")
    assert analytics.materialize(seeded, view, path) == 11


def test_from_bulk_ndjson_gives_the_same_table(seeded, tmp_path):
    export = tmp_path / "Encounter.ndjson.gz"
    with seeded.read() as tx, gzip.open(export, "wb") as fh:
        for res in run.stored_resources(tx, "Encounter"):
            fh.write(orjson.dumps(res) + b"\n")
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    analytics.materialize(seeded, View(VIEW), a)
    analytics.materialize_ndjson(View(VIEW), [export], b)
    q = "SELECT * FROM encounter_flat ORDER BY id"
    assert analytics.query(a, q) == analytics.query(b, q)


def test_queries_are_read_only_and_cannot_touch_files(seeded, tmp_path):
    path = tmp_path / "a.duckdb"
    analytics.materialize(seeded, View(VIEW), path)
    for sql in ("DELETE FROM encounter_flat", "SELECT 1; DROP TABLE encounter_flat",
                "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM nowhere",
                "COPY encounter_flat TO '/tmp/x.csv'"):
        with pytest.raises(FhirError) as err:
            analytics.query(path, sql)
        assert err.value.status == 400
    assert analytics.tables(path)[0]["rows"] == 12


def test_materialise_and_query_over_http(server, server_store):
    import httpx

    server_store.update("Organization", "a", {"resourceType": "Organization", "id": "a", "name": "a"})
    for i in range(3):
        server_store.update("Encounter", f"e{i}", _encounter(i, "a"))
    with httpx.Client(base_url=server) as c:
        r = c.put("/api/stats/views/encounter-flat", json=VIEW)
        assert r.status_code == 200, r.text
        assert c.put("/api/stats/views/bad", json={"resource": "Patient"}).status_code == 400
        assert [v["id"] for v in c.get("/api/stats/views").json()["views"]] == ["encounter-flat"]
        r = c.post("/api/stats/views/encounter-flat/materialize")
        assert r.json() == {"table": "encounter_flat", "rows": 3}
        r = c.post("/api/stats/sql", json={"sql": "SELECT count(*) AS n FROM encounter_flat"})
        assert r.json()["rows"] == [[3]]
        r = c.post("/api/stats/sql?format=xlsx", json={"sql": "SELECT * FROM encounter_flat"})
        assert r.status_code == 200 and r.content[:2] == b"PK"
        r = c.post("/api/stats/sql", json={"sql": "DROP TABLE encounter_flat"})
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
