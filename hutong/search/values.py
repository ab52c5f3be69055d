"""Value helpers shared by indexing and querying: string normalisation, FHIR dates as µs ranges, numbers."""

from __future__ import annotations

import calendar
import re
import unicodedata
from decimal import Decimal, InvalidOperation

MIN_US = -62135596800 * 1_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253402300799 * 1_000_000 + 999_999  # 9999-12-31T23:59:59.999999Z
BIG = 1e308
NORM_MAX = 255
EXACT_MAX = 1000

_WS = re.compile(r"\s+")
_ASCII_SAFE = re.compile(r"[ -~]*")


def norm(s: str) -> str:
    """Lower-case, strip accents (NFKD minus combining marks), collapse white space; for string search."""
    if _ASCII_SAFE.fullmatch(s):
        out = s.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", s)
        out = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    if "  " in out or "\n" in out or "\t" in out:
        out = _WS.sub(" ", out)
    return out.strip()[:NORM_MAX]


_DATE = re.compile(
    r"(-?\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def date_range(value: str) -> tuple[int, int] | None:
    """The inclusive µs range a FHIR date/dateTime/instant covers given its precision; ``None`` if invalid."""
    m = _DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        year = int(y)
        if not 1 <= year <= 9999:
            return None
        if mo is None:
            lo = calendar.timegm((year, 1, 1, 0, 0, 0)) * 1_000_000
            hi = calendar.timegm((year + 1, 1, 1, 0, 0, 0)) * 1_000_000 - 1 if year < 9999 else MAX_US
            return lo, hi
        month = int(mo)
        if not 1 <= month <= 12:
            return None
        if d is None:
            lo = calendar.timegm((year, month, 1, 0, 0, 0)) * 1_000_000
            ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
            hi = calendar.timegm((ny, nm, 1, 0, 0, 0)) * 1_000_000 - 1 if ny <= 9999 else MAX_US
            return lo, hi
        day = int(d)
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            return None
        if hh is None:
            lo = calendar.timegm((year, month, day, 0, 0, 0)) * 1_000_000
            return lo, lo + 86_400_000_000 - 1
        h, mnt = int(hh), int(mi)
        sec = int(ss) if ss is not None else 0
        if h > 23 or mnt > 59 or sec > 60:
            return None
        base = calendar.timegm((year, month, day, h, mnt, min(sec, 59), 0))
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            base -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
        lo = base * 1_000_000
        if ss is None:
            width = 60_000_000
        elif frac is None:
            width = 1_000_000
        else:
            digits = frac[:6]
            lo += int(digits.ljust(6, "0"))
            width = 10 ** (6 - len(digits)) if len(frac) <= 6 else 1
        return lo, lo + width - 1
    except (ValueError, OverflowError):
        return None


def period_range(p: dict) -> tuple[int, int] | None:
    """Range of a Period (open ends unbounded); ``None`` when it has neither start nor end."""
    s, e = p.get("start"), p.get("end")
    if s is None and e is None:
        return None
    lo = date_range(s)[0] if s and date_range(s) else MIN_US
    hi = date_range(e)[1] if e and date_range(e) else MAX_US
    return lo, hi


def timing_range(t: dict) -> tuple[int, int] | None:
    """Range of a Timing: from the first to the last event, widened by ``repeat.boundsPeriod``."""
    lows, highs = [], []
    for ev in t.get("event") or []:
        r = date_range(ev)
        if r:
            lows.append(r[0])
            highs.append(r[1])
    bp = (t.get("repeat") or {}).get("boundsPeriod")
    if isinstance(bp, dict):
        r = period_range(bp)
        if r:
            lows.append(r[0])
            highs.append(r[1])
    if not lows:
        return None
    return min(lows), max(highs)


def to_float(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def number_query_range(text: str) -> tuple[float, float, float]:
    """``(value, low, high)`` for a search number: the implicit precision range of its significant digits."""
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if not d.is_finite():
        raise ValueError(text)
    exp = d.as_tuple().exponent
    half = Decimal(5).scaleb(exp - 1)
    return float(d), float(d - half), float(d + half)
