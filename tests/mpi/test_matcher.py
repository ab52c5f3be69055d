"""Matching engine without a server: normalisation, Chinese variants, properties, EM, batch CLI."""

from __future__ import annotations

import csv
from datetime import date

import numpy as np
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hutong.china import ids
from hutong.mpi import batch, names, synth
from hutong.mpi.cli import register
from hutong.mpi.compare import BIRTH, NAME_ZH, compare_birth, compare_id
from hutong.mpi.features import FeatureTable, normalize_record
from hutong.mpi.model import Model

ID = "220102198503041230"


def _model() -> Model:
    import json

    from hutong.mpi.service import _DEFAULT_MODEL

    return Model.from_dict(json.loads(_DEFAULT_MODEL.read_text(encoding="utf-8")))


def _score(a: dict, b: dict) -> float:
    t = FeatureTable.from_raw([a, b])
    p, _, _ = _model().score_pairs(t, np.array([0]), np.array([1]))
    return float(p[0])


def _name_level(a: str, b: str) -> str:
    t = FeatureTable.from_raw([{"name": a}, {"name": b}])
    lv, _ = NAME_ZH(t, np.array([0]), np.array([1]))
    return NAME_ZH.levels[lv[0]]


def test_surname_readings_and_compound_surnames():
    assert names.family_pinyin("单") == "shan"
    assert names.family_pinyin("曾") == "zeng"
    assert names.family_pinyin("解") == "xie"
    assert names.split_cjk_name("欧阳娜娜") == ("欧阳", "娜娜")
    assert names.split_cjk_name("司马光") == ("司马", "光")
    assert names.split_cjk_name("王伟") == ("王", "伟")


def test_chinese_name_variants():
    assert _name_level("张伟", "張偉") == "exact"  # traditional → simplified before comparing
    assert _name_level("李娜", "李纳") == "homophone_or_variant"
    assert _name_level("王己", "王已") == "homophone_or_variant"  # look-alike glyphs
    assert _name_level("谢川", "解川") == "homophone_or_variant"  # 解 read xie as a surname
    assert _name_level("神a农氏", "神农氏") == "exact"  # junk characters dropped
    assert _name_level("欧阳 娜娜", "欧阳娜娜") == "exact"
    assert _name_level("王伟", "李强") == "different"


def test_resident_id_upgrade_and_typo():
    id15 = ID[:6] + ID[8:17]
    assert normalize_record({"id_number": id15})["id"] == ID
    typo = ID[:5] + "9" + ID[6:]
    assert not ids.is_valid_resident_id(typo)
    t = FeatureTable.from_raw([{"id_number": ID}, {"id_number": typo}, {"id_number": ID[:6] + ID[8:17]}])
    lv, _ = compare_id(t, np.array([0, 0]), np.array([1, 2]))
    assert lv.tolist() == [1, 0]  # one-digit typo caught by the check digit; 15-digit equals 18-digit


def test_birth_date_levels():
    t = FeatureTable.from_raw([{"birth_date": "1985-03-04"}, {"birth_date": "1985-04-03"},
                               {"birth_date": "1985年3月4日"}, {"birth_date": "1985-03-05"}, {"birth_date": "1985"},
                               {"birth_date": "1958-03-04"}, {"birth_date": "1985-01-25"}, {"birth_date": "1984-07-01"},
                               {"birth_date": "1984"}, {"birth_date": "1979-06-30"}, {"birth_date": "2012-11-02"}])
    lv, _ = compare_birth(t, np.zeros(10, dtype=int), np.arange(1, 11))
    labels = [BIRTH.levels[x] for x in lv.tolist()]
    assert labels == ["day_month_swapped", "exact", "one_digit", "same_year",
                      "one_digit",  # a year typo (1985 → 1958), not a generation
                      "within_60_days",  # a lunar birthday written as solar
                      "age_derived", "age_derived", "different", "generation_apart"]


def test_derive_birth_and_sex_from_id():
    f = normalize_record({"id_number": ID})
    assert f["birth"] == "19850304" and f["sex"] == "m"


_name = st.text(alphabet="王李张刘陈伟芳娜秀英敏静丽强欧阳", min_size=1, max_size=4)
_rec = st.fixed_dictionaries({
    "name": _name,
    "birth_date": st.dates().map(lambda d: d.isoformat()),
    "gender": st.sampled_from(["male", "female", ""]),
    "phone": st.from_regex(r"1[3-9]\d{9}", fullmatch=True),
})


@settings(max_examples=40, deadline=None)
@given(_rec, _rec)
def test_scores_are_symmetric(a, b):
    assert abs(_score(a, b) - _score(b, a)) < 1e-9


@settings(max_examples=30, deadline=None)
@given(_rec)
def test_identical_records_match(a):
    # the record's own ID (one encoding another birth date 12+ years away is a guardian's: see below)
    born = date.fromisoformat(a["birth_date"])
    if 1900 <= born.year <= 2099:
        a = {**a, "id_number": ids.make_resident_id("220102", born, 123, a["gender"] or "male")}
    else:
        a = {**a, "id_number": ID, "birth_date": ""}
    assert _score(a, dict(a)) >= _model().thresholds.certain


def test_guardian_id_is_not_identity():
    """A child under its mother's resident ID: the ID links it to neither its mother nor its sibling."""
    mother = {"name": "王丽", "gender": "female", "birth_date": "1985-03-04", "id_number": ids.make_resident_id("220102", date(1985, 3, 4), 122, "female"),
              "phone": "13912345678", "address": "吉林省长春市朝阳区红旗街100号3栋2单元"}
    child = {"name": "李明", "gender": "male", "birth_date": "2015-06-01", "id_number": mother["id_number"],
             "phone": mother["phone"], "address": mother["address"]}
    sibling = {**child, "name": "李亮", "birth_date": "2018-02-11", "gender": "male"}
    f = normalize_record(child)
    assert f["id"] == "" and f["guardian_id"] == mother["id_number"] and f["birth"] == "20150601"
    assert _score(mother, child) < 0.5
    assert _score(child, sibling) < 0.5
    # the same child at another desk, with its own ID this time: not an ID conflict
    own = {**child, "id_number": ids.make_resident_id("220102", date(2015, 6, 1), 21, "male"), "phone": ""}
    assert _score(child, own) >= 0.9
    # a year typo keeps the ID the person's own
    assert normalize_record({**mother, "birth_date": "1958-03-04"})["id"] == mother["id_number"]


def test_chinese_duplicate_matches_and_twin_does_not():
    a = {"name": "欧阳娜娜", "gender": "female", "birth_date": "1990-05-06", "id_number": ID, "phone": "13912345678"}
    b = {"name": "歐陽娜娜", "gender": "女", "birth_date": "1990-06-05", "id_number": ID[:6] + ID[8:17],
         "phone": "+86 139 1234 5678"}
    assert _score(a, b) >= 0.99
    twin = dict(a, name="欧阳莎莎", id_number=ids.make_resident_id("220102", __import__("datetime").date(1985, 3, 4), 125, "male"))
    assert _score(a, twin) < 0.5


def test_em_converges_on_synthetic_data():
    recs, truth = synth.generate(600, error_rate=1.0, seed=5)
    res = batch.run([(recs, "s")])
    assert res.model.em_iterations > 0
    k = res.model.comparisons.index("name")
    assert res.model.m[k][0] > res.model.u[k][0] * 100
    pred = set(res.matched_pairs())
    true = {p for p in pred if truth[p[0]] == truth[p[1]]}
    assert len(true) / max(1, len(pred)) > 0.95


def test_batch_cli_with_bad_rows(tmp_path):
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["rid", "姓名", "性别", "出生日期", "身份证", "电话"])
        w.writerow(["1", "张伟", "男", "1985-03-04", ID, "13900001111"])
        w.writerow(["2", "張偉", "男", "1985-04-03", ID[:6] + ID[8:17], "13900001111"])
        w.writerow(["3", "李娜", "女", "1990-01-01", "", "13700002222"])
        w.writerow(["", "无编号", "女", "1990-01-01", "", ""])
        w.writerow(["4", "列数不对"])
        w.writerow(["1", "重复", "男", "1985-03-04", "", ""])
    out = tmp_path / "out.csv"
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["mpi", "dedup", str(src), "--map",
                                   "record_id=rid,name=姓名,gender=性别,birth_date=出生日期,id_number=身份证,phone=电话",
                                   "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert list(rows[0]) == ["record_id", "cluster_id"]
    c = {r["record_id"]: r["cluster_id"] for r in rows}
    assert c["1"] == c["2"] != c["3"]
    assert "3" in res.output or "坏行" in res.output
    assert ID not in res.output
