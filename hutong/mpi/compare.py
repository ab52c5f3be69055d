"""Field comparisons: each turns a batch of record pairs into comparison levels (0 = best agreement).

Level ``-1`` means "a value is missing" (neutral weight). Levels are computed for many pairs at once with
numpy and rapidfuzz's element-wise ``cpdist`` so that batch deduplication stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein
from rapidfuzz.process import cpdist

from hutong.mpi import names
from hutong.mpi.features import FeatureTable

#: One comparison's result for a batch: levels (int8, -1 missing) and the term frequency to use per pair
#: (``nan`` where no term-frequency adjustment applies).
Result = tuple[np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class Comparison:
    """A named field comparison with ordered level labels (best first) and term-frequency levels."""

    name: str
    levels: tuple[str, ...]
    fn: Callable[[FeatureTable, np.ndarray, np.ndarray], Result]
    #: Features that must be filled for this comparison to be useful.
    needs: tuple[str, ...]
    #: Levels whose weight is adjusted by the value's frequency (common values say less).
    tf_levels: tuple[int, ...] = ()

    def __call__(self, t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
        return self.fn(t, i, j)


def _pick(col: list[str], idx: np.ndarray) -> list[str]:
    return [col[k] for k in idx.tolist()]


def _both(t: FeatureTable, name: str, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = t.codes(name)
    ci, cj = c[i], c[j]
    return ci, cj, (ci >= 0) & (cj >= 0)


def _sim(t: FeatureTable, name: str, i: np.ndarray, j: np.ndarray, mask: np.ndarray, scorer, other: str = "") -> np.ndarray:
    """Similarity (scorer output) for masked pairs; 0 elsewhere."""
    out = np.zeros(len(i), dtype=np.float64)
    sel = np.flatnonzero(mask)
    if len(sel):
        a = _pick(t.col(name), i[sel])
        b = _pick(t.col(other or name), j[sel])
        out[sel] = cpdist(a, b, scorer=scorer, workers=1, dtype=np.float64)
    return out


def _derived(t: FeatureTable, key: str, fn, source: str) -> np.ndarray:
    """A per-record integer array computed once from column ``source`` (cached on the table)."""
    got = t._codes.get("~" + key)
    if got is None:
        col = t.col(source)
        got = np.fromiter((fn(v) for v in col), dtype=np.int64, count=len(col))
        t._codes["~" + key] = got
    return got


def _derived_codes(t: FeatureTable, key: str, fn, source: str) -> np.ndarray:
    """Equality codes of ``fn(value)`` per record (-1 where ``fn`` gives ``""``), cached on the table."""
    got = t._codes.get("~" + key)
    if got is None:
        vocab: dict[str, int] = {}
        col = t.col(source)
        got = np.fromiter((-1 if not (x := fn(v)) else vocab.setdefault(x, len(vocab)) for v in col),
                          dtype=np.int64, count=len(col))
        t._codes["~" + key] = got
    return got


def _tf(t: FeatureTable, name: str, i: np.ndarray) -> np.ndarray:
    return t.frequencies(name)[i]


# --- names -----------------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 20)
def _chars_share_reading(x: str, y: str, first: bool) -> bool:
    rx = set(names.char_readings(x))
    ry = set(names.char_readings(y))
    if first:
        rx.add(names.SURNAME_READINGS.get(x, ""))
        ry.add(names.SURNAME_READINGS.get(y, ""))
    return bool((rx & ry) - {""})


def _readings_agree(a: str, b: str) -> bool:
    """Same length and every position shares a reading (heteronyms: 解 jie/xie ~ 谢 xie)."""
    if len(a) != len(b) or not a:
        return False
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y and not _chars_share_reading(x, y, k == 0):
            return False
    return True


def _pinyin_same(a: str, b: str) -> bool:
    """Same syllables whatever the order and spacing (wang wei / wei wang / wangwei)."""
    if not a or not b:
        return False
    if sorted(a.split()) == sorted(b.split()):
        return True
    sa, sb = a.replace(" ", ""), b.replace(" ", "")
    rb = "".join(reversed(b.split()))
    return sa == sb or sa == rb


def compare_name_zh(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Chinese full names: exact / homophone-or-variant / close / similar / same family only / different."""
    ci, cj, ok = _both(t, "name", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 5
    exact = ok & (ci == cj)
    pi, pj, _ = _both(t, "name_py", i, j)
    si, sj, _ = _both(t, "name_shape", i, j)
    fi, fj, _ = _both(t, "name_fpy", i, j)
    homo = ok & ~exact & (((pi == pj) & (pi >= 0)) | ((si == sj) & (si >= 0)))
    rest = ok & ~exact & ~homo
    col = t.col("name")
    nlen = _derived(t, "name_len", lambda c: len(c), "name")
    fp_i, fp_j, _ = _both(t, "family_py", i, j)
    # heteronyms only matter between names of one length whose surnames sound alike (解/谢 read xie)
    sel = np.flatnonzero(rest & (nlen[i] == nlen[j]) & (fp_i == fp_j))
    if len(sel):
        agree = [_readings_agree(col[a], col[b]) for a, b in zip(i[sel].tolist(), j[sel].tolist(), strict=True)]
        homo[sel[np.asarray(agree, dtype=bool)]] = True
        rest = ok & ~exact & ~homo
    cjk = t.codes("cjk")
    sel = np.flatnonzero(rest & (cjk[i] != cjk[j]))
    if len(sel):
        # one desk typed the name in pinyin (WANG Wei, Wang-Wei, wangwei), the other in characters
        py = t.col("name_py")
        same = [_pinyin_same(py[a], py[b]) for a, b in zip(i[sel].tolist(), j[sel].tolist(), strict=True)]
        homo[sel[np.asarray(same, dtype=bool)]] = True
        rest = ok & ~exact & ~homo
    jw = _sim(t, "name_py", i, j, rest, JaroWinkler.normalized_similarity)
    lev = _sim(t, "name", i, j, rest, Levenshtein.distance)
    sel = np.flatnonzero(rest & (lev == 2))
    swapped = np.zeros(len(i), dtype=bool)
    if len(sel):
        # given-name characters in the other order (张明伟 / 张伟明): same surname, same characters
        swapped[sel] = [col[a][:1] == col[b][:1] and sorted(col[a]) == sorted(col[b])
                        for a, b in zip(i[sel].tolist(), j[sel].tolist(), strict=True)]
    fam_i, fam_j, _ = _both(t, "family", i, j)
    same_fam = (fam_i == fam_j) & (fam_i >= 0)
    longer = np.fromiter((len(v) >= 3 for v in col), dtype=bool, count=len(col))
    fuzzy = rest & (fi == fj) & (fi >= 0)
    # one character wrong (typed a different character) but the surname agrees and the sound is near
    # (three characters or more: in 李明 / 李亮 the one character is the whole given name)
    one_char = rest & (lev <= 1) & same_fam & (jw >= 0.85) & longer[i] & longer[j]
    # the shared surname inflates whole-name similarity (zhang ming wei ~ zhang jian guo): the given names
    # must be alike as well
    gjw = _sim(t, "given_py", i, j, rest, JaroWinkler.normalized_similarity)
    gi, gj, gok = _both(t, "given_py", i, j)
    given_alike = ~gok | (gjw >= 0.75)
    close = fuzzy | one_char | swapped | (rest & (jw >= 0.94) & given_alike)
    similar = rest & ~close & (((jw >= 0.82) & given_alike) | ((lev <= 1) & longer[i] & longer[j]))
    lv[rest & ~close & ~similar & same_fam] = 4
    lv[similar] = 3
    lv[close] = 2
    lv[homo] = 1
    lv[exact] = 0
    tf = np.full(len(i), np.nan)
    tf[exact] = _tf(t, "name", i[exact])
    tf[homo] = _tf(t, "name_py", i[homo])
    return lv, tf


def _latin_part(t: FeatureTable, part: str, i: np.ndarray, j: np.ndarray) -> Result:
    """Latin given or family name, tolerant of given/family swaps between the two records."""
    other = "family" if part == "given" else "given"
    ci, cj, ok = _both(t, part, i, j)
    oi, oj, ok2 = _both(t, other, i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    anyv = (ci >= 0) | (cj >= 0)
    jw = _sim(t, part, i, j, ok, JaroWinkler.normalized_similarity)
    # swapped fields: this record's part equals the other's opposite part
    cross_ok = (ci >= 0) & (oj >= 0)
    jw_x = _sim(t, part, i, j, cross_ok, JaroWinkler.normalized_similarity, other=other)
    jw_x2 = _sim(t, other, i, j, (oi >= 0) & (cj >= 0), JaroWinkler.normalized_similarity, other=part)
    swapped = (jw_x >= 0.92) & (jw_x2 >= 0.92) & (jw < 0.92)
    best = np.where(swapped, np.minimum(jw_x, jw_x2), jw)
    ok_any = ok | swapped
    sx, sy, _ = _both(t, f"{part}_sx", i, j)
    lv[ok_any] = 3
    lv[ok_any & ((best >= 0.8) | ((sx == sy) & (sx >= 0)))] = 2
    lv[ok_any & (best >= 0.92)] = 1
    exact = ok & (ci == cj)
    lv[exact] = 0
    lv[~anyv] = -1
    tf = np.full(len(i), np.nan)
    tf[exact] = _tf(t, part, i[exact])
    return lv, tf


def compare_given(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Latin given names: exact / JW ≥ 0.92 / JW ≥ 0.8 or same soundex / different."""
    return _latin_part(t, "given", i, j)


def compare_family(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Latin family names: exact / JW ≥ 0.92 / JW ≥ 0.8 or same soundex / different."""
    return _latin_part(t, "family", i, j)


# --- dates, sex, ids, phones -------------------------------------------------------------------------------


def _day_number(b: str) -> int:
    if len(b) != 8:
        return -1
    try:
        return date(int(b[:4]), int(b[4:6]), int(b[6:])).toordinal()
    except ValueError:
        return -1


def _year(b: str) -> int:
    return int(b[:4]) if len(b) >= 4 and b[:4].isdigit() else -1


#: Month-days that a date made up from a stated age gets (1 January, 1 July) — or it is a year alone.
_AGE_DAYS = ("0101", "0701")


def compare_birth(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Birth dates: exact / day-month transposed / one digit off or two adjacent swapped (year typos 1985/1986,
    1985/1958 included) / within 60 days (a lunar birthday written as solar) / same year (or partial dates
    agreeing) / age-derived (a year only or YYYY-01-01 / -07-01, a year apart) / different / a generation apart
    (15+ years: parent and child)."""
    b, bsw = t.shared_codes("birth", "birth_sw")
    bi, bj = b[i], b[j]
    ok = (bi >= 0) & (bj >= 0)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 6
    col = t.col("birth")
    full = np.fromiter((len(v) == 8 for v in col), dtype=bool, count=len(col))
    both_full = ok & full[i] & full[j]
    exact = ok & (bi == bj)
    swapped = both_full & ~exact & (bsw[i] == bj) & (bsw[i] >= 0)
    rest = both_full & ~exact & ~swapped
    dl = np.full(len(i), 99.0)
    sel = np.flatnonzero(rest)
    if len(sel):
        dl[sel] = cpdist(_pick(col, i[sel]), _pick(col, j[sel]), scorer=DamerauLevenshtein.distance, workers=1)
    y, _, _ = _both(t, "birth_year", i, j)
    yj = t.codes("birth_year")[j]
    same_year = ok & ~exact & (y == yj) & (y >= 0)
    day = _derived(t, "birth_day", _day_number, "birth")
    near = rest & (day[i] >= 0) & (day[j] >= 0) & (np.abs(day[i] - day[j]) <= 60)
    yr = _derived(t, "birth_y", _year, "birth")
    gap = np.abs(yr[i] - yr[j])
    made_up = _derived(t, "birth_age", lambda v: 1 if len(v) in (4, 6) or v[4:] in _AGE_DAYS else 0, "birth")
    age_derived = ok & ~exact & (gap <= 1) & ((made_up[i] == 1) | (made_up[j] == 1))
    lv[ok & (yr[i] >= 0) & (yr[j] >= 0) & (gap >= 15)] = 7
    lv[age_derived] = 5
    lv[same_year] = 4
    lv[near] = 3
    lv[rest & (dl <= 1)] = 2
    lv[swapped] = 1
    lv[exact & both_full] = 0
    # partial dates (year or year-month only) that agree say as much as "same year"
    lv[exact & ~both_full] = 4
    return lv, None


def compare_sex(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Sex: same / different."""
    ci, cj, ok = _both(t, "sex", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 1
    lv[ok & (ci == cj)] = 0
    return lv, None


def compare_id(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """ID numbers: exact / one edit that the check digit flags (or cannot rule out) / near / different.

    Two *valid* resident IDs one digit apart are usually different people (twins get consecutive sequence
    numbers), so that case lands in "near", not in "typo".
    """
    ci, cj, ok = _both(t, "id", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 3
    exact = ok & (ci == cj)
    rest = ok & ~exact
    dl = np.full(len(i), 99.0)
    sel = np.flatnonzero(rest)
    if len(sel):
        dl[sel] = cpdist(_pick(t.col("id"), i[sel]), _pick(t.col("id"), j[sel]),
                         scorer=DamerauLevenshtein.distance, workers=1)
    valid = np.fromiter((bool(v) for v in t.col("id_valid")), dtype=bool, count=len(t))
    both_valid = valid[i] & valid[j]
    lv[rest & (dl <= 2)] = 2
    lv[rest & (dl <= 1) & ~both_valid] = 1
    lv[exact] = 0
    return lv, None


def id_conflict(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Both records carry *valid* resident IDs and they differ: almost surely two people (MOD 11-2 catches
    every single-digit error and adjacent swap, so a typo cannot turn one valid ID into another)."""
    ci, cj, ok = _both(t, "id", i, j)
    valid = np.fromiter((bool(v) for v in t.col("id_valid")), dtype=bool, count=len(t))
    return ok & (ci != cj) & valid[i] & valid[j]


def compare_phone(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Phones: exact / one digit off or swapped, or same last 8 digits / different. Shared numbers say less."""
    ci, cj, ok = _both(t, "phone", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 2
    exact = ok & (ci == cj)
    rest = ok & ~exact
    dl = _sim(t, "phone", i, j, rest, DamerauLevenshtein.distance)
    tc = _derived_codes(t, "phone_tail8", lambda v: v[-8:] if len(v) >= 8 else "", "phone")
    tail = rest & (tc[i] == tc[j]) & (tc[i] >= 0)
    lv[rest & ((dl <= 1) | tail)] = 1
    lv[exact] = 0
    tf = np.full(len(i), np.nan)
    tf[exact] = _tf(t, "phone", i[exact])
    return lv, tf


# --- places ----------------------------------------------------------------------------------------------


def compare_address(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Addresses: exact / very similar (≥ 0.9) / similar (≥ 0.75) / different (rapidfuzz WRatio)."""
    ci, cj, ok = _both(t, "address", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 3
    exact = ok & (ci == cj)
    rest = ok & ~exact
    # Chinese addresses have no words to reorder: plain similarity, plus the partial match (one address a
    # shortened form of the other, 吉林省长春市… / 长春市…) for clearly different lengths, as WRatio weighs it.
    # Latin addresses: token-set and WRatio.
    zh = _derived(t, "addr_cjk", lambda v: 1 if v and " " not in v and ord(max(v)) > 0x2E80 else 0, "address")
    alen = _derived(t, "addr_len", len, "address")
    both_zh = rest & (zh[i] == 1) & (zh[j] == 1)
    s = _sim(t, "address", i, j, both_zh, fuzz.ratio) / 100.0
    lr = np.maximum(alen[i], alen[j]) / np.maximum(1, np.minimum(alen[i], alen[j]))
    part = both_zh & (s < 0.9) & (lr >= 1.5)
    s = np.maximum(s, _sim(t, "address", i, j, part, fuzz.partial_ratio) / 100.0 * 0.9)
    latin = rest & ~both_zh
    s = np.maximum(s, _sim(t, "address", i, j, latin, fuzz.token_set_ratio) / 100.0)
    s = np.maximum(s, _sim(t, "address", i, j, latin, fuzz.WRatio) / 100.0)
    lv[rest & (s >= 0.75)] = 2
    lv[rest & (s >= 0.9)] = 1
    lv[exact] = 0
    return lv, None


def compare_address_code(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """Division codes (GB/T 2260): same county / same city / same province / different."""
    ci, cj, ok = _both(t, "address_code", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 3
    col = t.col("address_code")
    sel = np.flatnonzero(ok & (ci != cj))
    if len(sel):
        a, b = _pick(col, i[sel]), _pick(col, j[sel])
        lv[sel] = [1 if x[:4] == y[:4] else 2 if x[:2] == y[:2] else 3 for x, y in zip(a, b, strict=True)]
    lv[ok & (ci == cj)] = 0
    return lv, None


def _exact_or_typo(field: str, tf: bool = False) -> Callable[[FeatureTable, np.ndarray, np.ndarray], Result]:
    def fn(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
        ci, cj, ok = _both(t, field, i, j)
        lv = np.full(len(i), -1, dtype=np.int8)
        lv[ok] = 2
        exact = ok & (ci == cj)
        rest = ok & ~exact
        dl = _sim(t, field, i, j, rest, DamerauLevenshtein.distance)
        lv[rest & (dl <= 1)] = 1
        lv[exact] = 0
        tfa = None
        if tf:
            tfa = np.full(len(i), np.nan)
            tfa[exact] = _tf(t, field, i[exact])
        return lv, tfa

    fn.__doc__ = f"{field}: exact / one edit / different."
    return fn


def compare_city(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
    """City / suburb: exact / JW ≥ 0.9 / different (common places say less)."""
    ci, cj, ok = _both(t, "city", i, j)
    lv = np.full(len(i), -1, dtype=np.int8)
    lv[ok] = 2
    exact = ok & (ci == cj)
    jw = _sim(t, "city", i, j, ok & ~exact, JaroWinkler.normalized_similarity)
    lv[ok & ~exact & (jw >= 0.9)] = 1
    lv[exact] = 0
    tf = np.full(len(i), np.nan)
    tf[exact] = _tf(t, "city", i[exact])
    return lv, tf


def _exact(field: str) -> Callable[[FeatureTable, np.ndarray, np.ndarray], Result]:
    def fn(t: FeatureTable, i: np.ndarray, j: np.ndarray) -> Result:
        ci, cj, ok = _both(t, field, i, j)
        lv = np.full(len(i), -1, dtype=np.int8)
        lv[ok] = 1
        lv[ok & (ci == cj)] = 0
        return lv, None

    fn.__doc__ = f"{field}: same / different."
    return fn


NAME_ZH = Comparison("name", ("exact", "homophone_or_variant", "close", "similar", "family_only", "different"),
                     compare_name_zh, ("name",), tf_levels=(0, 1))
GIVEN = Comparison("given", ("exact", "jw92", "jw80_or_soundex", "different"), compare_given, ("given",), (0,))
FAMILY = Comparison("family", ("exact", "jw92", "jw80_or_soundex", "different"), compare_family, ("family",), (0,))
BIRTH = Comparison("birth_date", ("exact", "day_month_swapped", "one_digit", "within_60_days", "same_year",
                                  "age_derived", "different", "generation_apart"), compare_birth, ("birth",))
SEX = Comparison("gender", ("same", "different"), compare_sex, ("sex",))
ID = Comparison("id_number", ("exact", "typo_check_digit", "near", "different"), compare_id, ("id",))
PHONE = Comparison("phone", ("exact", "one_digit_or_tail", "different"), compare_phone, ("phone",), (0,))
ADDRESS = Comparison("address", ("exact", "sim90", "sim75", "different"), compare_address, ("address",))
ADDRESS_CODE = Comparison("address_code", ("same_county", "same_city", "same_province", "different"),
                          compare_address_code, ("address_code",))
POSTCODE = Comparison("postcode", ("exact", "one_digit", "different"), _exact_or_typo("postcode", tf=True),
                      ("postcode",), (0,))
CITY = Comparison("city", ("exact", "jw90", "different"), compare_city, ("city",), (0,))
STATE = Comparison("state", ("same", "different"), _exact("state"), ("state",))
IDENTIFIER = Comparison("identifier", ("same", "different"), _exact("identifier"), ("identifier",))
#: A parent's resident ID on a child's record (see :func:`hutong.mpi.features.is_guardian_id`): shared by the
#: child's records, but by its siblings' too, so it weighs like a household phone, never like an ID.
GUARDIAN = Comparison("guardian_id", ("same", "different"), _exact("guardian_id"), ("guardian_id",))

ALL = (NAME_ZH, GIVEN, FAMILY, BIRTH, SEX, ID, PHONE, ADDRESS, ADDRESS_CODE, POSTCODE, CITY, STATE, IDENTIFIER,
       GUARDIAN)
BY_NAME = {c.name: c for c in ALL}


def choose_comparisons(t: FeatureTable, *, min_filled: float = 0.02) -> list[Comparison]:
    """The comparisons that suit this data: Chinese full-name mode when most names are Chinese, else
    Latin given/family; fields filled in fewer than ``min_filled`` of the records are left out."""
    cjk = t.filled("cjk")
    named = t.filled("name")
    out: list[Comparison] = []
    if named > 0 and cjk >= 0.5 * named:
        out.append(NAME_ZH)
    elif named > 0:
        out += [GIVEN, FAMILY]
    for c in (BIRTH, SEX, ID, PHONE, ADDRESS, ADDRESS_CODE, POSTCODE, CITY, STATE, IDENTIFIER, GUARDIAN):
        # a guardian's ID is on children's records only (~1 in 100): rare by nature, still worth its weight
        least = min_filled / 20 if c is GUARDIAN else min_filled
        if all(t.filled(n) >= least for n in c.needs):
            out.append(c)
    return out


def online_comparisons() -> list[Comparison]:
    """Full comparison set for the online index (Chinese names; Latin names fall back to pinyin similarity)."""
    return [NAME_ZH, BIRTH, SEX, ID, PHONE, ADDRESS, ADDRESS_CODE, POSTCODE, CITY, STATE, IDENTIFIER, GUARDIAN]


_SHARED: dict = {}


def _compare_chunk(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    comps, t, i, j = _SHARED["job"]
    lo, hi = bounds
    g, tf = _compare_serial(comps, t, i[lo:hi], j[lo:hi])
    return g, tf.astype(np.float32)


def compare_all(comps: list[Comparison], t: FeatureTable, i: np.ndarray, j: np.ndarray, *,
                workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Levels (pairs × comparisons, int8) and term frequencies (float, nan where none) for every comparison.

    Many pairs are split over ``workers`` forked processes (0 = one per CPU) sharing the table copy-on-write."""
    import os

    workers = workers or (os.cpu_count() or 1)
    n = len(i)
    if workers <= 1 or n < 200_000 or os.name != "posix":
        return _compare_serial(comps, t, i, j)
    import multiprocessing as mp

    for name in t.columns:  # build the equality codes once, before forking, so workers share them
        t.codes(name)
    t.shared_codes("birth", "birth_sw")
    for c in comps:
        if c.tf_levels:
            for name in ("name", "name_py", "given", "family", "phone", "postcode", "city"):
                t.frequencies(name)
    _SHARED["job"] = (comps, t, i, j)
    step = -(-n // (workers * 3))
    bounds = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_compare_chunk, bounds)
    finally:
        _SHARED.clear()
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(np.float64)


def _compare_serial(comps: list[Comparison], t: FeatureTable, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(i)
    gamma = np.full((n, len(comps)), -1, dtype=np.int8)
    tf = np.full((n, len(comps)), np.nan)
    for k, c in enumerate(comps):
        lv, tfa = c(t, i, j)
        gamma[:, k] = lv
        if tfa is not None:
            tf[:, k] = tfa
    return gamma, tf
