"""Interpret lab results: unit conversion, the interval used and its source, the flag, and a
plain-Chinese explanation that describes without diagnosing.

Precedence of intervals: the sending laboratory's own range (``Observation.referenceRange`` or
HL7 v2 OBX-7) first, because it belongs to the method and population that produced the value;
the national interval (WS/T 404 parts, WS/T 405, and cited guidelines for glucose, lipids and uric
acid) otherwise. The national interval is still shown beside the laboratory's for comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from hutong.reportread.catalog import Analyte, Critical, Interval, identify, intervals
from hutong.reportread.units import UnitError, convert, to_ucum
from hutong.reportread.vocab import Flag

LOINC = "http://loinc.org"
LAB_SOURCE = "检验机构报告的参考区间（优先采用）"
CHILD_NOTE = ("儿童参考区间（WS/T 779-2021《儿童血细胞分析参考区间》、WS/T 780-2021《儿童临床常用生化检验项目参考区间》）"
              "的数值尚未录入核实，请以化验单上的参考范围为准")
_NUMBER = re.compile(r"([<>≤≥]=?)?\s*([-+]?[0-9]+(?:\.[0-9]+)?)")
_RANGE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:-|~|～|—|–|至|to)\s*([0-9]+(?:\.[0-9]+)?)\s*$")
_UPPER = re.compile(r"^\s*(?:<|≤|<=|小于|不超过)\s*([0-9]+(?:\.[0-9]+)?)\s*$")
_LOWER = re.compile(r"^\s*(?:>|≥|>=|大于)\s*([0-9]+(?:\.[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Person:
    """What the interval choice needs to know about the patient."""

    sex: str | None = None     # male / female
    age: float | None = None   # years at the time of the sample


def age_at(birth: str | None, when: str | None) -> float | None:
    """Age in years on ``when`` (a FHIR date/dateTime; today if absent) for a FHIR birthDate."""
    if not birth:
        return None
    try:
        b = date.fromisoformat(birth[:10] if len(birth) >= 10 else (birth + "-07-01")[:10])
        w = datetime.fromisoformat(when.replace("Z", "+00:00")).date() if when else date.today()
    except ValueError:
        return None
    return max(0.0, (w - b).days / 365.25)


def person_from(patient: dict | None, when: str | None = None) -> Person:
    if not isinstance(patient, dict):
        return Person()
    sex = patient.get("gender") if patient.get("gender") in ("male", "female") else None
    return Person(sex, age_at(patient.get("birthDate"), when))


def _method(obs: dict, analyte: Analyte) -> tuple[str, str]:
    """The method an interval row must match, and a note when it was assumed."""
    words = " ".join(filter(None, [(obs.get("method") or {}).get("text"), (obs.get("code") or {}).get("text")]
                            + [c.get("display") or "" for c in (obs.get("method") or {}).get("coding", [])
                               if isinstance(c, dict)])).lower()
    if analyte.key in ("ALT", "AST"):
        if "磷酸吡哆醛" in words or "p5p" in words or "plp" in words:
            return ("without-p5p" if "不含" in words or "无" in words else "with-p5p"), ""
        return "without-p5p", "（检测方法未注明，按试剂不含5'-磷酸吡哆醛的区间）"
    if analyte.key == "CREA":
        if "苦味酸" in words or "jaffe" in words:
            return "jaffe", ""
        return "enzymatic", "" if ("酶" in words or "enzym" in words) else "（检测方法未注明，按酶法区间）"
    if analyte.key == "DBIL":
        if "贝克曼" in words or "beckman" in words:
            return "beckman", ""
        return "roche", "" if ("罗氏" in words or "roche" in words) else "（检测系统未注明，按罗氏系统区间）"
    return "", ""


def national_interval(analyte: Analyte, person: Person, method: str = "") -> Interval | None:
    """The national interval for this person, or None when the table has none that applies."""
    age = person.age if person.age is not None else 40.0  # unknown age: adult intervals (said in the note)
    best: Interval | None = None
    for row in intervals():
        if row.key != analyte.interval_key or (row.method and row.method != method):
            continue
        if row.sex != "any" and row.sex != person.sex:
            continue
        if (row.age_min is not None and age < row.age_min) or (row.age_max is not None and age >= row.age_max):
            continue
        if best is None or (best.sex == "any" and row.sex != "any"):
            best = row
    return best


def _quantity_value(q) -> tuple[float | None, str | None]:
    if not isinstance(q, dict) or not isinstance(q.get("value"), (int, float)) or isinstance(q.get("value"), bool):
        return None, None
    return float(q["value"]), q.get("code") or q.get("unit")


def _value(obs: dict) -> tuple[float | None, str | None, str | None, str]:
    """(number, unit, comparator, text as sent)."""
    q = obs.get("valueQuantity")
    if isinstance(q, dict):
        v, unit = _quantity_value(q)
        return v, unit, q.get("comparator"), f"{q.get('comparator', '')}{q.get('value')}"
    s = obs.get("valueString")
    if isinstance(s, str):
        m = _NUMBER.search(s)
        if m:
            return float(m.group(2)), None, m.group(1), s
        return None, None, None, s
    if isinstance(obs.get("valueInteger"), int):
        return float(obs["valueInteger"]), None, None, str(obs["valueInteger"])
    cc = obs.get("valueCodeableConcept")
    if isinstance(cc, dict):
        return None, None, None, cc.get("text") or next((c.get("display", "") for c in cc.get("coding", [])), "")
    return None, None, None, ""


def _lab_range(obs: dict, unit: str | None, target: str, analyte: Analyte) -> dict | None:
    """The laboratory's own range in the reference unit, or None."""
    for rr in obs.get("referenceRange") or []:
        if not isinstance(rr, dict):
            continue
        low, lu = _quantity_value(rr.get("low"))
        high, hu = _quantity_value(rr.get("high"))
        if low is None and high is None and isinstance(rr.get("text"), str):
            text = rr["text"]
            if m := _RANGE.match(text):
                low, high = float(m.group(1)), float(m.group(2))
            elif m := _UPPER.match(text):
                high = float(m.group(1))
            elif m := _LOWER.match(text):
                low = float(m.group(1))
            lu = hu = unit
        if low is None and high is None:
            continue
        try:
            lo = convert(low, lu or unit or target, target, analyte.molar_mass) if low is not None else None
            hi = convert(high, hu or unit or target, target, analyte.molar_mass) if high is not None else None
        except UnitError:
            return None
        return {"low": _round(lo, analyte), "high": _round(hi, analyte), "unit": target, "source": LAB_SOURCE}
    return None


def _round(v: float | None, analyte: Analyte) -> float | None:
    if v is None:
        return None
    digits = 2 if abs(v) < 10 else (1 if abs(v) < 100 else 0)
    r = round(v, digits)
    return int(r) if float(r).is_integer() else r


def _flag(value: float, low: float | None, high: float | None, low_rule: str = ">=", high_rule: str = "<=") -> Flag:
    if low is not None and (value < low if low_rule == ">=" else value <= low):
        return "low"
    if high is not None and (value > high if high_rule == "<=" else value >= high):
        return "high"
    return "normal"


def _critical(value: float, unit: str, analyte: Analyte, table: dict[str, Critical]) -> Flag | None:
    c = table.get(analyte.key) or table.get(analyte.interval_key)
    if c is None:
        return None
    try:
        v = convert(value, unit, c.unit, analyte.molar_mass)
    except UnitError:
        return None
    if c.low is not None and v < c.low:
        return "critical-low"
    if c.high is not None and v > c.high:
        return "critical-high"
    return None


_INTERP = {"H": "high", "HH": "critical-high", "HU": "critical-high", "L": "low", "LL": "critical-low",
           "LU": "critical-low", "N": "normal", ">": "high", "<": "low"}


def _sent_flag(obs: dict) -> Flag | None:
    for interp in obs.get("interpretation") or []:
        for c in (interp or {}).get("coding") or []:
            f = _INTERP.get((c or {}).get("code", ""))
            if f:
                return f  # type: ignore[return-value]
    return None


def _codes(obs: dict) -> tuple[list[str], list[str], str | None]:
    code = obs.get("code") if isinstance(obs.get("code"), dict) else {}
    codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
    loinc = [c["code"] for c in codings if c.get("system") == LOINC and isinstance(c.get("code"), str)]
    texts = [code.get("text")] + [c.get("display") for c in codings] + [c.get("code") for c in codings if c.get("system") != LOINC]
    first = loinc[0] if loinc else next((c.get("code") for c in codings if isinstance(c.get("code"), str)), None)
    return loinc, [t for t in texts if isinstance(t, str)], first


def interpret_observation(obs: dict, person: Person, critical: dict[str, Critical]) -> dict:
    """One result item of the ``POST /api/report/interpret`` contract."""
    loinc, texts, first_code = _codes(obs)
    analyte = identify(loinc, texts)
    value, unit, comparator, sent = _value(obs)
    name = analyte.name if analyte else (texts[0] if texts else "未知项目")
    item: dict = {"code": first_code or (analyte.loinc[0] if analyte else None), "name": name, "value": value,
                  "unit": unit, "interval": None, "flag": "unknown", "explanation": ""}
    item["sent"] = {"value": sent, "unit": unit}
    if obs.get("id"):
        item["observation"] = f"Observation/{obs['id']}"
    if analyte is None:
        item["explanation"] = f"{name}：暂未收录这一检验项目的解读，请以化验单上的参考范围和医生的意见为准。"
        sent_flag = _sent_flag(obs)
        if sent_flag:
            item["flag"] = sent_flag
        return item
    item["analyte"] = analyte.key
    if value is None:
        item["explanation"] = f"{analyte.name}：{analyte.what}。结果“{sent or '无数值'}”不是数值，无法按参考区间判断。"
        sent_flag = _sent_flag(obs)
        if sent_flag:
            item["flag"] = sent_flag
        return item
    unit_in = unit or analyte.unit
    if analyte.category == "enzyme" and to_ucum(unit_in) == "[IU]/L":
        unit_in = "U/L"  # the enzyme-activity "IU" is the unit U (µmol/min), not a WHO biological unit
    try:
        v = convert(value, unit_in, analyte.unit, analyte.molar_mass)
    except UnitError as exc:
        item["explanation"] = (f"{analyte.name}：{analyte.what}。结果的单位“{unit}”无法换算为参考单位 {analyte.unit}"
                               f"（{exc}），因此不作高低判断，请以化验单为准。")
        return item
    item["value"] = _round(v, analyte)
    item["unit"] = analyte.unit
    method, method_note = _method(obs, analyte)
    nat = national_interval(analyte, person, method)
    nat_dict = ({"low": nat.low, "high": nat.high, "unit": nat.unit, "source": nat.source + method_note,
                 "standard": nat.standard, "clause": nat.clause, "population": nat.population}
                if nat else None)
    lab = _lab_range(obs, unit_in, analyte.unit, analyte)
    if lab:
        item["interval"] = lab
        flag = _flag(v, lab["low"], lab["high"])
        if nat_dict:
            item["national_interval"] = nat_dict
    elif nat:
        item["interval"] = nat_dict
        flag = _flag(v, nat.low, nat.high, nat.low_rule, nat.high_rule)
    else:
        flag = _sent_flag(obs) or "unknown"
    crit = _critical(v, analyte.unit, analyte, critical)
    if crit:
        flag = crit
    item["flag"] = flag
    item["critical"] = bool(crit)
    item["explanation"] = _explain(analyte, item, nat, person, lab is not None)
    return item


def _fmt(v) -> str:
    return "" if v is None else (str(int(v)) if float(v).is_integer() else str(v))


def _explain(a: Analyte, item: dict, nat: Interval | None, person: Person, lab: bool) -> str:
    iv = item["interval"]
    v, unit, flag = item["value"], item["unit"], item["flag"]
    parts = [f"{a.name}：{a.what}。"]
    if iv is None:
        if person.age is not None and person.age < 18:
            parts.append(f"本次结果 {_fmt(v)} {unit}。{CHILD_NOTE}。")
        else:
            parts.append(f"本次结果 {_fmt(v)} {unit}，没有适用于此年龄或检测方法的国家参考区间，化验单也未给出参考范围，暂不作高低判断。")
        return "".join(parts)
    below = "<" if (nat is not None and not lab and nat.high_rule == "<") else "≤"
    span = f"{_fmt(iv['low'])}~{_fmt(iv['high'])}" if iv["low"] is not None and iv["high"] is not None else (
        f"{below}{_fmt(iv['high'])}" if iv["high"] is not None else f"≥{_fmt(iv['low'])}")
    where = "化验单上的参考范围" if lab else "参考区间"
    if flag == "normal":
        parts.append(f"本次结果 {_fmt(v)} {unit}，在{where}（{span} {unit}）内。")
    elif flag in ("high", "critical-high"):
        parts.append(f"本次结果 {_fmt(v)} {unit}，高于{where}（{span} {unit}）。{a.high}。")
    else:
        parts.append(f"本次结果 {_fmt(v)} {unit}，低于{where}（{span} {unit}）。{a.low}。")
    if flag.startswith("critical"):
        parts.append("这是危急值，可能需要紧急处理：请立即联系开单医生，或尽快到急诊就诊。")
    elif flag in ("high", "low"):
        hi, lo = iv["high"], iv["low"]
        marked = (flag == "high" and hi and v >= 3 * hi) or (flag == "low" and lo and v <= lo / 2)
        parts.append("偏离较明显，建议尽快到医院就诊，由医生结合病史和其他检查判断。" if marked else
                     "单次轻度偏离意义有限，建议结合其他指标和身体情况，必要时复查或咨询医生。")
    if person.age is None and nat is not None and not lab:
        parts.append("（未提供年龄，按成人区间判读）")
    return "".join(parts)


_WORD = {"high": "偏高", "low": "偏低", "critical-high": "危急偏高", "critical-low": "危急偏低"}


def summarize(items: list[dict]) -> str:
    """One or two sentences over the whole report."""
    if not items:
        return "报告中没有可解读的检验结果。"
    abnormal = [i for i in items if i["flag"] in _WORD]
    unknown = [i for i in items if i["flag"] == "unknown"]
    normal = len(items) - len(abnormal) - len(unknown)
    text = f"共{len(items)}项结果，{normal}项在参考区间内"
    if abnormal:
        text += f"，{len(abnormal)}项异常：" + "、".join(f"{i['name']}{_WORD[i['flag']]}" for i in abnormal[:8])
        text += "等" if len(abnormal) > 8 else ""
    if unknown:
        text += f"，{len(unknown)}项无法判断"
    text += "。"
    if any(i["flag"].startswith("critical") for i in abnormal):
        text += "其中有危急值，请立即联系医生或到急诊就诊。"
    elif abnormal:
        text += "异常结果请结合身体情况咨询医生，必要时复查。"
    else:
        text += "未见明显异常。"
    return text + "以上解读仅供参考，不能代替医生的诊断。"
