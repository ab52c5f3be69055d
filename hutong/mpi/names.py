"""Name normalisation for matching: Chinese characters, pinyin, look-alikes, compound surnames, Latin names.

Everything here is a pure function with small caches, so batch normalisation of a million names stays fast.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path


def _pypinyin():
    """pypinyin, imported on first use: its phrase dictionary costs about 46 MB, which a server
    process that never normalises a name (a worker with the linker elsewhere) should not carry."""
    import pypinyin

    return pypinyin

_DATA = Path(__file__).resolve().parent / "data"

#: Compound (two-character) surnames, 复姓. A name starting with one of these keeps both characters as family.
COMPOUND_SURNAMES = frozenset(
    """欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 司空 夏侯 令狐 端木 独孤 南宫 西门 轩辕
    钟离 闻人 万俟 澹台 公冶 宗政 濮阳 淳于 单于 太叔 申屠 仲孙 呼延 赫连 百里 东郭 南门 羊舌 微生 梁丘
    左丘 东门 西门 第五 公良 漆雕 乐正 壤驷 公西 拓跋 夹谷 宰父 谷梁 段干 巫马 鲜于 闾丘 司寇 亓官 公羊""".split()
)

#: Readings of polyphonic characters when used as a surname (pypinyin's default reading is often wrong here).
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "区": "ou", "查": "zha", "朴": "piao", "盖": "ge",
    "乐": "yue", "员": "yun", "缪": "miao", "繁": "po", "覃": "qin", "翟": "zhai", "种": "chong", "秘": "bi",
    "召": "shao", "折": "she", "黑": "he", "任": "ren", "华": "hua", "葛": "ge", "宓": "fu", "阚": "kan",
    "纪": "ji", "尉": "yu", "占": "zhan", "过": "guo", "句": "gou", "能": "nai", "朝": "chao", "都": "du",
    "重": "chong", "藏": "zang", "舍": "she", "牟": "mou", "沈": "shen", "柏": "bai", "薄": "bo", "贲": "ben",
    "隗": "wei", "眭": "sui", "洗": "xian", "冼": "xian", "蕃": "pi", "褚": "chu", "尹": "yin",
    "万": "wan", "长": "chang", "参": "can", "传": "chuan", "卜": "bu", "祭": "zhai", "车": "che", "奇": "qi",
    "哈": "ha", "相": "xiang", "颉": "xie", "粘": "nian", "隽": "juan", "阿": "a", "大": "da", "校": "xiao",
}
COMPOUND_READINGS = {"尉迟": "yu chi", "万俟": "mo qi", "单于": "chan yu", "长孙": "zhang sun", "令狐": "ling hu"}

#: Groups of characters that are easily confused in handwriting, OCR or hurried typing (形近字).
#: The first character of a group is its canonical form in the "shape key".
_LOOKALIKE_GROUPS = """己已巳 戊戌戍 未末 王玉 大太犬 日曰 土士 人入 刀力 千干于 天夫 田由甲申 微徽 候侯 赢羸
    兔免 折拆 汩汨 祟崇 茶荼 坂板 荆莉 栗粟 杨扬 扬场 晴睛 清请 情倩 鸟乌 壁璧 辩辨辫 幕暮慕墓 拔拨 贷货 崇祟
    怡恰 恬括 洁浩 绢娟涓鹃 媛嫒 婷亭 丽俪 燕艳 颖颍 钰鈺 琪祺 淇棋 倩清 斌彬 峰锋 烽锋 旭加 杭抗 浩皓 晓哓
    玲铃伶龄 芳方 菁青 婕捷 俊骏 铭名 茗名 凤风 洋祥 详祥 忻欣 昕欣 焱炎 湘相 霞瑕 艳焰 冉再 亮高 锐悦 兰蓝
    萍苹 荣容 蓉容 莹萤 宁宇 宇字 琳林 彤丹 妍研 艺芸 芸云 颂颁 佳隹 姬娅 刚岗 钢钢 冈岗 巳已"""


def _load_t2s() -> dict[str, str]:
    out: dict[str, str] = {}
    path = _DATA / "t2s_chars.tsv"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            src, _, tgt = line.partition("\t")
            if src and tgt:
                out[src] = tgt
    return out


T2S: dict[str, str] = _load_t2s()


def _load_lookalikes() -> dict[str, str]:
    canon: dict[str, str] = {}
    for group in _LOOKALIKE_GROUPS.split():
        head = canon.get(group[0], group[0])
        for ch in group:
            canon.setdefault(ch, head)
    return canon


LOOKALIKE: dict[str, str] = _load_lookalikes()

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_PAREN = re.compile(r"[（(\[【].*?[)）\]】]")
_NON_NAME_CJK = re.compile(r"[^\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_NON_ALPHA = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")


def has_cjk(text: str) -> bool:
    """True when ``text`` contains a Chinese character."""
    return bool(_CJK.search(text or ""))


def to_simplified(text: str) -> str:
    """Traditional or variant characters → simplified (single-character map, enough for names and addresses)."""
    return "".join(T2S.get(ch, ch) for ch in text)


def fold_width(text: str) -> str:
    """Full-width ASCII → half-width, compatibility forms folded (NFKC)."""
    return unicodedata.normalize("NFKC", text or "")


def normalize_cjk_name(text: str) -> str:
    """A Chinese name as bare simplified characters: no spaces, dots (·), digits, Latin junk or parentheses."""
    text = fold_width(text)
    text = _PAREN.sub("", text)
    text = _NON_NAME_CJK.sub("", text)
    return to_simplified(text)


def normalize_latin_name(text: str) -> str:
    """A Latin-script name lower-cased, accents removed, punctuation dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKD", fold_width(text).lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NON_ALPHA.sub(" ", text.replace("-", " ").replace("'", ""))
    return _SPACES.sub(" ", text).strip()


def split_cjk_name(name: str) -> tuple[str, str]:
    """(family, given) of a normalised Chinese name, honouring compound surnames (欧阳娜娜 → 欧阳, 娜娜)."""
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    if len(name) >= 2:
        return name[:1], name[1:]
    return name, ""


@lru_cache(maxsize=65536)
def _char_pinyin(ch: str) -> str:
    if not has_cjk(ch):
        return ch
    py = _pypinyin()
    return py.lazy_pinyin(ch, style=py.Style.NORMAL, errors="ignore")[0]


@lru_cache(maxsize=65536)
def char_readings(ch: str) -> tuple[str, ...]:
    """All toneless readings of one character (heteronyms)."""
    py = _pypinyin()
    got = py.pinyin(ch, style=py.Style.NORMAL, heteronym=True, errors="ignore")
    return tuple(got[0]) if got else (ch,)


def family_pinyin(family: str) -> str:
    """Pinyin of a surname with surname readings (单 shan, 曾 zeng, 解 xie, 尉迟 yu chi)."""
    if family in COMPOUND_READINGS:
        return COMPOUND_READINGS[family]
    return " ".join(SURNAME_READINGS.get(ch) or _char_pinyin(ch) for ch in family)


@lru_cache(maxsize=262144)
def given_pinyin(given: str) -> str:
    """Pinyin of a given name, in context (pypinyin phrase readings), toneless, syllables separated by spaces."""
    if not given:
        return ""
    py = _pypinyin()
    return " ".join(py.lazy_pinyin(given, style=py.Style.NORMAL, errors="ignore"))


def name_pinyin(family: str, given: str) -> str:
    """Toneless pinyin of a whole Chinese name with the surname read as a surname."""
    fam = family_pinyin(family)
    giv = given_pinyin(given)
    return f"{fam} {giv}".strip()


_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))
_FUZZY_FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"), ("iang", "ian"), ("uang", "uan"))


@lru_cache(maxsize=65536)
def fuzzy_syllable(s: str) -> str:
    """Dialect-tolerant form of one syllable: zh/z, ch/c, sh/s, n/l, f/h, r/l; -ang/-an, -eng/-en, -ing/-in."""
    for a, b in _FUZZY_INITIALS:
        if s.startswith(a):
            s = b + s[len(a):]
            break
    if s[:1] in ("n", "r"):
        s = "l" + s[1:]
    elif s[:1] == "f":
        s = "h" + s[1:]
    for a, b in _FUZZY_FINALS:
        if s.endswith(a):
            s = s[: -len(a)] + b
            break
    return s


def fuzzy_pinyin(py: str) -> str:
    """:func:`fuzzy_syllable` applied to every syllable of a pinyin string."""
    return " ".join(fuzzy_syllable(s) for s in py.split())


def shape_key(name: str) -> str:
    """Look-alike canonical form (己/已/巳 → 己): equal keys mean the names differ only by confusable glyphs."""
    return "".join(LOOKALIKE.get(ch, ch) for ch in name)


def initials(py: str) -> str:
    """First letters of each pinyin syllable (zhang san feng → zsf)."""
    return "".join(s[0] for s in py.split() if s)


_SOUNDEX = str.maketrans("bfpvcgjkqsxzdtlmnr", "111122222222334556")


def soundex(name: str) -> str:
    """American Soundex of a Latin name (four characters), '' for an empty name."""
    name = re.sub(r"[^a-z]", "", (name or "").lower())
    if not name:
        return ""
    first = name[0]
    coded = name.translate(_SOUNDEX)
    out = []
    prev = coded[0] if coded[0].isdigit() else ""
    for ch, raw in zip(coded[1:], name[1:], strict=True):
        if ch.isdigit():
            if ch != prev:
                out.append(ch)
            prev = ch
        elif raw not in "hw":
            prev = ""
    return (first + "".join(out) + "000")[:4]


#: Names a desk writes when the real name is not known: a newborn under its mother's (or father's) name,
#: an unconscious or unknown patient. Such a name must not count as evidence for or against a match.
_PLACEHOLDER_WHOLE = re.compile(r"^(无名氏?|未知|不详|待定|新生儿|婴儿|宝宝|患者|病人|[男女]婴|某+|[A-Za-z]?\d*|[xX]+)$")


def is_placeholder_name(text: str) -> bool:
    """True for placeholder names (张丽之子, 李娜之女, 王某某, 新生儿, 无名氏, 女婴2) rather than a person's own."""
    t = fold_width(text or "")
    t = _SPACES.sub("", t)
    if not t:
        return False
    if _PLACEHOLDER_WHOLE.match(t) and has_cjk(t):
        return True
    if not has_cjk(t):
        return False
    t = _PAREN.sub("", t) if not _PAREN.fullmatch(t) else t
    return bool(re.search(r"(之(子|女|儿|男|婴)|之[长次大小][子女]|之[一二三四]|婴儿?[一二三四1-5甲乙]?$|新生儿|宝宝$|"
                          r"某|无名氏|[男女]孩$|^[男女]婴)", t))
