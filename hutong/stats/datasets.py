"""Data sets for direct reporting (卫生统计直报), in DHIS2's shape.

A ``DataSet`` has a period type and data elements; an element may be broken down by a category
combination (sex × age band…), whose option combinations (``COC``) are the cells of the form;
``validation_rules`` compare two expressions (``hutong.stats.expressions``). Definitions are
plain JSON (``DataSet.from_json``): the ready-made ones (``BUILTIN``) ship here in Chinese; others
are stored in ``stats_dataset``. The ready-made ones follow the national forms in their main items:
the monthly medical-service report of the health resources and medical services survey
(卫生资源与医疗服务调查) and the TCM institution report of the TCM statistics (中医药综合统计).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

from hutong.stats.expressions import Expression
from hutong.stats.periods import PERIOD_TYPES, PeriodType

ValueType = Literal["integer", "number"]
Importance = Literal["high", "medium", "low"]
OPERATORS = ("==", "!=", "<", "<=", ">", ">=")
TOTAL = ""  # the COC of an element without a breakdown


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    options: tuple[tuple[str, str], ...]  # (code, name)


@dataclass(frozen=True)
class CategoryCombo:
    code: str
    name: str
    categories: tuple[Category, ...]

    def option_combos(self) -> list[tuple[str, str]]:
        """(COC code, label) of every combination, ``male_0_14`` / ``男 0-14岁``."""
        out = []
        for combo in itertools.product(*(c.options for c in self.categories)):
            out.append(("_".join(o[0] for o in combo), " ".join(o[1] for o in combo)))
        return out


@dataclass(frozen=True)
class DataElement:
    code: str
    name: str
    name_en: str
    value_type: ValueType = "integer"
    combo: str | None = None
    unit: str = ""


@dataclass(frozen=True)
class ValidationRule:
    code: str
    name: str
    left: Expression
    operator: str
    right: Expression
    importance: Importance = "medium"

    def holds(self, left: float, right: float) -> bool:
        eps = 1e-9
        return {"==": abs(left - right) <= eps, "!=": abs(left - right) > eps, "<": left < right - eps,
                "<=": left <= right + eps, ">": left > right + eps, ">=": left >= right - eps}[self.operator]


@dataclass
class DataSet:
    code: str
    name: str
    name_en: str
    period_type: PeriodType
    elements: list[DataElement]
    combos: dict[str, CategoryCombo] = field(default_factory=dict)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    rules: list[ValidationRule] = field(default_factory=list)
    deadline_days: int = 10  # days after the period's end by which a report is on time
    reminder_days: int = 3   # reminders go out this many days before the deadline

    def element(self, code: str) -> DataElement | None:
        return next((e for e in self.elements if e.code == code), None)

    def cells(self, element: DataElement) -> list[tuple[str, str]]:
        """The (COC, label) cells of an element; one total cell without a breakdown."""
        if element.combo is None:
            return [(TOTAL, "合计")]
        return self.combos[element.combo].option_combos()

    @classmethod
    def from_json(cls, doc: dict) -> DataSet:
        """A data set from its JSON definition; ``ValueError`` naming the fault."""
        try:
            combos = {}
            for c in doc.get("categoryCombos", []):
                cats = tuple(Category(k["code"], k["name"], tuple((o["code"], o["name"]) for o in k["options"]))
                             for k in c["categories"])
                combos[c["code"]] = CategoryCombo(c["code"], c["name"], cats)
            elements = []
            for e in doc["dataElements"]:
                if e.get("categoryCombo") and e["categoryCombo"] not in combos:
                    raise ValueError(f"data element {e['code']}: unknown category combo {e['categoryCombo']}")
                if e.get("valueType", "integer") not in ("integer", "number"):
                    raise ValueError(f"data element {e['code']}: valueType must be integer or number")
                elements.append(DataElement(e["code"], e["name"], e.get("nameEn", e["name"]),
                                            e.get("valueType", "integer"), e.get("categoryCombo"), e.get("unit", "")))
            codes = {e.code for e in elements}
            if len(codes) != len(elements):
                raise ValueError("data element codes must be unique")
            rules = []
            for r in doc.get("validationRules", []):
                if r["operator"] not in OPERATORS:
                    raise ValueError(f"rule {r['code']}: operator must be one of {OPERATORS}")
                rule = ValidationRule(r["code"], r["name"], Expression(r["left"]), r["operator"],
                                      Expression(r["right"]), r.get("importance", "medium"))
                for ref in rule.left.refs + rule.right.refs:
                    if ref.element not in codes:
                        raise ValueError(f"rule {r['code']}: unknown data element {ref.element}")
                rules.append(rule)
            period_type = doc["periodType"]
            if period_type not in PERIOD_TYPES:
                raise ValueError(f"periodType must be one of {PERIOD_TYPES}")
            sections = [(s["name"], list(s["dataElements"])) for s in doc.get("sections", [])]
            return cls(doc["code"], doc["name"], doc.get("nameEn", doc["name"]), period_type, elements, combos,
                       sections, rules, int(doc.get("deadlineDays", 10)), int(doc.get("reminderDays", 3)))
        except KeyError as exc:
            raise ValueError(f"data set definition lacks {exc.args[0]!r}") from None

    def to_json(self) -> dict:
        """The JSON definition (what ``from_json`` reads), with each element's cells for forms."""
        return {
            "code": self.code, "name": self.name, "nameEn": self.name_en, "periodType": self.period_type,
            "deadlineDays": self.deadline_days, "reminderDays": self.reminder_days,
            "categoryCombos": [{"code": c.code, "name": c.name, "categories": [
                {"code": k.code, "name": k.name, "options": [{"code": o[0], "name": o[1]} for o in k.options]}
                for k in c.categories]} for c in self.combos.values()],
            "dataElements": [{"code": e.code, "name": e.name, "nameEn": e.name_en, "valueType": e.value_type,
                              "categoryCombo": e.combo, "unit": e.unit,
                              "cells": [{"coc": coc, "label": label} for coc, label in self.cells(e)]}
                             for e in self.elements],
            "sections": [{"name": n, "dataElements": codes} for n, codes in self.sections],
            "validationRules": [{"code": r.code, "name": r.name, "left": r.left.text, "operator": r.operator,
                                 "right": r.right.text, "importance": r.importance} for r in self.rules],
        }


_SEX = {"code": "sex", "name": "性别", "options": [{"code": "male", "name": "男"}, {"code": "female", "name": "女"}]}
_AGE = {"code": "age", "name": "年龄组", "options": [{"code": "a0_14", "name": "0-14岁"},
                                                   {"code": "a15_64", "name": "15-64岁"},
                                                   {"code": "a65", "name": "65岁及以上"}]}
_TECH = {"code": "tcm_tech", "name": "中医医疗技术", "options": [
    {"code": "acupuncture", "name": "针刺"}, {"code": "moxibustion", "name": "艾灸"},
    {"code": "tuina", "name": "推拿"}, {"code": "cupping", "name": "拔罐"},
    {"code": "guasha", "name": "刮痧"}, {"code": "fumigation", "name": "中药熏洗"}]}

MEDICAL_SERVICE_MONTHLY = {
    "code": "HRMS_M", "name": "卫生资源与医疗服务调查 医疗服务月报", "nameEn": "Medical services monthly report",
    "periodType": "monthly", "deadlineDays": 10, "reminderDays": 3,
    "categoryCombos": [{"code": "sex_age", "name": "性别×年龄组", "categories": [_SEX, _AGE]}],
    "dataElements": [
        {"code": "OP_EM_VISITS", "name": "门急诊人次", "nameEn": "Outpatient and emergency visits",
         "categoryCombo": "sex_age", "unit": "人次"},
        {"code": "OP_VISITS", "name": "其中：门诊人次", "nameEn": "of which outpatient visits", "unit": "人次"},
        {"code": "EM_VISITS", "name": "其中：急诊人次", "nameEn": "of which emergency visits", "unit": "人次"},
        {"code": "ADMISSIONS", "name": "入院人数", "nameEn": "Admissions", "unit": "人"},
        {"code": "DISCHARGES", "name": "出院人数", "nameEn": "Discharges", "unit": "人"},
        {"code": "BED_DAYS", "name": "实际占用总床日数", "nameEn": "Occupied bed days", "unit": "床日"},
        {"code": "DISCHARGE_BED_DAYS", "name": "出院者占用总床日数", "nameEn": "Bed days of discharged patients",
         "unit": "床日"},
        {"code": "BEDS", "name": "实有床位", "nameEn": "Beds", "unit": "张"},
        {"code": "STAFF", "name": "在岗职工数", "nameEn": "Staff on post", "unit": "人"},
        {"code": "HEALTH_TECH", "name": "卫生技术人员", "nameEn": "Health technical personnel", "unit": "人"},
        {"code": "DOCTORS", "name": "其中：执业（助理）医师", "nameEn": "of which (assistant) physicians", "unit": "人"},
        {"code": "NURSES", "name": "其中：注册护士", "nameEn": "of which registered nurses", "unit": "人"},
        {"code": "PHARMACISTS", "name": "其中：药师（士）", "nameEn": "of which pharmacists", "unit": "人"},
        {"code": "TECHNICIANS", "name": "其中：技师（士）", "nameEn": "of which technicians", "unit": "人"},
    ],
    "sections": [
        {"name": "一、医疗服务", "dataElements": ["OP_EM_VISITS", "OP_VISITS", "EM_VISITS", "ADMISSIONS", "DISCHARGES",
                                            "BED_DAYS", "DISCHARGE_BED_DAYS"]},
        {"name": "二、床位", "dataElements": ["BEDS"]},
        {"name": "三、人员", "dataElements": ["STAFF", "HEALTH_TECH", "DOCTORS", "NURSES", "PHARMACISTS", "TECHNICIANS"]},
    ],
    "validationRules": [
        {"code": "VR_OPEM_SUM", "name": "门急诊人次 = 门诊人次 + 急诊人次", "left": "#{OP_EM_VISITS}", "operator": "==",
         "right": "#{OP_VISITS} + #{EM_VISITS}", "importance": "high"},
        {"code": "VR_DISCHARGES", "name": "出院人数 ≤ 入院人数 + 实有床位 × 天数",
         "left": "#{DISCHARGES}", "operator": "<=", "right": "#{ADMISSIONS} + #{BEDS} * [days]",
         "importance": "high"},
        {"code": "VR_BED_DAYS", "name": "实际占用总床日数 ≤ 实有床位 × 天数 × 1.5（加床上限）",
         "left": "#{BED_DAYS}", "operator": "<=", "right": "#{BEDS} * [days] * 1.5", "importance": "medium"},
        {"code": "VR_DISCHARGE_DAYS", "name": "出院者占用总床日数 ≥ 出院人数",
         "left": "#{DISCHARGE_BED_DAYS}", "operator": ">=", "right": "#{DISCHARGES}", "importance": "low"},
        {"code": "VR_STAFF", "name": "卫生技术人员 ≤ 在岗职工数", "left": "#{HEALTH_TECH}", "operator": "<=",
         "right": "#{STAFF}", "importance": "high"},
        {"code": "VR_TECH_PARTS", "name": "医师+护士+药师+技师 ≤ 卫生技术人员",
         "left": "#{DOCTORS} + #{NURSES} + #{PHARMACISTS} + #{TECHNICIANS}", "operator": "<=",
         "right": "#{HEALTH_TECH}", "importance": "high"},
    ],
}

TCM_INSTITUTION_QUARTERLY = {
    "code": "TCM_Q", "name": "中医药综合统计 中医医疗机构季报", "nameEn": "TCM institution quarterly report",
    "periodType": "quarterly", "deadlineDays": 15, "reminderDays": 5,
    "categoryCombos": [{"code": "tcm_tech", "name": "中医医疗技术", "categories": [_TECH]}],
    "dataElements": [
        {"code": "TCM_VISITS", "name": "中医诊疗人次", "nameEn": "TCM visits", "unit": "人次"},
        {"code": "TCM_OP_VISITS", "name": "其中：中医门急诊人次", "nameEn": "of which TCM outpatient and emergency",
         "unit": "人次"},
        {"code": "TCM_BEDS", "name": "中医类别实有床位", "nameEn": "TCM beds", "unit": "张"},
        {"code": "TCM_DOCTORS", "name": "中医类别执业（助理）医师", "nameEn": "TCM (assistant) physicians", "unit": "人"},
        {"code": "TCM_PHARMACISTS", "name": "中药师（士）", "nameEn": "TCM pharmacists", "unit": "人"},
        {"code": "TCM_TECH_USES", "name": "中医医疗技术使用人次", "nameEn": "Uses of TCM techniques",
         "categoryCombo": "tcm_tech", "unit": "人次"},
    ],
    "sections": [
        {"name": "一、中医医疗服务", "dataElements": ["TCM_VISITS", "TCM_OP_VISITS", "TCM_TECH_USES"]},
        {"name": "二、中医资源", "dataElements": ["TCM_BEDS", "TCM_DOCTORS", "TCM_PHARMACISTS"]},
    ],
    "validationRules": [
        {"code": "VR_TCM_OP", "name": "中医门急诊人次 ≤ 中医诊疗人次", "left": "#{TCM_OP_VISITS}", "operator": "<=",
         "right": "#{TCM_VISITS}", "importance": "high"},
        {"code": "VR_TCM_TECH", "name": "中医医疗技术使用人次 ≤ 中医诊疗人次 × 3", "left": "#{TCM_TECH_USES}",
         "operator": "<=", "right": "#{TCM_VISITS} * 3", "importance": "medium"},
    ],
}

BUILTIN: dict[str, DataSet] = {d["code"]: DataSet.from_json(d)
                               for d in (MEDICAL_SERVICE_MONTHLY, TCM_INSTITUTION_QUARTERLY)}
