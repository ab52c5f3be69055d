"""Text handling for triage: normalisation, negation, ages written in words, and the tokens the
model sees (jieba words plus character n-grams, so typos and unseen words still share features)."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

_SPACE = re.compile(r"\s+")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9, "十": 10, "半": 0.5}
# A negation just before a term cancels it: 没有胸痛, 不发烧, 无出汗, 否认头痛.
_NEGATIONS = ("没有", "没", "无", "不", "未", "否认", "不是")


def normalize(text: str) -> str:
    """Full-width to half-width (NFKC), lower case, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text or "")
    return _SPACE.sub(" ", text).strip().lower()


def negated(text: str, start: int) -> bool:
    """Whether the term starting at ``start`` is negated by the few characters before it."""
    window = text[max(0, start - 3):start]
    clause_break = max(window.rfind(c) for c in "，,。；;！!？? ")
    if clause_break >= 0:
        window = window[clause_break + 1:]
    return any(window.endswith(n) for n in _NEGATIONS)


def find_positive(text: str, term: str) -> bool:
    """Whether ``term`` occurs in ``text`` at least once without a negation before it."""
    start = text.find(term)
    while start >= 0:
        if not negated(text, start):
            return True
        start = text.find(term, start + 1)
    return False


def _cn_number(word: str) -> float | None:
    if not word:
        return None
    if word.replace(".", "", 1).isdigit():
        return float(word)
    if word in _CN_DIGITS:
        return float(_CN_DIGITS[word])
    if "十" in word:  # 十五, 二十, 二十三
        tens, _, ones = word.partition("十")
        t = _CN_DIGITS.get(tens, 1) if tens else 1
        o = _CN_DIGITS.get(ones, 0) if ones else 0
        return float(t * 10 + o)
    return None


_AGE = re.compile(r"([0-9]+(?:\.[0-9]+)?|[零〇一二两三四五六七八九十半]{1,3})\s*(?:个)?(多)?\s*(天|周|星期|月|岁)(?:半)?")


def age_from_text(text: str) -> float | None:
    """An age in years written in the text (两个月的宝宝 -> 0.17, 5岁 -> 5), or None.

    Durations (发烧三天) are not ages: a day/week/month count only counts next to a word for a
    baby or with 大/的/出生 (二十天的孩子, 刚出生二十天, 一个多月大)."""
    if "新生儿" in text:
        newborn = 0.05
    else:
        newborn = None
    for m in _AGE.finditer(text):
        n = _cn_number(m.group(1))
        if n is None:
            continue
        unit = m.group(3)
        after = text[m.end():m.end() + 3]
        before = text[max(0, m.start() - 4):m.start()]
        if unit == "岁":
            return n + (0.5 if m.group(0).endswith("半") else 0)
        baby_after = after.startswith(("宝", "婴", "孩", "娃", "新生", "儿", "小孩"))
        baby_before = before.endswith(("出生", "才", "刚", "宝宝", "婴儿", "孩子", "宝", "娃"))
        if not (after[:1] in ("的", "大") or baby_after or baby_before):
            continue
        if m.group(2):
            n += 0.5
        return round({"天": n / 365, "周": n * 7 / 365, "星期": n * 7 / 365, "月": n / 12}[unit], 3)
    return newborn


_CHILD_WORDS = ("宝宝", "孩子", "小孩", "小朋友", "儿子", "女儿", "婴儿", "新生儿", "幼儿", "宝贝", "娃", "小儿",
                "儿童", "闺女", "学生", "初中生", "小学生")
_PREGNANT = re.compile(r"怀孕|怀了|孕妇|孕[0-9一二三四五六七八九十]+周|孕早期|孕中期|孕晚期|妊娠|产检|胎动|胎心|"
                       r"建档|唐筛|nt检查|孕期|孕吐|宫缩|见红|先兆流产|胎停|孕[0-9]+个?月|怀孕[0-9一二三四五六七八九十]+")


def mentions_child(text: str) -> bool:
    """Whether the text speaks about a child (宝宝, 孩子 …)."""
    return any(w in text for w in _CHILD_WORDS)


def mentions_pregnancy(text: str) -> bool:
    """Whether the text speaks about a current pregnancy (not 备孕, not 没怀孕)."""
    for m in _PREGNANT.finditer(text):
        if not negated(text, m.start()):
            return True
    return False


class Tokenizer:
    """jieba words (with the knowledge base's terms as user words) plus character bi- and trigrams.

    One jieba instance per process (its dictionary is ~50 MB in memory); the lock covers jieba's
    lazy initialisation, which is not thread-safe."""

    _lock = threading.Lock()

    def __init__(self, user_words: tuple[str, ...] = ()):
        import jieba

        jieba.setLogLevel(60)
        self._jieba = jieba.Tokenizer()
        with self._lock:
            self._jieba.initialize()
            for w in user_words:
                if len(w) >= 2:
                    self._jieba.add_word(w, freq=20000)

    def __call__(self, text: str) -> list[str]:
        text = normalize(text)
        words = [w for w in self._jieba.lcut(text) if w.strip() and not _punct(w)]
        chars = [c for c in text if not c.isspace() and not _punct(c)]
        grams = ["w:" + w for w in words]
        grams += ["c2:" + "".join(chars[i:i + 2]) for i in range(len(chars) - 1)]
        grams += ["c3:" + "".join(chars[i:i + 3]) for i in range(len(chars) - 2)]
        return grams


@lru_cache(maxsize=4096)
def _punct(s: str) -> bool:
    return all(unicodedata.category(c).startswith(("P", "S")) for c in s)
