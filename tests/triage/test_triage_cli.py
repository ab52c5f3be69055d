"""``hutong triage ask / train / eval``."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from hutong.cli import app

runner = CliRunner()


def test_ask_prints_the_answer():
    r = runner.invoke(app, ["triage", "ask", "胸口压榨样疼痛伴出汗半小时"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["urgent"] is True and body["departments"][0]["code"] == "20"


def test_train_installs_a_model_that_ask_and_eval_use(tmp_path):
    data = tmp_path / "mine.csv"
    rows = [("我家孩子总是咳嗽", "儿科"), ("宝宝拉肚子", "儿科"), ("小孩发烧", "儿科"),
            ("脚扭伤了肿得厉害", "骨科"), ("腰疼腿麻", "骨科"), ("膝盖疼上下楼更疼", "骨科"),
            ("胃疼反酸", "消化内科"), ("拉肚子好几天", "消化内科"), ("吃完饭胃胀", "消化内科"),
            ("这是什么", "不存在的科")] * 4
    with open(data, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["问题", "科室"])
        w.writerows(rows)
    r = runner.invoke(app, ["triage", "train", str(data), "--text-column", "问题", "--label-column", "科室",
                            "--without-knowledge", "--keyword-blend", "0", "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / "triage" / "model.npz").exists()
    r = runner.invoke(app, ["triage", "ask", "膝盖疼", "--data-dir", str(tmp_path / "d")])
    body = json.loads(r.output)
    assert body["model"] == "custom:mine.csv"
    assert {d["code"] for d in body["departments"]} <= {"07", "04.03", "03.02"}
    r = runner.invoke(app, ["triage", "eval", str(data), "--text-column", "问题", "--label-column", "科室",
                            "--data-dir", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "top-1" in r.output and "confusion" in r.output and "骨科" in r.output
    r = runner.invoke(app, ["triage", "eval", str(data), "--text-column", "nope", "--label-column", "科室"])
    assert r.exit_code != 0
