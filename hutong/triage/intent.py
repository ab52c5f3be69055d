"""What kind of question it is: symptoms, a lab report, medication, cost, or other.

Keyword rules in priority order (a cost question about a test is a cost question; a question
about a drug for a symptom is a medication question). Measured against KUAKE-QIC's intents in the
benchmark (research data, evaluation only)."""

from __future__ import annotations

import re

from hutong.triage.vocab import Intent

_COST = re.compile(r"多少钱|费用|价格|价钱|收费|花费|报销|医保|自费|贵不贵|贵吗|便宜|要多少|几块钱|农合|新农合|社保卡")
_MEDICATION = re.compile(
    r"吃什么药|用什么药|用药|药物|服用|吃药|停药|副作用|剂量|一天几次|一次几片|能一起吃|同时吃|可以吃.{0,6}(药|片|胶囊|颗粒)|"
    r"(药|片|胶囊|颗粒|口服液|注射液|软膏|喷雾|滴眼液)(吗|呢|怎么|能|可以|早上|晚上|饭前|饭后|多久|有用|管用|效果)|"
    r"(阿莫西林|头孢|布洛芬|对乙酰氨基酚|二甲双胍|阿司匹林|他汀|胰岛素|降压药|激素|抗生素|消炎药|退烧药|中成药|维生素)")
_REPORT = re.compile(
    r"化验单|化验|检验报告|检查报告|报告单|报告(说|显示|上|提示)|体检(报告|发现|结果)|指标|偏高|偏低|升高|降低|正常值|参考值|参考范围|"
    r"箭头|阳性|阴性|数值|结果(是|显示|出来)|血常规|尿常规|肝功|肾功|血脂|B超|彩超|CT|核磁|心电图|提示|[0-9]+(\.[0-9]+)?\s*(mmol|umol|μmol|u/l|g/l|mg)", re.I)
_SYMPTOM = re.compile(r"疼|痛|痒|肿|咳|烧|热|晕|吐|泻|拉肚子|不舒服|难受|出血|麻|酸|胀|闷|慌|乏力|没劲|失眠|长了|起了|发现|得了|患|病")


def classify_intent(text: str, symptom_terms: int = 0) -> Intent:
    """The intent of a normalised question; ``symptom_terms`` is how many knowledge-base terms it
    mentions (a bare list of symptoms is a symptom question)."""
    if _COST.search(text):
        return "cost"
    if _MEDICATION.search(text):
        return "medication"
    if _REPORT.search(text):
        return "report"
    if symptom_terms or _SYMPTOM.search(text):
        return "symptom"
    return "other"
