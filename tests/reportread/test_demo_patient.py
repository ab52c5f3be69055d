"""Done-when: a demo patient's blood count and liver panel explained item by item with the
intervals for their sex and age (the simulator's demo data, as ``make run`` loads it)."""

from __future__ import annotations

import orjson
import pytest

from hutong.reportread.catalog import read_critical_table
from hutong.reportread.report import from_bundle, interpret


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from hutong.sim import SimConfig, simulate

    out = tmp_path_factory.mktemp("demo")
    simulate(SimConfig(residents=300, years=1, seed=11, practitioner_scale=0.05, online_doctors=20,
                       online_hospitals=5), out)

    def read(kind):
        path = out / f"{kind}.ndjson"
        return [orjson.loads(line) for line in open(path, "rb")] if path.exists() else []

    return {k: {r["id"]: r for r in read(k)} for k in ("Patient", "Observation", "DiagnosticReport")}


@pytest.mark.parametrize("panel", ["XCG", "GGN"])  # 血常规, 肝功能
def test_demo_panel_explained_item_by_item(demo, panel):
    reports = [r for r in demo["DiagnosticReport"].values()
               if any(c.get("code") == panel for c in r["code"]["coding"])]
    assert reports, f"the demo has no {panel} report"
    checked = 0
    for rep in reports[:20]:
        patient = demo["Patient"][rep["subject"]["reference"].split("/")[1]]
        obs = [demo["Observation"][r["reference"].split("/")[1]] for r in rep["result"]]
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": rep}, {"resource": patient}] + [{"resource": o} for o in obs]}
        out = interpret(from_bundle(bundle), read_critical_table())
        assert len(out["items"]) == len(obs) and out["summary"]
        assert out["patient"]["sex"] == patient["gender"]
        for item, o in zip(out["items"], obs, strict=True):
            assert item["explanation"] and item["interval"]["source"].startswith("检验机构")
            sent = o["interpretation"][0]["coding"][0]["code"]
            if item["flag"] in ("normal", "high", "low"):
                assert {"N": "normal", "H": "high", "L": "low"}[sent] == item["flag"], (item, sent)
            nat = item.get("national_interval")
            if nat and out["patient"]["age"] >= 20:
                who = "男" if patient["gender"] == "male" else "女"
                assert "成年人" in nat["population"] or who in nat["population"] or "20~79岁" in nat["population"]
            checked += 1
    assert checked >= len(reports[:20])
