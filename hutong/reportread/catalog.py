"""The items the interpreter knows (``data/analytes.csv``), the interval table
(``data/intervals.csv``) and the default critical-value table (``data/critical.csv``), and how an
Observation's code or name is matched to an item: LOINC first, then the Chinese names and
abbreviations hospitals print (谷丙转氨酶, ALT, 肌酐, Cr …)."""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEXES = ("male", "female", "any")
METHODS = ("", "without-p5p", "with-p5p", "enzymatic", "roche", "beckman")
RULES = (">=", ">", "<=", "<")


@dataclass(frozen=True)
class Analyte:
    key: str
    loinc: tuple[str, ...]
    name: str
    aliases: tuple[str, ...]
    unit: str                  # the reference unit (UCUM)
    molar_mass: float | None   # g/mol, for mass <-> substance conversions
    interval_key: str          # whose intervals apply (BUN uses urea's)
    category: str
    what: str
    high: str
    low: str


@dataclass(frozen=True)
class Interval:
    key: str
    sex: str
    age_min: float | None
    age_max: float | None      # exclusive
    method: str
    low: float | None
    high: float | None
    unit: str
    low_rule: str              # ">=": a value below low is low; ">": a value at low is low too
    high_rule: str             # "<=": a value above high is high; "<": a value at high is high too
    standard: str
    clause: str
    population: str
    note: str

    @property
    def source(self) -> str:
        return f"{self.standard}，{self.clause}，{self.population}"


@dataclass(frozen=True)
class Critical:
    key: str
    low: float | None
    high: float | None
    unit: str


def _float(text: str) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


@lru_cache(maxsize=1)
def analytes() -> dict[str, Analyte]:
    out = {}
    with open(DATA / "analytes.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["key"]] = Analyte(r["key"], tuple(x for x in r["loinc"].split("|") if x), r["name"],
                                    tuple(x for x in r["aliases"].split("|") if x), r["unit"], _float(r["molar_mass"]),
                                    r["interval_key"] or r["key"], r["category"], r["what"], r["high"], r["low"])
    return out


@lru_cache(maxsize=1)
def intervals() -> tuple[Interval, ...]:
    out = []
    with open(DATA / "intervals.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            out.append(Interval(r["key"], r["sex"], _float(r["age_min"]), _float(r["age_max"]), r["method"],
                                _float(r["low"]), _float(r["high"]), r["unit"], r["low_rule"], r["high_rule"],
                                r["standard"], r["clause"], r["population"], r["note"]))
    return tuple(out)


def read_critical_table(path: Path | None = None) -> dict[str, Critical]:
    """The critical-value table: the shipped default, or an institution's own CSV (same columns)."""
    out = {}
    with open(path or DATA / "critical.csv", encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            key = r["key"].strip().upper() if r["key"].strip().upper() in analytes() else r["key"].strip()
            if key not in analytes():
                raise ValueError(f"critical-value table: unknown item {r['key']!r}")
            out[key] = Critical(key, _float(r.get("low", "")), _float(r.get("high", "")), r["unit"].strip())
    return out


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").strip().lower()
    return re.sub(r"[\s\-_·:：]", "", text)


@lru_cache(maxsize=1)
def _by_loinc() -> dict[str, str]:
    return {code: a.key for a in analytes().values() for code in a.loinc}


@lru_cache(maxsize=1)
def _by_name() -> dict[str, str]:
    names: dict[str, str] = {}
    for a in analytes().values():
        for n in (a.name, a.key, *a.aliases):
            names.setdefault(_norm(n), a.key)
    return names


_PAREN = re.compile(r"[（(]([^()（）]*)[)）]")


def identify(loinc_codes: list[str], texts: list[str]) -> Analyte | None:
    """The item an Observation reports: by LOINC, else by name or abbreviation (谷丙转氨酶(ALT) works)."""
    table = analytes()
    for code in loinc_codes:
        key = _by_loinc().get(code)
        if key:
            return table[key]
    names = _by_name()
    for text in texts:
        if not text:
            continue
        candidates = [text, _PAREN.sub("", text), *_PAREN.findall(text)]
        for c in candidates:
            key = names.get(_norm(c))
            if key:
                return table[key]
    return None
