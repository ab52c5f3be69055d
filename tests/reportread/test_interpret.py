"""A patient's blood count and liver panel explained item by item with the intervals for their sex and age."""

from __future__ import annotations

import pytest

from hutong.reportread.catalog import identify, read_critical_table
from hutong.reportread.report import from_bundle, from_report, interpret
from tests.reportread.helpers import CBC, LFT, bundle, obs, panel

CRITICAL = read_critical_table()


def _items(patient, rows):
    return {i["analyte"]: i for i in interpret(from_bundle(bundle(patient, panel(rows))), CRITICAL)["items"]}


def test_blood_count_and_liver_panel_of_a_woman_of_65():
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1959-02-10"}
    items = _items(patient, CBC + LFT)
    assert len(items) == len(CBC) + len(LFT)
    for key, i in items.items():
        assert set(i) >= {"code", "name", "value", "unit", "interval", "flag", "explanation"}
        if key == "ALB":  # the 60+ band of WS/T 404.2 is not transcribed (unconfirmed): said, not guessed
            assert i["interval"] is None and i["flag"] == "unknown" and "没有适用" in i["explanation"]
        else:
            assert i["interval"]["source"] and i["explanation"], key
    assert items["HGB"]["interval"]["low"] == 115 and "成年女性" in items["HGB"]["interval"]["source"]
    assert items["HGB"]["flag"] == "normal"
    assert items["WBC"]["flag"] == "high" and items["PLT"]["flag"] == "low"
    assert items["ALT"]["flag"] == "high" and items["ALT"]["interval"]["high"] == 40
    assert "WS/T 404.1-2012" in items["ALT"]["interval"]["source"]
    assert items["ALP"]["interval"]["low"] == 50 and items["ALP"]["flag"] == "normal"  # women 50-79: 50-135
    assert items["TBIL"]["flag"] == "high" and items["TBIL"]["interval"]["high"] == 21.0  # women: ≤21
    assert "WS/T 405-2012" in items["NEUT#"]["interval"]["source"]
    assert "高于" in items["ALT"]["explanation"] and "诊断" not in items["ALT"]["explanation"]


def test_the_same_values_for_a_man_of_40():
    patient = {"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1984-01-01"}
    items = _items(patient, CBC + LFT)
    assert items["HGB"]["flag"] == "low" and items["HGB"]["interval"]["low"] == 130  # men: 130-175
    assert items["ALT"]["interval"]["high"] == 50 and items["ALT"]["flag"] == "high"
    assert items["TBIL"]["flag"] == "normal" and items["TBIL"]["interval"]["high"] == 26.0
    assert items["ALP"]["interval"] == {**items["ALP"]["interval"], "low": 45, "high": 125}
    assert items["GGT"]["flag"] == "normal"


def test_summary_names_the_deviations():
    patient = {"resourceType": "Patient", "id": "p3", "gender": "male", "birthDate": "1984-01-01"}
    out = interpret(from_bundle(bundle(patient, panel(LFT))), CRITICAL)
    assert "丙氨酸氨基转移酶偏高" in out["summary"] and "仅供参考" in out["summary"]


def test_the_laboratorys_own_range_takes_precedence_and_says_so():
    o = obs("k", "2823-3", "钾", 5.5, "mmol/L",
            ref={"low": {"value": 3.5, "unit": "mmol/L"}, "high": {"value": 5.6, "unit": "mmol/L"}})
    item = interpret(from_bundle(bundle(None, [o])), CRITICAL)["items"][0]
    assert item["flag"] == "normal" and item["interval"]["high"] == 5.6
    assert "检验机构" in item["interval"]["source"] and "优先" in item["interval"]["source"]
    assert item["national_interval"]["high"] == 5.3
    text = obs("g", "14771-0", "空腹血糖", 6.5, "mmol/L", ref={"text": "3.9-6.1"})
    assert interpret(from_bundle(bundle(None, [text])), CRITICAL)["items"][0]["flag"] == "high"


def test_values_in_other_units_are_converted_to_the_reference_unit():
    patient = {"resourceType": "Patient", "id": "p4", "gender": "female", "birthDate": "1990-01-01"}
    rows = [obs("c", None, "肌酐(Cr)", 1.1, "mg/dL"), obs("h", "718-7", "血红蛋白", 12.1, "g/dL"),
            obs("t", None, "总胆固醇", 220, "mg/dL"), obs("w", None, "WBC", 6500, "/uL")]
    items = {i["analyte"]: i for i in interpret(from_bundle(bundle(patient, rows)), CRITICAL)["items"]}
    assert items["CREA"]["value"] == 97.2 and items["CREA"]["unit"] == "umol/L" and items["CREA"]["flag"] == "high"
    assert items["CREA"]["sent"] == {"value": "1.1", "unit": "mg/dL"}
    assert items["HGB"]["value"] == 121 and items["TC"]["value"] == 5.69 and items["TC"]["flag"] == "high"
    assert items["WBC"]["value"] == 6.5 and items["WBC"]["flag"] == "normal"


def test_a_unit_that_cannot_be_converted_is_not_guessed():
    item = interpret(from_bundle(bundle(None, [obs("x", "2823-3", "钾", 4.1, "U/L")])), CRITICAL)["items"][0]
    assert item["flag"] == "unknown" and "无法换算" in item["explanation"]


@pytest.mark.parametrize("text,key", [("谷丙转氨酶", "ALT"), ("ALT", "ALT"), ("谷丙转氨酶(ALT)", "ALT"), ("肌酐", "CREA"),
                                      ("Cr", "CREA"), ("白细胞", "WBC"), ("WBC", "WBC"), ("血红蛋白（HGB）", "HGB"),
                                      ("γ-谷氨酰转肽酶", "GGT"), ("低密度脂蛋白胆固醇", "LDL"), ("尿素氮", "BUN")])
def test_items_are_recognised_by_chinese_names_and_abbreviations(text, key):
    assert identify([], [text]).key == key


def test_method_and_age_choose_the_interval():
    patient = {"resourceType": "Patient", "id": "p5", "gender": "male", "birthDate": "1954-01-01"}
    rows = [obs("a", "1742-6", "ALT", 55, "U/L", method="IFCC 试剂含5'-磷酸吡哆醛"),
            obs("c", "14682-9", "肌酐", 105, "umol/L", method="酶法")]
    items = {i["analyte"]: i for i in interpret(from_bundle(bundle(patient, rows)), CRITICAL)["items"]}
    assert items["ALT"]["interval"]["high"] == 60 and items["ALT"]["flag"] == "normal"
    assert items["CREA"]["interval"]["high"] == 111 and items["CREA"]["flag"] == "normal"  # men 60-79


def test_children_get_no_invented_interval():
    child = {"resourceType": "Patient", "id": "c", "gender": "male", "birthDate": "2018-01-01"}
    item = interpret(from_bundle(bundle(child, [obs("w", "6690-2", "白细胞", 12.0, "10*9/L")])), CRITICAL)["items"][0]
    assert item["interval"] is None and item["flag"] == "unknown" and "WS/T 779" in item["explanation"]
    with_lab = obs("w", "6690-2", "白细胞", 12.0, "10*9/L",
                   ref={"low": {"value": 4.3, "unit": "10*9/L"}, "high": {"value": 11.3, "unit": "10*9/L"}})
    item = interpret(from_bundle(bundle(child, [with_lab])), CRITICAL)["items"][0]
    assert item["flag"] == "high" and "检验机构" in item["interval"]["source"]


def test_critical_potassium_is_flagged():
    item = interpret(from_bundle(bundle(None, [obs("k", "2823-3", "钾", 7.2, "mmol/L")])), CRITICAL)["items"][0]
    assert item["flag"] == "critical-high" and item["critical"] is True and "危急值" in item["explanation"]


def test_unknown_and_non_numeric_items():
    rows = [obs("u", None, "某罕见项目", 3.0, "mg/L"), obs("q", "5804-0", "尿蛋白", "阴性(-)", None)]
    items = interpret(from_bundle(bundle(None, rows)), CRITICAL)["items"]
    assert items[0]["flag"] == "unknown" and "暂未收录" in items[0]["explanation"]
    assert items[1]["flag"] == "unknown"


def test_contained_observations_and_bad_input():
    rep = {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
           "contained": [obs("k", "2823-3", "钾", 4.0, "mmol/L")], "result": [{"reference": "#k"}]}
    assert interpret(from_report(rep), CRITICAL)["items"][0]["flag"] == "normal"
    from hutong.core.errors import FhirError

    with pytest.raises(FhirError):
        from_bundle({"resourceType": "Bundle", "type": "collection", "entry": []})
    with pytest.raises(FhirError):
        from_report({"resourceType": "DiagnosticReport", "result": [{"reference": "Observation/x"}]})
