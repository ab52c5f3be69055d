"""Registration-desk variation on Chinese records: each kind of variation a real desk produces, one by one,
against the shipped default model (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from hutong.china import ids
from hutong.mpi import names
from hutong.mpi.compare import NAME_ZH
from hutong.mpi.features import FeatureTable, normalize_record
from tests.mpi.test_matcher import _model, _score

ID = "220102198503041230"
BASE = {"name": "张明伟", "gender": "male", "birth_date": "1985-03-04", "id_number": ID, "phone": "13912345678",
        "address": "吉林省长春市朝阳区红旗街100号3栋2单元", "address_code": "220104"}


def _level(a: str, b: str) -> str:
    t = FeatureTable.from_raw([{"name": a}, {"name": b}])
    lv, _ = NAME_ZH(t, np.array([0]), np.array([1]))
    return "missing" if lv[0] < 0 else NAME_ZH.levels[lv[0]]


def _typo(rid: str, k: int) -> str:
    return rid[:k] + str((int(rid[k]) + 3) % 10) + rid[k + 1:]


VARIANTS = {
    "homophone": {"name": "张明玮"},
    "homophone_surname": {"name": "章明伟"},
    "look_alike": {"name": "张明伟", "address": "吉林省长春市朝阳区红旗街100号3栋2单元"} | {"name": "张眀伟"},
    "traditional": {"name": "張明偉"},
    "given_swapped": {"name": "张伟明"},
    "id_15_digit": {"id_number": ID[:6] + ID[8:17]},
    "id_typo": {"id_number": _typo(ID, 9)},
    "id_transposed": {"id_number": ID[:10] + ID[11] + ID[10] + ID[12:]},
    "id_lower_x_spaces": {"id_number": " " + ID[:6] + " " + ID[6:] + " "},
    "phone_changed": {"phone": "18643219876"},
    "phone_country_code": {"phone": "+86 139-1234-5678"},
    "address_rewritten": {"address": "长春朝阳区红旗街100号"},
    "address_traditional_fullwidth": {"address": "吉林省長春市朝陽區紅旗街１００號3棟2單元"},
    "day_month_swapped": {"birth_date": "1985-04-03"},
    "birth_chinese_format": {"birth_date": "1985年3月4日"},
    "name_spaces_fullwidth": {"name": "张　明 伟"},
    "name_latin_junk": {"name": "张明伟Ａ"},
    "gender_code": {"gender": "1"},
}


@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_each_desk_variation_with_id_is_certain(kind):
    assert _score(BASE, {**BASE, **VARIANTS[kind]}) >= 0.99, kind


@pytest.mark.parametrize("kind", sorted(k for k in VARIANTS if not k.startswith("id_")))
def test_each_desk_variation_without_id_still_links(kind):
    a = {**BASE, "id_number": ""}
    b = {**BASE, **VARIANTS[kind], "id_number": ""}
    assert _score(a, b) >= 0.9, kind  # probable at least (certain needs a corroborating phone/address/ID)


def test_missing_id_on_one_side():
    assert _score(BASE, {**BASE, "id_number": ""}) >= 0.99


def test_name_levels_for_each_variation():
    assert _level("张明伟", "張明偉") == "exact"
    assert _level("张明伟", "张明玮") == "homophone_or_variant"
    assert _level("王己", "王已") == "homophone_or_variant"
    assert _level("张明伟", "张伟明") == "close"  # given-name characters swapped
    assert _level("欧阳娜娜", "欧阳 娜娜") == "exact"
    assert _level("阿依古丽·买买提", "阿依古丽买买提") == "exact"  # minority names: separators dropped
    assert _level("阿依古丽•买买提", "阿依古丽.买买提") == "exact"
    assert _level("阿依古丽·买买提", "阿衣古丽·买买提") in ("homophone_or_variant", "close")
    assert _level("ＷＡＮＧ Ｗｅｉ", "王伟") == "homophone_or_variant"  # pinyin at one desk, characters at another
    assert _level("Wei WANG", "王伟") == "homophone_or_variant"
    assert _level("wangwei", "王伟") == "homophone_or_variant"
    assert _level("单田芳", "善田芳") == "homophone_or_variant"  # 单 read shan as a surname
    assert _level("欧阳娜娜", "欧娜娜") in ("close", "similar")  # compound surname written with one character
    assert _level("张明伟", "李建国") == "different"


def test_compound_surnames_split():
    for full, fam in (("欧阳娜娜", "欧阳"), ("司马光", "司马"), ("诸葛亮", "诸葛"), ("上官婉儿", "上官")):
        f = normalize_record({"name": full})
        assert f["family"] == fam and f["given"] == full[len(fam):]
    assert normalize_record({"name": "尉迟恭"})["family_py"] == "yu chi"


def test_newborn_placeholders_are_not_names():
    for text in ("张丽之子", "李娜之女", "王某某之子", "新生儿", "无名氏", "女婴2", "张丽之长子", "王某"):
        assert names.is_placeholder_name(text), text
        f = normalize_record({"name": text})
        assert f["placeholder"] and f["name"] == ""
    for text in ("张丽", "王子", "欧阳娜娜", "李婴宁"):
        assert not names.is_placeholder_name(text), text
    mother = {"name": "张丽", "gender": "female", "birth_date": "1990-02-03", "phone": "13912345678",
              "address": BASE["address"]}
    baby = {"name": "张丽之子", "gender": "male", "birth_date": "2024-05-06", "phone": "13912345678",
            "address": BASE["address"]}
    assert _score(mother, baby) < 0.5  # the mother's name never links her baby to her
    later = {**baby, "name": "王小明", "id_number": ids.make_resident_id("220104", __import__("datetime").date(2024, 5, 6), 11, "male")}
    assert _score(baby, later) >= 0.5  # the baby's later record with its own name: at least for review


def test_twins_and_family_members_stay_apart():
    twin_id = ids.make_resident_id("220102", __import__("datetime").date(1985, 3, 4), 125, "male")
    twin = {**BASE, "name": "张明杰", "id_number": twin_id}
    assert _score(BASE, twin) < 0.5
    father = {**BASE, "name": "张建国", "birth_date": "1958-07-09", "id_number": ""}
    assert _score(BASE, father) < 0.5


def test_common_name_same_birth_date_without_corroboration_is_not_certain():
    a = {"name": "王伟", "gender": "male", "birth_date": "1980-01-01", "phone": "13900000001",
         "address": "长春市南关区人民大街1号"}
    b = {"name": "王伟", "gender": "male", "birth_date": "1980-01-01", "phone": "13700000002",
         "address": "吉林市船营区解放大路88号"}
    p = _score(a, b)
    assert p < _model().thresholds.certain


def test_newborn_placeholder_does_not_join_a_sibling():
    sibling = {"family": "丁", "given": "雨", "gender": "female", "birth_date": "2021-05-16",
               "id_number": ids.make_resident_id("220183", __import__("datetime").date(2021, 5, 16), 400, "female"),
               "phone": "19907807127", "address": BASE["address"]}
    baby = {"name": "丁雨之女", "gender": "female", "birth_date": "2024-07-06", "phone": "19907807127",
            "address": BASE["address"]}
    assert _score(sibling, baby) < 0.5
