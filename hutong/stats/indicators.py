"""Indicators computed live from the shared record.

Each indicator has DHIS2's shape: a numerator, an optional denominator and a factor
(``value = numerator / denominator × factor``). Numerators and denominators are live counters
(``hutong.stats.counters``) kept up to date from the change log by the consumer ``CONSUMER``: a new
Encounter shows in the indicator as soon as the consumer has run (each commit wakes it, and it runs
every second anyway), with no batch run; ``counters.recompute`` (a full scan) gives the same
numbers. Counters are kept per institution and day; reading rolls them up to county, city and
province through the registry's hierarchy (``hutong.stats.orgunits``), so drill-down costs no
recomputation. Public views apply a small-cell rule (``suppress``): counts from 1 to
``SMALL_CELL - 1`` are never shown, so a public table never reveals a person.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from hutong.core.clock import SHANGHAI
from hutong.core.errors import bad_request, not_found
from hutong.stats import counters, orgunits

SMALL_CELL = 5
ICD10 = "http://hl7.org/fhir/sid/icd-10"
HYPERTENSION_ICD10 = ("I10", "I11", "I12", "I13", "I15")


def local_day(value) -> str | None:
    """The Asia/Shanghai day of a FHIR date or dateTime (``None`` when absent or unreadable)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    if len(value) == 10:
        return value
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return value[:10]
    return dt.astimezone(SHANGHAI).strftime("%Y-%m-%d")


def _org_of(reference) -> str | None:
    ref = (reference or {}).get("reference") if isinstance(reference, dict) else None
    if isinstance(ref, str) and ref.startswith("Organization/"):
        return ref.split("/", 1)[1]
    return None


def _source_org(resource: dict) -> str | None:
    source = (resource.get("meta") or {}).get("source")
    if isinstance(source, str) and source.startswith("urn:hutong:org:"):
        return source.rsplit(":", 1)[1]
    return None


def _class(enc: dict) -> str:
    return ((enc.get("class") or {}).get("code") or "").upper()


def _visits(enc: dict):
    """Outpatient and emergency visits: institution × day."""
    if enc.get("status") in ("cancelled", "entered-in-error") or _class(enc) not in ("AMB", "EMER"):
        return
    org = _org_of(enc.get("serviceProvider"))
    day = local_day((enc.get("period") or {}).get("start"))
    if org and day:
        yield (org, day), 1


def _stay_days(enc: dict) -> float | None:
    period = enc.get("period") or {}
    start, end = local_day(period.get("start")), local_day(period.get("end"))
    if not start or not end:
        return None
    days = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).days
    return float(max(days, 1))   # the national rule: a same-day stay counts one bed day


def _discharges(enc: dict):
    """Finished inpatient stays by the institution and the day of discharge."""
    if enc.get("status") != "finished" or _class(enc) != "IMP":
        return
    org = _org_of(enc.get("serviceProvider"))
    day = local_day((enc.get("period") or {}).get("end"))
    if org and day and _stay_days(enc) is not None:
        yield (org, day), 1


def _stay_bed_days(enc: dict):
    """Bed days of finished inpatient stays, by institution and day of discharge."""
    if enc.get("status") != "finished" or _class(enc) != "IMP":
        return
    org = _org_of(enc.get("serviceProvider"))
    day = local_day((enc.get("period") or {}).get("end"))
    days = _stay_days(enc)
    if org and day and days is not None:
        yield (org, day), days


def _hypertension(cond: dict):
    """Patients with an active hypertension diagnosis, by the institution that recorded it."""
    status = {c.get("code") for c in ((cond.get("clinicalStatus") or {}).get("coding") or [])}
    if not status & {"active", "recurrence", "relapse"}:
        return
    codes = [c for c in ((cond.get("code") or {}).get("coding") or []) if c.get("system") == ICD10]
    if not any(str(c.get("code", "")).startswith(HYPERTENSION_ICD10) for c in codes):
        return
    org = _source_org(cond)
    subject = ((cond.get("subject") or {}).get("reference") or "")
    if org and subject.startswith("Patient/"):
        yield (org, subject.split("/", 1)[1]), 1


VISITS = counters.Counter("stats.visits", frozenset({"Encounter"}), ("institution", "day"), _visits)
DISCHARGES = counters.Counter("stats.discharges", frozenset({"Encounter"}), ("institution", "day"), _discharges)
BED_DAYS = counters.Counter("stats.stay_bed_days", frozenset({"Encounter"}), ("institution", "day"), _stay_bed_days)
HYPERTENSION = counters.Counter("stats.hypertension", frozenset({"Condition"}), ("institution", "patient"),
                                _hypertension)
COUNTERS = (VISITS, DISCHARGES, BED_DAYS, HYPERTENSION)
CONSUMER = counters.consumer("stats-indicators", COUNTERS)


@dataclass(frozen=True)
class Indicator:
    """numerator / denominator × factor; ``distinct`` counts distinct keys (patients) instead of summing."""

    code: str
    name: str
    name_en: str
    numerator: counters.Counter
    denominator: counters.Counter | None = None
    factor: float = 1.0
    unit: str = ""
    distinct: str | None = None  # a dimension whose distinct values are counted
    per_day: bool = False        # the numerator is divided by the number of days in the range


INDICATORS = {i.code: i for i in (
    Indicator("OP_VISITS", "门急诊人次", "Outpatient and emergency visits", VISITS, unit="人次"),
    Indicator("OP_VISITS_PER_DAY", "日均门急诊人次", "Outpatient and emergency visits per day", VISITS, unit="人次/日",
              per_day=True),
    Indicator("DISCHARGES", "出院人数", "Discharges", DISCHARGES, unit="人"),
    Indicator("ALOS", "出院者平均住院日", "Average length of stay", BED_DAYS, DISCHARGES, 1.0, "日"),
    Indicator("HTN_MANAGED", "高血压患者管理人数", "Hypertension patients under management", HYPERTENSION,
              unit="人", distinct="patient"),
)}


def indicator(code: str) -> Indicator:
    """The indicator ``code`` (404 when unknown)."""
    if code not in INDICATORS:
        raise not_found(f"no indicator {code[:40]!r}")
    return INDICATORS[code]


def _sums(conn, counter: counters.Counter, start: str | None, end: str | None, distinct: str | None):
    """Per-institution values of a counter (day-filtered when it has a day dimension)."""
    rows = counters.read(conn, counter, by=counter.dimensions)
    out: dict[str, float] = defaultdict(float)
    seen: dict[str, set] = defaultdict(set)
    day_i = counter.dimensions.index("day") if "day" in counter.dimensions else None
    for key, value in rows.items():
        if day_i is not None and ((start and key[day_i] < start) or (end and key[day_i] > end)):
            continue
        if distinct:
            if value > 0:
                seen[key[0]].add(key[counter.dimensions.index(distinct)])
        else:
            out[key[0]] += value
    if distinct:
        return {org: float(len(s)) for org, s in seen.items()}
    return dict(out)


def compute(tx, code: str, *, unit: str | None = None, start: str | None = None, end: str | None = None,
            places: dict | None = None) -> dict:
    """The indicator for ``unit`` (province when None) and for each unit one level below, over the days
    ``start``..``end`` (inclusive, ``YYYY-MM-DD``), from the live counters."""
    ind = indicator(code)
    for d in (start, end):
        try:
            if d is not None and date.fromisoformat(d).isoformat() != d:
                raise ValueError(d)
        except ValueError:
            raise bad_request(f"day {d[:20]!r} must be a date YYYY-MM-DD") from None
    num = _sums(tx.conn, ind.numerator, start, end, ind.distinct)
    den = _sums(tx.conn, ind.denominator, start, end, None) if ind.denominator else None
    places = places if places is not None else {}
    for org in set(num) | set(den or {}):
        if org not in places:
            places[org] = orgunits.place_of(tx, org) or orgunits.Place(org, org, "", "", "")
    level = orgunits.unit_level(unit)

    def inside(p: orgunits.Place) -> bool:
        return {"province": not unit or p.province == unit, "city": p.city == unit,
                "county": p.county == unit, "institution": p.org == unit}[level]

    def child_of(p: orgunits.Place) -> tuple[str, str]:
        if level == "province":
            return p.city, orgunits.unit_name(p.city) if p.city else "（未定位）"
        if level == "city":
            return p.county, orgunits.unit_name(p.county) if p.county else "（未定位）"
        return p.org, p.name

    days = _days(start, end)
    groups: dict[str, list] = {}
    total = [0.0, 0.0]
    for org in set(num) | set(den or {}):
        p = places[org]
        if not inside(p):
            continue
        key, name = child_of(p)
        g = groups.setdefault(key, [name, 0.0, 0.0])
        g[1] += num.get(org, 0.0)
        g[2] += (den or {}).get(org, 0.0)
        total[0] += num.get(org, 0.0)
        total[1] += (den or {}).get(org, 0.0)

    def row(key, name, n, d):
        value = _value(ind, n, d, days)
        return {"unit": key, "name": name, "numerator": n, "denominator": d if ind.denominator else None,
                "value": value}

    children = [row(k, g[0], g[1], g[2]) for k, g in sorted(groups.items())]
    return {"indicator": ind.code, "name": ind.name, "nameEn": ind.name_en, "unit": ind.unit,
            "orgUnit": unit or "", "orgUnitName": orgunits.unit_name(unit) if unit else "全省",
            "start": start, "end": end, "total": row(unit or "", "合计", total[0], total[1]), "children": children}


def _days(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).days + 1


def _value(ind: Indicator, n: float, d: float, days: int | None) -> float | None:
    if ind.denominator is not None:
        return round(n / d * ind.factor, 4) if d else None
    if ind.per_day:
        return round(n / days, 4) if days else None
    return n * ind.factor


def suppress(result: dict, threshold: int = SMALL_CELL) -> dict:
    """The small-cell rule for public views: a numerator or denominator from 1 to ``threshold - 1``
    is withheld with its value (shown as ``"<threshold"``), so no table reveals a person."""
    def one(r: dict) -> dict:
        small = any(isinstance(r.get(k), (int, float)) and 0 < r[k] < threshold
                    for k in ("numerator", "denominator"))
        if not small:
            return r
        return {**r, "numerator": f"<{threshold}", "denominator": None if r.get("denominator") is None
                else "*", "value": None, "suppressed": True}
    return {**result, "total": one(result["total"]), "children": [one(c) for c in result["children"]],
            "smallCellRule": f"counts below {threshold} withheld"}
