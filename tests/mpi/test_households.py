"""Families, twins, guardians and newborns (issue 14): what a household shares never makes two members one
person, and a child's records still link when they carry a guardian's ID or a placeholder name."""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

from hutong.china import ids
from hutong.mpi import batch
from hutong.mpi.features import is_guardian_id, normalize_record
from hutong.sim.config import SimConfig, VariationRates
from tests.mpi.test_matcher import _model, _score

ADDR = "吉林省长春市朝阳区红旗街100号3栋2单元"
PHONE = "13912345678"
MOTHER_ID = ids.make_resident_id("220104", date(1988, 5, 17), 122, "female")
MOTHER = {"name": "王丽", "gender": "female", "birth_date": "1988-05-17", "id_number": MOTHER_ID, "phone": PHONE,
          "address": ADDR, "address_code": "220104"}
FATHER = {"name": "李建国", "gender": "male", "birth_date": "1986-11-02", "phone": PHONE, "address": ADDR,
          "address_code": "220104"}


def _kid(given: str, born: str, sex: str = "male", seq: int = 31, **kw) -> dict:
    rid = ids.make_resident_id("220104", date.fromisoformat(born), seq, sex)
    return {"name": "李" + given, "gender": sex, "birth_date": born, "id_number": rid, "phone": PHONE,
            "address": ADDR, "address_code": "220104", **kw}


def test_guardian_id_detection():
    assert is_guardian_id(MOTHER_ID, "20150601")
    assert not is_guardian_id(MOTHER_ID, "19880517")
    assert not is_guardian_id(MOTHER_ID, "1990")  # age-derived, two years off: her own
    assert not is_guardian_id(MOTHER_ID, "19580517")  # 1988 → 1958 mistyped, same day: her own
    assert is_guardian_id(MOTHER_ID, "2024")


def test_parent_and_child_sharing_phone_address_and_id_are_two_people():
    child = _kid("明轩", "2016-03-09", id_number=MOTHER_ID)  # registered with his mother's ID
    assert _score(MOTHER, child) < 0.5
    assert _score(FATHER, _kid("明轩", "2016-03-09")) < 0.5
    # the same name a generation apart (father and son, or a typo nobody could explain): not one person
    assert _score({**FATHER, "name": "李明轩"}, _kid("明轩", "2016-03-09", id_number="")) < 0.5


def test_spouses_and_siblings_are_two_people():
    assert _score(MOTHER, FATHER) < 0.5
    assert _score(_kid("明", "2015-06-01", id_number=""), _kid("亮", "2018-02-11", id_number="")) < 0.5


def test_twins_sharing_everything_but_the_given_name_are_not_linked():
    a = _kid("子涵", "2019-08-08", id_number="")
    b = _kid("子轩", "2019-08-08", id_number="")
    assert _score(a, b) < _model().thresholds.link
    # with their (consecutive, valid) IDs: an ID conflict
    assert _score(_kid("子涵", "2019-08-08", seq=31), _kid("子轩", "2019-08-08", seq=33)) < 0.5


def test_numbered_or_same_hospital_placeholders_are_two_babies():
    base = {"gender": "female", "birth_date": "2024-03-02", "phone": PHONE, "address": ADDR}
    one = {**base, "name": "王丽之女一", "source": "Organization/h1"}
    two = {**base, "name": "王丽之女二", "source": "Organization/h1"}
    assert _score(one, two) < 0.5
    same_hospital = {**base, "name": "王丽之女", "source": "Organization/h1"}
    assert _score(same_hospital, {**same_hospital}) < 0.5
    # one baby seen at a second hospital in its first weeks: linked
    assert _score(same_hospital, {**same_hospital, "source": "Organization/h2"}) >= _model().thresholds.link


def test_newborn_placeholder_links_to_the_real_name_record():
    placeholder = {"name": "王丽之子", "gender": "male", "birth_date": "2024-03-02", "phone": PHONE, "address": ADDR,
                   "id_number": MOTHER_ID}  # and his mother's ID on it
    named = _kid("浩然", "2024-03-02", seq=51)
    assert normalize_record(placeholder)["guardian_id"] == MOTHER_ID
    assert _score(placeholder, named) >= _model().thresholds.possible
    assert _score(placeholder, MOTHER) < 0.5


def test_date_errors_are_levels_not_mismatches():
    own = _kid("明轩", "2016-03-09")
    for typo in ("2016-03-08", "2061-03-09", "2016-01-25", "2016-01-01"):
        assert _score(own, {**own, "birth_date": typo}) >= _model().thresholds.certain, typo


def test_batch_keeps_twins_apart_through_a_shared_placeholder():
    """A placeholder record that looks like both twins joins at most one of them."""
    recs = []
    for k in range(40):  # a background of unrelated families, so the model has something to learn from
        born = date(1950 + k, 1 + k % 12, 1 + k % 27)
        rid = ids.make_resident_id("220102", born, k, "male")
        base = {"name": f"赵{'伟强明华刚'[k % 5]}{'国军平安东'[k // 8]}", "gender": "male", "birth_date": born.isoformat(),
                "id_number": rid, "phone": f"1380000{k:04d}", "address": f"吉林省长春市南关区人民大街{k + 1}号"}
        recs += [{**base, "record_id": f"b{k}a"}, {**base, "record_id": f"b{k}b", "id_number": "",
                                                     "address": base["address"][3:]}]
    t1 = _kid("子涵", "2019-08-08", sex="female", seq=30)
    t2 = _kid("子萱", "2019-08-08", sex="female", seq=32)
    ph = {"name": "王丽之女", "gender": "female", "birth_date": "2019-08-08", "phone": PHONE, "address": ADDR}
    recs += [{**t1, "record_id": "t1"}, {**t1, "record_id": "t1b", "id_number": ""},
             {**t2, "record_id": "t2"}, {**t2, "record_id": "t2b", "id_number": ""}, {**ph, "record_id": "ph"}]
    res = batch.run([(recs, "x")])
    cl = dict(zip(res.record_ids, res.cluster_ids, strict=True))
    assert cl["t1"] == cl["t1b"] and cl["t2"] == cl["t2b"]
    assert cl["t1"] != cl["t2"]


def test_household_error_model_rates_and_truth(tmp_path):
    from hutong.sim.generate import simulate

    cfg = SimConfig(residents=1500, years=1, seed=3, lab_scale=0.0, visit_scale=0.3, practitioner_scale=0.05,
                    variation=VariationRates.household())
    simulate(cfg, tmp_path, jobs=1)
    with open(tmp_path / "truth" / "source_patients.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    c = Counter(v for r in rows for v in r["variations"].split(";") if v)
    for kind in ("guardian_id", "relative_phone", "birth_year_typo", "birth_from_age", "birth_lunar",
                 "address_hospital_default", "address_missing", "newborn_placeholder"):
        assert c[kind] > 0, kind
    with open(tmp_path / "truth" / "persons.csv", encoding="utf-8") as fh:
        persons = list(csv.DictReader(fh))
    births = Counter((p["household"], p["birth_date"]) for p in persons)
    assert any(n == 2 for n in births.values())  # twins
    # the default model has none of these kinds
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    simulate(SimConfig(residents=300, years=1, seed=3, lab_scale=0.0, visit_scale=0.3, practitioner_scale=0.05),
             out, jobs=1)
    with open(out / "truth" / "source_patients.csv", encoding="utf-8") as fh:
        kinds = {v for r in csv.DictReader(fh) for v in r["variations"].split(";") if v}
    assert not kinds & {"guardian_id", "relative_phone", "birth_year_typo", "address_hospital_default"}


def test_pairs_explained_in_words():
    from hutong.mpi.explain import describe_pair

    child = normalize_record(_kid("明轩", "2016-03-09", id_number=MOTHER_ID))
    got = describe_pair(normalize_record(MOTHER), child)
    codes = {r["code"] for r in got}
    assert {"guardian_id", "parent_child"} <= codes
    assert any("出生日期相差 28 年：疑似母子" in r["zh"] for r in got), got
    assert all(PHONE not in r["zh"] and MOTHER_ID not in r["zh"] for r in got)  # no personal data quoted
    twins = describe_pair(normalize_record(_kid("子涵", "2019-08-08", id_number="")),
                          normalize_record(_kid("子轩", "2019-08-08", id_number="")))
    assert {"twins", "given_differs"} <= {r["code"] for r in twins}
    typo = describe_pair(normalize_record(_kid("明轩", "2016-03-09")), normalize_record(_kid("明轩", "2061-03-09")))
    assert "year_typo" in {r["code"] for r in typo}
    ph = describe_pair(normalize_record({"name": "王丽之子", "birth_date": "2024-03-02"}),
                       normalize_record(_kid("浩然", "2024-03-02")))
    assert "placeholder" in {r["code"] for r in ph}
