"""``hutong stats …`` on a SQLite node folder: the indicator, the check against a full recomputation
and a view run, with numbers checked against a hand count."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from hutong.api.app import node_store
from hutong.cli import app
from hutong.config import load_settings
from hutong.stats import indicators

DIV = "https://hutong.example/fhir/StructureDefinition/division-code"


def _enc(org: str, start: str, cls: str = "AMB") -> dict:
    return {"resourceType": "Encounter", "status": "finished", "class": {"code": cls},
            "serviceProvider": {"reference": f"Organization/{org}"}, "period": {"start": start}}


def test_indicator_check_and_run(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", database_url="")
    store = node_store(settings)
    try:
        for org, div in (("h1", "220102"), ("h2", "220202")):
            store.update("Organization", org, {"resourceType": "Organization", "id": org, "name": org,
                                               "extension": [{"url": DIV, "valueCode": div}]})
        with store.write() as tx:
            # by hand: h1 has 2 visits on 11-02 (one AMB, one EMER), h2 one; the IMP stay is no visit
            for enc in (_enc("h1", "2026-11-02T09:00:00+08:00"), _enc("h1", "2026-11-02T10:00:00+08:00", "EMER"),
                        _enc("h2", "2026-11-03T09:00:00+08:00"), _enc("h2", "2026-11-03T09:00:00+08:00", "IMP")):
                tx.create(enc)
            moved = tx.create(_enc("h2", "2026-11-04T09:00:00+08:00"))
        store.register_consumer(indicators.CONSUMER.name, indicators.CONSUMER.handler, indicators.CONSUMER.types)
        store.run_consumers()
        with store.write() as tx:   # moved to h1 after the counters saw it
            tx.update("Encounter", moved.stored.res_id, {**_enc("h1", "2026-11-04T09:00:00+08:00"), "id": moved.stored.res_id})
    finally:
        store.close()
    args = ["--data-dir", str(tmp_path / "data"), "--database-url", ""]
    runner = CliRunner()

    r = runner.invoke(app, ["stats", "indicator", "OP_VISITS", "--start", "2026-11-01", "--end", "2026-11-30", *args])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["total"]["numerator"] == 4
    r = runner.invoke(app, ["stats", "indicator", "OP_VISITS", "--unit", "220202", "--start", "2026-11-01",
                            "--end", "2026-11-30", *args])
    assert r.exit_code == 0 and json.loads(r.output)["total"]["numerator"] == 1, r.output

    r = runner.invoke(app, ["stats", "check", *args])
    assert r.exit_code == 0, r.output
    assert "stats.visits\t3 keys\t4 total\tok" in r.output

    view = tmp_path / "v.json"
    view.write_text(json.dumps({"resourceType": "ViewDefinition", "resource": "Encounter", "select": [{"column": [
        {"name": "org", "path": "serviceProvider.getReferenceKey(Organization)", "type": "id"},
        {"name": "cls", "path": "class.code", "type": "code"}]}]}))
    r = runner.invoke(app, ["stats", "run", str(view), "--format", "csv", *args])
    assert r.exit_code == 0, r.output
    table = list(csv.reader(io.StringIO(r.stdout)))
    assert table[0] == ["org", "cls"]
    assert sorted(map(tuple, table[1:])) == [("h1", "AMB"), ("h1", "AMB"), ("h1", "EMER"), ("h2", "AMB"), ("h2", "IMP")]

    r = runner.invoke(app, ["stats", "indicator", "NOPE", *args])
    assert r.exit_code == 2 and "NOPE" in r.output
    r = runner.invoke(app, ["stats", "run", str(view), "--format", "xlsx", *args])
    assert r.exit_code == 2 and "_format" in r.output
