"""A record pair explained in words a registration operator understands (同一手机号但出生日期相差 30 年：疑似父子),
in Simplified Chinese first, with English. Works on the matcher's normalised features of the two records."""

from __future__ import annotations

from hutong.mpi.model import _birth_order, _one_character_apart


def _year(b: str) -> int | None:
    return int(b[:4]) if len(b) >= 4 and b[:4].isdigit() else None


def _parent_word(older_sex: str, younger_sex: str) -> tuple[str, str]:
    zh = {("m", "m"): "父子", ("m", "f"): "父女", ("f", "m"): "母子", ("f", "f"): "母女"}.get((older_sex, younger_sex))
    return (zh or "亲子"), "parent and child"


def describe_pair(a: dict, b: dict) -> list[dict]:
    """Reasons, most telling first: each ``{"code", "zh", "en"}``. Never quotes an ID, phone or address."""
    out: list[dict] = []

    def say(code: str, zh: str, en: str) -> None:
        out.append({"code": code, "zh": zh, "en": en})

    shared = [w for k, w in (("phone", ("同一手机号", "the same phone")), ("address", ("同一地址", "the same address")),
                             ("guardian_id", ("同一监护人证件", "the same guardian's ID")))
              if a.get(k) and a.get(k) == b.get(k)]
    shared_zh = "、".join(w[0] for w in shared)
    shared_en = ", ".join(w[1] for w in shared)
    ya, yb = _year(a.get("birth", "")), _year(b.get("birth", ""))
    gap = abs(ya - yb) if ya is not None and yb is not None else None
    for side, f in (("A", a), ("B", b)):
        if f.get("guardian_id"):
            say("guardian_id", f"记录 {side} 的身份证号属于他人（证号中的出生日期与记录相差多年）：按监护人证件处理，不作身份依据",
                f"record {side} carries someone else's resident ID (its birth date is years from the record's): "
                "treated as a guardian's ID, not as identity")
        if f.get("placeholder"):
            say("placeholder", f"记录 {side} 为新生儿或未知身份的临时名（如 某某之子、新生儿）：姓名不参与比较",
                f"record {side} has a placeholder name (a newborn's or an unknown patient's): the name is not compared")
    if gap is not None and gap >= 15 and shared:
        older, younger = (a, b) if ya < yb else (b, a)
        zh, en = _parent_word(older.get("sex", ""), younger.get("sex", ""))
        say("parent_child", f"{shared_zh}但出生日期相差 {gap} 年：疑似{zh}", f"{shared_en} but born {gap} years apart: "
            f"probably {en}")
    elif a.get("birth") and a.get("birth") == b.get("birth") and shared and (
            (a.get("given") and b.get("given") and a.get("given") != b.get("given")
             and not (a.get("name_py") and a.get("name_py") == b.get("name_py")))
            or (_birth_order(a.get("placeholder", "")) != _birth_order(b.get("placeholder", "")))):
        say("twins", f"出生日期、{shared_zh}相同但名字不同：疑似双胞胎",
            f"same birth date and {shared_en}, different given names: probably twins")
    elif gap is not None and 0 < gap < 15 and shared and a.get("given") != b.get("given"):
        if a.get("sex") and b.get("sex") and a.get("sex") != b.get("sex") and min(ya, yb) < 2008:
            say("spouses", f"{shared_zh}，性别不同、出生相差 {gap} 年：疑似夫妻",
                f"{shared_en}, different sex, born {gap} years apart: probably spouses")
        else:
            say("siblings", f"{shared_zh}，名字不同、出生相差 {gap} 年：疑似兄弟姐妹",
                f"{shared_en}, different names, born {gap} years apart: probably siblings")
    if a.get("name") and b.get("name") and a["name"] != b["name"] and _one_character_apart(a["name"], b["name"]):
        say("given_differs", "名字有一个字不同且读音不同：通常是两个人（兄弟姐妹常共用一字）",
            "one given-name character differs and sounds different: usually two people (siblings share a character)")
    elif a.get("name_py") and a.get("name_py") == b.get("name_py") and a.get("name") != b.get("name"):
        say("homophone", "姓名读音相同、字不同：常见的同音录入差异", "same sound, different characters: a common desk variation")
    if a.get("id") and a.get("id") == b.get("id"):
        say("same_id", "身份证号相同", "same resident ID")
    elif a.get("id_valid") and b.get("id_valid") and a.get("id") != b.get("id"):
        say("id_conflict", "两条记录的身份证号都有效但不同：是两个人（双胞胎的证号常只差几位）",
            "two different valid resident IDs: two people (twins' IDs often differ by a few digits)")
    ba, bb = a.get("birth", ""), b.get("birth", "")
    if len(ba) == 8 and len(bb) == 8 and ba != bb:
        one_digit = sum(x != y for x, y in zip(ba[:4], bb[:4], strict=True)) == 1
        if ba[4:] == bb[4:] and (one_digit or sorted(ba[:4]) == sorted(bb[:4])):
            say("year_typo", "出生年份疑似录入错误（月日相同，年份差一位）", "birth year probably mistyped (same day and month)")
        elif ba[:4] == bb[:4] and ba[4:6] == bb[6:8] and ba[6:8] == bb[4:6]:
            say("day_month_swapped", "出生日期的月与日颠倒", "day and month of birth swapped")
    for side, f in (("A", a), ("B", b)):
        bd = f.get("birth", "")
        if len(bd) == 4 or bd[4:] in ("0101", "0701"):
            say("age_derived", f"记录 {side} 的出生日期疑似按年龄推算（只有年份或为 1 月 1 日 / 7 月 1 日）",
                f"record {side}'s birth date looks derived from an age (a year only, or 1 January / 1 July)")
    return out
