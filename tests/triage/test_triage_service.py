"""The triage service answers the questions the issue names, and its rules behave as documented."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hutong.core.errors import FhirError
from hutong.triage.departments import department, departments, matches, resolve
from hutong.triage.model import TriageModel, train
from hutong.triage.service import SHIPPED_MODEL, narrow_to_offered
from hutong.triage.text import age_from_text, normalize

REDFLAG_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "triage" / "redflag_questions.csv"


def test_child_with_fever_and_cough_goes_to_paediatrics(triager):
    a = triager.answer("孩子发烧三天咳嗽")
    assert a["departments"][0]["code"] == "07" and a["departments"][0]["name"] == "儿科"
    assert a["urgent"] is False and a["intent"] == "symptom"


def test_crushing_chest_pain_with_sweating_is_an_emergency_with_120_advice(triager):
    a = triager.answer("胸口压榨样疼痛伴出汗半小时")
    assert a["urgent"] is True
    assert a["departments"][0]["code"] == "20"
    assert "120" in a["advice"]
    assert a["red_flags"][0]["id"] == "chest-pain"


@pytest.mark.parametrize("text", ["手臂上起了一片红疹子，很痒", "身上起了很多红点点，痒得很", "脸上长痘痘"])
def test_skin_rash_goes_to_dermatology(triager, text):
    assert triager.answer(text)["departments"][0]["code"] == "13"


def test_answer_has_the_contract_shape(triager):
    a = triager.answer("最近老是胃疼反酸", age=40, sex="female")
    assert {"departments", "urgent", "advice", "intent"} <= set(a)
    assert len(a["departments"]) >= 3
    scores = [d["score"] for d in a["departments"]]
    assert scores == sorted(scores, reverse=True)
    for d in a["departments"]:
        assert set(d) == {"code", "name", "name_en", "score", "reason", "reason_en"}
        assert d["code"] in departments() and d["reason"]
    assert a["departments"][0]["code"] == "03.02"


@pytest.mark.parametrize("text,age,expected", [
    ("咳嗽有痰，嗓子疼", 6, "07"),          # a child by age
    ("宝宝拉肚子两天", None, "07"),         # a child by words
    ("咳嗽有痰，嗓子疼", 35, None),          # an adult: not paediatrics
    ("孩子眼睛红，老流泪", None, "10"),      # clearly another specialty
    ("孩子牙疼，有个蛀牙", None, "12"),
    ("怀孕20周肚子有点不舒服", None, "05.02"),
    ("孕妇感冒咳嗽怎么办", None, "05.02"),
])
def test_children_and_pregnancy(triager, text, age, expected):
    first = triager.answer(text, age=age)["departments"][0]["code"]
    if expected is None:
        assert first != "07"
    else:
        assert first == expected


def test_male_is_not_sent_to_gynaecology(triager):
    codes = [d["code"] for d in triager.answer("小腹坠痛，下面痒", sex="male", top=10)["departments"]]
    assert not any(c.startswith("05") for c in codes)


@pytest.mark.parametrize("text,intent", [
    ("化验单上谷丙转氨酶偏高是什么意思", "report"), ("血常规白细胞有点低要紧吗", "report"),
    ("降压药早上吃还是晚上吃", "medication"), ("阿莫西林和头孢能一起吃吗", "medication"),
    ("做个胃镜大概多少钱", "cost"), ("医保报销比例是多少", "cost"), ("头疼两天了", "symptom"),
    ("你好", "other"),
])
def test_intent(triager, text, intent):
    assert triager.answer(text)["intent"] == intent


def test_redflag_set_recall_and_false_alarms(triager):
    rows = list(csv.DictReader(open(REDFLAG_SET, encoding="utf-8")))
    urgent = [r for r in rows if r["urgent"] == "1"]
    calm = [r for r in rows if r["urgent"] == "0"]

    def flagged(r):
        return triager.answer(r["text"], float(r["age"]) if r["age"] else None)["urgent"]

    recall = sum(flagged(r) for r in urgent) / len(urgent)
    false_alarms = sum(flagged(r) for r in calm) / len(calm)
    assert recall >= 0.95, recall
    assert false_alarms <= 0.05, false_alarms


@pytest.mark.parametrize("text", ["我没有胸痛，也不出汗", "去年中风过，现在想复查", "流鼻血了一会儿，按压几分钟止住了"])
def test_negations_and_history_are_not_red_flags(triager, text):
    assert triager.answer(text)["urgent"] is False


def test_infant_fever_by_age_field_and_by_words(triager):
    assert triager.answer("发烧38.2度", age=0.1)["urgent"] is True
    assert triager.answer("发烧38.2度", age=3)["urgent"] is False
    assert triager.answer("两个月的宝宝发烧38度")["urgent"] is True
    assert age_from_text(normalize("孩子发烧三天")) is None


def test_narrowing_to_offered_departments(triager):
    a = triager.answer("咳嗽有痰，老慢支又犯了", age=50)
    assert a["departments"][0]["code"] == "03.01"
    narrowed = narrow_to_offered(a, {"03", "04", "13"})
    assert narrowed["narrowed"] is True
    assert narrowed["departments"][0]["code"] == "03"  # 呼吸内科 not offered: its parent 内科 is
    assert {d["code"] for d in narrowed["departments"]} <= {"03", "04", "13"}
    assert narrow_to_offered(a, {"12"})["narrowed"] in (True, False)
    urgent = triager.answer("胸口压榨样疼痛伴出汗半小时")
    assert narrow_to_offered(urgent, {"03"})["departments"][0]["code"] == "20"
    assert triager.answer("咳嗽有痰", age=50, offered=["03.01"])["departments"][0]["code"] == "03.01"


@pytest.mark.parametrize("kwargs", [{"text": ""}, {"text": "   "}, {"text": "头痛" * 1500}, {"text": "头痛", "age": -1}])
def test_bad_questions_are_refused_clearly(triager, kwargs):
    with pytest.raises(FhirError) as err:
        triager.answer(**kwargs)
    assert err.value.status == 400


def test_department_list_and_label_resolution():
    deps = departments()
    assert deps["03.01"].name == "呼吸内科专业" and deps["03.01"].parent == "03"
    assert deps["20"].common == "急诊科" and deps["50"].name == "中医科"
    assert resolve("心内科") == "03.04" and resolve("男科") == "04.04" and resolve("03.02") == "03.02"
    assert resolve("小儿呼吸系统疾病/小儿咳嗽") is None and resolve("呼吸内科/肺炎") == "03.01"
    assert matches("03.04", "03") and not matches("03", "03.04")
    for code, d in deps.items():
        assert d.parent is None or d.parent in deps, code
    assert department("07").common == "儿科"


def test_shipped_model_is_small_offline_data(tmp_path):
    assert SHIPPED_MODEL.stat().st_size < 30 * 1024 * 1024
    model = TriageModel.load(SHIPPED_MODEL)
    assert "toyhom" in " ".join(model.meta["sources"]) and model.meta["licence"]
    assert not any("ifly" in k or "chip" in k for k in model.meta["sources"])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError):
        TriageModel.load(bad)


def test_train_save_load_round_trip(tmp_path):
    texts = ["牙疼", "牙龈出血", "蛀牙疼", "眼睛红", "眼睛痒", "看不清东西"] * 3
    labels = ["12", "12", "12", "10", "10", "10"] * 3
    model = train(texts, labels, min_df=1)
    path = tmp_path / "m.npz"
    model.save(path)
    again = TriageModel.load(path)
    assert again.classes == model.classes
    p = again.predict_proba("牙疼得厉害")
    assert max(p, key=p.get) == "12"
    assert abs(sum(p.values()) - 1) < 1e-5


@pytest.mark.parametrize("text", ["孩子发烧三天咳嗽", "胸口压榨样疼痛伴出汗半小时", "化验单上谷丙转氨酶偏高是什么意思",
                                  "这个药能不能停", "嗯"])
def test_every_answer_has_english_beside_chinese(triager, text):
    a = triager.answer(text)
    assert a["advice_en"] and not any("\u4e00" <= ch <= "\u9fff" for ch in a["advice_en"])
    for d in a["departments"]:
        assert d["name_en"] == department(d["code"]).en
        # English text, except the resident's own words quoted inside “…”
        outside_quotes = "".join(part for i, part in enumerate(d["reason_en"].replace("”", "“").split("“")) if i % 2 == 0)
        assert d["reason_en"] and not any("\u4e00" <= ch <= "\u9fff" for ch in outside_quotes), d["reason_en"]


def test_every_department_of_the_list_has_an_english_name():
    assert all(d.en and d.en.isascii() for d in departments().values())
