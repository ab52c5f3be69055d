"""Training questions written from the knowledge base: the shipped model's own-words data.

Each department's symptoms, conditions and body parts are put into phrasings residents use
(durations, who is ill, what they ask), with a fixed seed so the shipped model is reproducible.
Children's versions of common complaints are labelled paediatrics, as the national practice is.
"""

from __future__ import annotations

import random

from hutong.triage.knowledge import by_department

_WHO = ("", "", "我", "我最近", "本人", "医生你好，我", "我妈", "我爸", "我老公", "我老婆", "家里老人", "您好，")
_KID = ("宝宝", "孩子", "我家孩子", "小孩", "儿子", "女儿", "我家宝宝", "三岁宝宝", "孩子五岁，", "一岁多的宝宝")
_WHEN = ("", "", "最近", "这两天", "三天了", "一个星期了", "半个月", "好几个月了", "反复", "一直", "昨天开始", "今天早上起来")
_ASK = ("", "", "怎么办", "挂什么科", "该看哪个科", "需要去医院吗", "严重吗", "怎么回事", "怎么治疗", "要做什么检查",
        "是什么原因", "看什么科比较好", "请问医生")
_PAIN = ("疼", "痛", "不舒服", "肿", "酸痛", "胀痛", "有点疼", "疼得厉害")
_EXTRA = ("", "", "", "有点乏力", "睡不好", "没什么胃口", "没有发烧", "以前没这样过", "吃了点药没好")
# Complaints that in a child belong to paediatrics, whatever the adult department.
_CHILD_FROM = ("03.01", "03.02", "03.03", "11", "13", "03.07", "03.05", "03.06")


def _join(*parts: str) -> str:
    text = "".join(p for p in parts if p)
    while "，，" in text:
        text = text.replace("，，", "，")
    return text.strip("，")


def _sentence(rng: random.Random, kind: str, term: str, who: str) -> str:
    when = rng.choice(_WHEN)
    ask = rng.choice(_ASK)
    sep = "，" if ask else ""
    if kind == "symptom":
        form = rng.randrange(4)
        if form == 0:
            return _join(who, when, term, sep, ask)
        if form == 1:
            return _join(who, term, when and ("，" + when), "，", rng.choice(_EXTRA), sep, ask)
        if form == 2:
            return _join(term, "怎么办")
        return _join(who, "总是", term, sep, ask)
    if kind == "disease":
        form = rng.randrange(4)
        if form == 0:
            return _join(who, "有", term, sep, ask)
        if form == 1:
            return _join(who, "得了", term, sep, ask)
        if form == 2:
            return _join(term, "需要看什么科")
        return _join(who, "确诊", term, when and ("，" + when), sep, ask)
    if kind == "body":
        return _join(who, term, rng.choice(_PAIN), when and ("，" + when), sep, ask)
    return _join(who, "想", term, sep, ask)


def synthesize(per_department: int = 260, seed: int = 20240601) -> list[tuple[str, str]]:
    """``(question, department code)`` pairs written from the knowledge base."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    kb = by_department()
    for code in sorted(kb):
        if code == "20":
            continue  # emergencies come from the red-flag rules, not from the model
        kinds = kb[code]
        pool = [(kind, term) for kind, terms in kinds.items() for term in terms]
        for i in range(per_department):
            kind, term = pool[i % len(pool)] if i < len(pool) else rng.choice(pool)
            who = rng.choice(_KID) if code == "07" else rng.choice(_WHO)
            text = _sentence(rng, kind, term, who)
            if rng.random() < 0.3 and len(pool) > 1:  # a second complaint of the same department
                k2, t2 = rng.choice(pool)
                if k2 in ("symptom", "disease") and t2 != term:
                    text = _join(text.rstrip("，"), "，还", t2)
            out.append((text, code))
        if code in _CHILD_FROM:
            symptoms = kinds.get("symptom", [])
            for _ in range(max(10, per_department // 6)):
                out.append((_sentence(rng, "symptom", rng.choice(symptoms), rng.choice(_KID)), "07"))
    return out
