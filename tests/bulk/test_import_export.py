"""Bulk load and export: NDJSON and Bundle files, bad lines reported, good ones kept."""

from __future__ import annotations

import gzip

import orjson
from typer.testing import CliRunner

from hutong.bulk.export import export_ndjson
from hutong.bulk.load import import_paths
from hutong.cli import app


def write_ndjson(path, resources, extra_lines=()):
    with open(path, "wb") as fh:
        for r in resources:
            fh.write(orjson.dumps(r) + b"\n")
        for line in extra_lines:
            fh.write(line + b"\n")


def test_ndjson_import_keeps_ids_reports_bad_lines_and_exports(store, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    patients = [{"resourceType": "Patient", "id": f"p{i}", "gender": "female"} for i in range(30)]
    observations = [{"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "血糖"},
                     "subject": {"reference": f"Patient/p{i}"}} for i in range(30)]
    # Observations come first alphabetically; the loader still orders Patient before Observation.
    write_ndjson(src / "Observation.ndjson", observations, [b"{broken", b'{"resourceType": "Observation", "id": "bad", "status": "nope"}'])
    write_ndjson(src / "Patient.ndjson", patients)
    summary = import_paths(store, [src], batch_size=7)
    assert summary.created["Patient"] == 30 and summary.created["Observation"] == 30
    assert summary.failed == 2
    assert any("not valid JSON" in e for e in summary.errors)
    assert store.get("Observation", "o3")["subject"]["reference"] == "Patient/p3"

    # Loading the same files again updates nothing (identical content makes no new version).
    again = import_paths(store, [src / "Patient.ndjson"])
    assert again.created["Patient"] == 0 and store.read_resource("Patient", "p1").version_id == 1

    counts = export_ndjson(store, tmp_path / "out")
    assert counts == {"Patient": 30, "Observation": 30}
    lines = (tmp_path / "out" / "Patient.ndjson").read_bytes().splitlines()
    assert sorted(orjson.loads(line)["id"] for line in lines) == sorted(p["id"] for p in patients)


def test_bundle_files_transaction_and_collection(store, tmp_path):
    tx_bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
                      "subject": {"reference": "urn:uuid:p"}}, "request": {"method": "POST", "url": "Encounter"}},
    ]}
    (tmp_path / "tx.json.gz").write_bytes(gzip.compress(orjson.dumps(tx_bundle)))
    collection = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Organization", "id": "org1", "name": "长春市第一医院"}}]}
    (tmp_path / "c.json").write_bytes(orjson.dumps(collection))
    summary = import_paths(store, [tmp_path / "tx.json.gz", tmp_path / "c.json"])
    assert summary.failed == 0
    assert summary.created["Patient"] == 1 and summary.created["Encounter"] == 1
    assert store.get("Organization", "org1")["name"] == "长春市第一医院"


def test_failing_transaction_file_is_reported_not_fatal(store, tmp_path):
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "birthDate": "1990-13-45"}, "request": {"method": "POST", "url": "Patient"}}]}
    (tmp_path / "bad.json").write_bytes(orjson.dumps(bad))
    (tmp_path / "broken.json").write_bytes(b"{")
    summary = import_paths(store, [tmp_path / "bad.json", tmp_path / "broken.json", tmp_path / "missing.json"])
    assert summary.failed == 3 and summary.resources == 0


def test_cli_import_and_export(tmp_path):
    write_ndjson(tmp_path / "Patient.ndjson", [{"resourceType": "Patient", "id": "a"}, {"resourceType": "Patient", "id": "b"}])
    runner = CliRunner()
    data = str(tmp_path / "data")
    result = runner.invoke(app, ["import", str(tmp_path / "Patient.ndjson"), "--data-dir", data])
    assert result.exit_code == 0, result.output
    assert "Patient: 2 created" in result.output
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "out"), "--data-dir", data])
    assert result.exit_code == 0 and "Patient: 2" in result.output
