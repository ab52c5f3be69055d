"""Normalise raw demographic records into matching features, held column-wise for fast batch comparison.

A *raw record* is a dict with any of the fields in :data:`FIELDS` (strings). :func:`normalize_record`
turns it into a dict of features; :class:`FeatureTable` holds many of them as columns (lists of ``str``,
``""`` meaning missing) and lazily builds integer codes for equality tests in numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import numpy as np

from hutong.china import ids
from hutong.mpi import names

#: Input fields understood by the matcher (batch CSV mapping, FHIR Patient extraction).
FIELDS = (
    "record_id", "name", "family", "given", "gender", "birth_date", "id_number", "identifier",
    "phone", "address", "address_code", "postcode", "city", "state", "source",
)

#: Feature columns produced by :func:`normalize_record`.
FEATURES = (
    "cjk", "name", "family", "given", "name_py", "name_fpy", "name_shape", "family_py", "given_py",
    "family_sx", "given_sx", "birth", "birth_sw", "birth_year", "sex", "id", "id_valid", "id_checkable",
    "phone", "address", "address_code", "postcode", "city", "state", "identifier", "placeholder", "guardian_id",
    "source",
)

#: Features whose values are term-frequency counted (batch: over the file; online: over the whole index).
TF_FEATURES = ("name", "name_py", "given", "family", "phone", "postcode", "city")

_DATE_SEP = re.compile(r"^\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:[-/.月]\s*(\d{1,2})\s*日?)?\s*(?:[T ].*)?$")
_DIGITS = re.compile(r"\D+")
_CN_DIGITS = str.maketrans("〇零一二三四五六七八九", "00123456789")
_ADDR_DROP = re.compile(r"[\s,，.。;；:：、()（）\[\]【】#＃\-—_/\\'\"“”]+")

_SEX = {
    "m": "m", "male": "m", "man": "m", "男": "m", "男性": "m", "1": "m",
    "f": "f", "female": "f", "woman": "f", "女": "f", "女性": "f", "2": "f",
    "unknown": "", "u": "", "未知": "", "0": "", "9": "", "other": "o", "o": "o",
}


def parse_birth(value: str) -> str:
    """Birth date as ``YYYYMMDD``, ``YYYYMM`` or ``YYYY`` (partial dates kept), or ``""`` if unreadable."""
    value = (value or "").strip()
    if not value:
        return ""
    value = names.fold_width(value)
    digits = _DIGITS.sub("", value)
    m = _DATE_SEP.match(value)
    if m:
        y, mo, d = m.group(1), int(m.group(2)), m.group(3)
        if not 1 <= mo <= 12:
            return y
        if d is None:
            return f"{y}{mo:02d}"
        return f"{y}{mo:02d}{int(d):02d}"
    if len(digits) == 8 and value.replace(" ", "").isdigit():
        return digits
    if len(digits) in (4, 6) and value.isdigit():
        return digits
    if len(digits) >= 8:  # timestamps such as 1985-03-04T00:00:00Z handled above; 19850304xxxx here
        return digits[:8]
    return ""


def _swap_day_month(b: str) -> str:
    return b[:4] + b[6:8] + b[4:6] if len(b) == 8 else ""


def normalize_sex(value: str) -> str:
    """``m``/``f``/``o`` for recognised codes (FHIR, GB/T 2261.1, 男/女); other codes kept as given."""
    v = (value or "").strip().lower()
    if v in _SEX:
        return _SEX[v]
    return v


def normalize_phone(value: str) -> str:
    """Digits of the first phone number; +86/0086 dropped; mobile numbers as 11 digits."""
    value = names.fold_width(value or "")
    first = re.split(r"[,;，；/、|]", value)[0]
    digits = _DIGITS.sub("", first)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def normalize_id(value: str) -> tuple[str, bool, bool]:
    """(normalised id, valid 18-digit resident id?, check digit applicable?). 15-digit ids are upgraded."""
    v = ids.normalize_resident_id(names.fold_width(value or ""))
    v = re.sub(r"[^0-9A-Z]", "", v)
    if len(v) == 15 and v.isdigit() and ids.resident_id_birth_date(v) is not None:
        v = ids.upgrade_resident_id(v)
    checkable = len(v) == 18 and v[:17].isdigit() and (v[17].isdigit() or v[17] == "X")
    valid = checkable and ids.is_valid_resident_id(v)
    return v, valid, checkable


def is_guardian_id(id18: str, birth: str) -> bool:
    """True when a valid resident ID cannot be this record's own: the birth date it encodes is 12+ years from
    the record's birth date (``YYYY…``), and not by one mistyped or swapped digit of the year on an otherwise
    identical date (1985-03-04 / 1958-03-04 is a typo, not a parent). Registration desks put a parent's ID on a
    child's (and a newborn's) record."""
    id_birth = id18[6:14]
    if not id_birth.isdigit() or len(birth) < 4 or not birth[:4].isdigit():
        return False
    gap = abs(int(id_birth[:4]) - int(birth[:4]))
    if gap < 12:
        return False
    ya, yb = id_birth[:4], birth[:4]
    one_edit = sum(x != y for x, y in zip(ya, yb, strict=True)) == 1 or any(
        ya == yb[:k] + yb[k + 1] + yb[k] + yb[k + 2:] for k in range(3))
    return not (one_edit and len(birth) == 8 and birth[4:] == id_birth[4:])


def normalize_address(value: str) -> str:
    """Address text folded for comparison: width, simplified characters, Chinese digits, no punctuation."""
    value = names.fold_width(value or "").lower()
    if names.has_cjk(value):
        value = names.to_simplified(value).translate(_CN_DIGITS)
        return _ADDR_DROP.sub("", value)
    return " ".join(_ADDR_DROP.sub(" ", value).split())


def _place(value: str, suffixes: tuple[str, ...]) -> str:
    value = names.fold_width(value or "").strip().lower()
    if names.has_cjk(value):
        value = names.to_simplified(re.sub(r"\s+", "", value))
        for s in suffixes:
            if value.endswith(s) and len(value) > len(s) + 1:
                return value[: -len(s)]
        return value
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", value).split())


_NAME_KEYS = ("cjk", "name", "family", "given", "name_py", "name_fpy", "name_shape", "family_py", "given_py",
              "family_sx", "given_sx", "placeholder")


@lru_cache(maxsize=1 << 20)
def _name_features(full: str, fam: str, giv: str) -> tuple[str, ...]:
    """Name features (in :data:`_NAME_KEYS` order) of one (name, family, given); cached per distinct value, so
    a province's million records cost one pinyin conversion per distinct name."""
    text = full or (fam + giv if names.has_cjk(fam + giv) else f"{giv} {fam}".strip())
    f = dict.fromkeys(_NAME_KEYS, "")
    if names.is_placeholder_name(text):
        # 张丽之子, 新生儿, 无名氏: the name is not the person's (a baby's first record, an unknown patient).
        # Left out of the comparison, so that a mother's name never links her baby to her.
        # kept folded (王丽之子一 ≠ 王丽之子二: numbered twins), so two placeholders can be told apart
        f["placeholder"] = re.sub(r"\s+", "", names.to_simplified(names.fold_width(text))) or "1"
        text = ""
    if text and names.has_cjk(text):
        n = names.normalize_cjk_name(text)
        if fam and giv and not full:
            family, given = names.normalize_cjk_name(fam), names.normalize_cjk_name(giv)
        else:
            family, given = names.split_cjk_name(n)
        f["cjk"] = "1"
        f["name"] = n
        f["family"], f["given"] = family, given
        f["family_py"] = names.family_pinyin(family)
        f["given_py"] = names.given_pinyin(given)
        f["name_py"] = f"{f['family_py']} {f['given_py']}".strip()
        f["name_fpy"] = names.fuzzy_pinyin(f["name_py"])
        f["name_shape"] = names.shape_key(n)
    elif text:
        family = names.normalize_latin_name(fam)
        given = names.normalize_latin_name(giv)
        if full and not (family or given):
            parts = names.normalize_latin_name(full).split()
            if parts:
                # "Given Family" is the common Latin order; "FAMILY, Given" is handled by the comma.
                if "," in full:
                    family, given = parts[0], " ".join(parts[1:])
                else:
                    family, given = parts[-1], " ".join(parts[:-1])
        f["name"] = f"{given} {family}".strip()
        f["family"], f["given"] = family, given
        f["family_py"], f["given_py"] = family, given
        f["name_py"] = f["name"]
        f["name_fpy"] = " ".join(names.soundex(p) for p in f["name"].split())
        f["name_shape"] = f["name"]
    f["family_sx"] = names.soundex(f["family_py"].replace(" ", ""))
    f["given_sx"] = names.soundex(f["given_py"].replace(" ", ""))
    return tuple(f[k] for k in _NAME_KEYS)


_parse_birth_cached = lru_cache(maxsize=1 << 18)(lambda v: parse_birth(v))
_address_cached = lru_cache(maxsize=1 << 18)(lambda v: normalize_address(v))
_city_cached = lru_cache(maxsize=1 << 16)(lambda v: _place(v, ("市", "县", "区")))
_state_cached = lru_cache(maxsize=1 << 12)(lambda v: _place(v, ("省", "自治区", "市")))


def _get(raw: dict, k: str) -> str:
    v = raw.get(k)
    if v is None:
        return ""
    return v.strip() if isinstance(v, str) else str(v)


def normalize_record(raw: dict) -> dict:
    """Features of one raw record (see :data:`FEATURES`). Missing values are ``""``."""
    f = dict(zip(_NAME_KEYS, _name_features(_get(raw, "name"), _get(raw, "family"), _get(raw, "given")), strict=True))
    idv, valid, checkable = normalize_id(_get(raw, "id_number"))
    f["id"], f["id_valid"], f["id_checkable"] = idv, "1" if valid else "", "1" if checkable else ""
    birth = _parse_birth_cached(_get(raw, "birth_date"))
    f["guardian_id"] = ""
    if valid and birth and is_guardian_id(idv, birth):
        # a child registered with a parent's ID: evidence of the guardian, not of who this is
        f["guardian_id"], idv, valid, checkable = idv, "", False, False
        f["id"], f["id_valid"], f["id_checkable"] = "", "", ""
    if not birth and valid:
        bd = ids.resident_id_birth_date(idv)
        birth = bd.strftime("%Y%m%d") if isinstance(bd, date) else ""
    f["birth"] = birth
    f["birth_sw"] = _swap_day_month(birth)
    f["birth_year"] = birth[:4]
    sex = normalize_sex(_get(raw, "gender"))
    if not sex and valid:
        sex = "m" if ids.resident_id_sex(idv) == "male" else "f"
    f["sex"] = sex
    f["phone"] = normalize_phone(_get(raw, "phone"))
    f["address"] = _address_cached(_get(raw, "address"))
    code = _DIGITS.sub("", _get(raw, "address_code"))
    f["address_code"] = code[:6] if len(code) >= 6 else code
    f["postcode"] = _DIGITS.sub("", _get(raw, "postcode"))
    f["city"] = _city_cached(_get(raw, "city"))
    f["state"] = _state_cached(_get(raw, "state"))
    f["identifier"] = re.sub(r"\s+", "", _get(raw, "identifier")).upper()
    # the institution that registered the record: twins' placeholder records come from one birth hospital
    f["source"] = _get(raw, "source")
    return f


def _normalize_chunk(raws: list[dict]) -> list[tuple[str, ...]]:
    return [tuple(f[k] for k in FEATURES) for f in map(normalize_record, raws)]


def normalize_many(raws: list[dict], *, workers: int = 0) -> FeatureTable:
    """Normalise many raw records into a :class:`FeatureTable`, on ``workers`` processes (0 = one per CPU,
    only when there are enough records to repay starting them)."""
    import os

    n = len(raws)
    workers = workers or (os.cpu_count() or 1)
    if workers <= 1 or n < 50_000:
        rows = _normalize_chunk(raws)
    else:
        import multiprocessing as mp

        step = -(-n // (workers * 4))
        chunks = [raws[k:k + step] for k in range(0, n, step)]
        with mp.get_context("fork").Pool(workers) as pool:
            rows = [r for part in pool.map(_normalize_chunk, chunks) for r in part]
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in FEATURES]
    return FeatureTable({k: list(c) for k, c in zip(FEATURES, cols, strict=True)})


@dataclass
class FeatureTable:
    """Column-wise features of many records, with cached integer codes for equality comparisons."""

    columns: dict[str, list[str]]
    _codes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _vocab: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    #: Frequencies supplied from outside (online: counts over the whole index), feature → per-record array.
    freq_override: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_records(cls, records: list[dict]) -> FeatureTable:
        """Build from already normalised feature dicts."""
        return cls({k: [r.get(k, "") for r in records] for k in FEATURES})

    @classmethod
    def from_raw(cls, raws: list[dict]) -> FeatureTable:
        """Normalise raw records and build the table."""
        return cls.from_records([normalize_record(r) for r in raws])

    def __len__(self) -> int:
        return len(self.columns["name"])

    def col(self, name: str) -> list[str]:
        """The raw string column."""
        return self.columns[name]

    def codes(self, name: str) -> np.ndarray:
        """Integer code per record (equal values share a code); ``-1`` for missing."""
        got = self._codes.get(name)
        if got is None:
            vocab: dict[str, int] = {}
            col = self.columns[name]
            arr = np.fromiter(
                (-1 if not v else vocab.setdefault(v, len(vocab)) for v in col), dtype=np.int64, count=len(col)
            )
            self._codes[name], self._vocab[name] = arr, vocab
            got = arr
        return got

    def shared_codes(self, name: str, other_col: str) -> tuple[np.ndarray, np.ndarray]:
        """Codes for two columns over one shared vocabulary (e.g. ``birth`` vs ``birth_sw``)."""
        self.codes(name)
        vocab = dict(self._vocab[name])
        col = self.columns[other_col]
        arr = np.fromiter(
            (-1 if not v else vocab.setdefault(v, len(vocab)) for v in col), dtype=np.int64, count=len(col)
        )
        return self._codes[name], arr

    def frequencies(self, name: str) -> np.ndarray:
        """Relative frequency of each record's value among non-missing values (term frequency); 0 if missing."""
        got = self.freq_override.get(name)
        if got is not None:
            return got
        c = self.codes(name)
        valid = c >= 0
        if not valid.any():
            return np.zeros(len(c))
        counts = np.bincount(c[valid])
        out = np.zeros(len(c))
        out[valid] = counts[c[valid]] / valid.sum()
        return out

    def filled(self, name: str) -> float:
        """Share of records with a value in column ``name``."""
        col = self.columns[name]
        return sum(1 for v in col if v) / max(1, len(col))

    @staticmethod
    def concat(a: FeatureTable, b: FeatureTable) -> FeatureTable:
        """Both tables' records, ``a`` first."""
        return FeatureTable({k: a.columns[k] + b.columns[k] for k in FEATURES})
