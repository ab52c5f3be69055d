"""The estimated interoperability maturity level (互联互通标准化成熟度, 一级 … 五级甲等), from observed data.

This is an **estimate from what the platform receives**, not the official assessment by the
national health commission's statistics center (which also reviews documents, on-site tests and
questionnaires). The rules are the one table ``LEVELS`` below: a level is reached when every
requirement of it and of every level below it holds; "what is missing for the next level" is the
requirements of the next level that do not hold, with the value observed.

An indicator missing from the observations (a rate with nothing to measure, e.g. lab units for a
clinic that sends no lab results) does not hold: the level needs the data to be seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hutong.web.i18n import N_


@dataclass(frozen=True)
class Requirement:
    indicator: str
    op: Literal[">=", "<="]
    threshold: float
    text: str  # message id (zh-CN); ``%(t)s`` is the threshold as shown
    percent: bool = False

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def shown_threshold(self) -> str:
        return f"{self.threshold * 100:g}%" if self.percent else f"{self.threshold:g}"


@dataclass(frozen=True)
class Level:
    code: str
    zh: str  # 三级, 四级甲等 … (named here, not in the catalog: "三级" there is a hospital tier)
    en: str
    requirements: tuple[Requirement, ...]


def _r(indicator, op, threshold, text, percent=False) -> Requirement:
    return Requirement(indicator, op, threshold, text, percent)


#: The rules, lowest level first (cumulative).
LEVELS: tuple[Level, ...] = (
    Level("1", "一级", "Level 1", (
        _r("volume", ">=", 1, N_("评估期内向平台上传过数据")),
    )),
    Level("2", "二级", "Level 2", (
        _r("sends:Patient", ">=", 1, N_("上传患者信息（居民注册）")),
        _r("sends:Encounter", ">=", 1, N_("上传就诊记录")),
        _r("rate:patient-resident-id", ">=", 0.80, N_("有效身份证号的患者占比不低于%(t)s"), True),
    )),
    Level("3", "三级", "Level 3", (
        _r("sends:Observation", ">=", 1, N_("上传检验结果")),
        _r("rate:lab-unit", ">=", 0.90, N_("检验结果带单位的占比不低于%(t)s"), True),
        _r("rate:lab-loinc", ">=", 0.80, N_("检验项目使用LOINC编码的占比不低于%(t)s"), True),
        _r("rate:visit-dx", ">=", 0.80, N_("门诊就诊有诊断编码的占比不低于%(t)s"), True),
        _r("gap_days", "<=", 2, N_("评估期内数据中断不超过%(t)s天")),
    )),
    Level("4B", "四级乙等", "Level 4B", (
        _r("sends:DocumentReference", ">=", 1, N_("发布共享文档（WS/T 483/500）")),
        _r("doc_header_valid", ">=", 0.90, N_("共享文档头合格率不低于%(t)s"), True),
        _r("conformance", ">=", 0.95, N_("编码与标识一致性合格率不低于%(t)s"), True),
        _r("rate:lab-range", ">=", 0.90, N_("检验结果带参考范围的占比不低于%(t)s"), True),
        _r("within_1d", ">=", 0.80, N_("临床事件后24小时内上传的占比不低于%(t)s"), True),
    )),
    Level("4A", "四级甲等", "Level 4A", (
        _r("completeness", ">=", 0.95, N_("必填数据完整率不低于%(t)s"), True),
        _r("unresolved_refs", "<=", 0, N_("没有无法解析的引用")),
        _r("interfaces", ">=", 2, N_("至少使用%(t)s种接口（FHIR、HL7 v2、文档、健康卡）")),
        _r("gap_days", "<=", 1, N_("评估期内数据中断不超过%(t)s天")),
    )),
    Level("5B", "五级乙等", "Level 5B", (
        _r("conformance", ">=", 0.98, N_("编码与标识一致性合格率不低于%(t)s"), True),
        _r("within_1d", ">=", 0.95, N_("临床事件后24小时内上传的占比不低于%(t)s"), True),
        _r("card_scans", ">=", 1, N_("使用电子健康卡扫码就医")),
        _r("gap_days", "<=", 0, N_("评估期内没有数据中断")),
    )),
    Level("5A", "五级甲等", "Level 5A", (
        _r("conformance", ">=", 0.995, N_("编码与标识一致性合格率不低于%(t)s"), True),
        _r("completeness", ">=", 0.99, N_("必填数据完整率不低于%(t)s"), True),
        _r("within_1h", ">=", 0.80, N_("临床事件后1小时内上传的占比不低于%(t)s"), True),
    )),
)
NONE = ("未达一级", "Below level 1")
LEVEL_CODES = tuple(lv.code for lv in LEVELS)


@dataclass(frozen=True)
class Shortfall:
    requirement: Requirement
    value: float | None


@dataclass(frozen=True)
class Estimate:
    level: Level | None  # the highest level reached (None: below level 1)
    next_level: Level | None  # None when 五级甲等 is reached
    missing: tuple[Shortfall, ...]  # what the next level needs and is not seen

    @property
    def rank(self) -> int:
        """0 below level 1, 1 for 一级 … 7 for 五级甲等 (for ordering)."""
        return 0 if self.level is None else LEVEL_CODES.index(self.level.code) + 1


def estimate(indicators: Mapping[str, float | None]) -> Estimate:
    """The highest level whose requirements (and all lower levels') hold, and the shortfalls of the next."""
    reached = None
    for lv in LEVELS:
        short = tuple(Shortfall(r, indicators.get(r.indicator)) for r in lv.requirements
                      if not r.holds(indicators.get(r.indicator)))
        if short:
            return Estimate(reached, lv, short)
        reached = lv
    return Estimate(reached, None, ())
