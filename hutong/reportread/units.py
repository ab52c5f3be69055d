"""Unit conversion: UCUM through ``ucumvert`` (a UCUM grammar and pint definitions made from the
official ucum-essence.xml), plus per-analyte molar masses for mass <-> substance conversions
(mmol/L <-> mg/dL), which UCUM alone cannot do.

A unit that cannot be parsed, or that has another dimension than the target with no molar mass
to bridge it, raises ``UnitError``: the caller says so instead of guessing.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

_LOCK = threading.Lock()
_REGISTRY = None

# How units are written on Chinese lab reports and in HIS messages -> UCUM.
_SPELLINGS = [
    (re.compile(r"^[x×*]?\s*10\s*(?:\^|\*\*|e|E|\*)?\s*([0-9]+)\s*/\s*(l|L)$"), r"10*\1/L"),
    (re.compile(r"^10\s*\^?\s*([0-9]+)\s*/\s*ul$", re.I), r"10*\1/uL"),
    (re.compile(r"^(k|K)/ul$"), "10*3/uL"), (re.compile(r"^(m|M)/ul$"), "10*6/uL"),
    (re.compile(r"^iu/l$", re.I), "[IU]/L"), (re.compile(r"^miu/ml$", re.I), "m[IU]/mL"),
    (re.compile(r"^u/l$", re.I), "U/L"),
]
_CASE = {"mmol/l": "mmol/L", "umol/l": "umol/L", "mg/dl": "mg/dL", "g/dl": "g/dL", "g/l": "g/L", "mg/l": "mg/L",
         "fl": "fL", "pg": "pg", "ng/ml": "ng/mL", "nmol/l": "nmol/L", "pmol/l": "pmol/L", "l/l": "L/L",
         "mmhg": "mm[Hg]", "g/ml": "g/mL", "mg/ml": "mg/mL"}


class UnitError(ValueError):
    """A unit that cannot be read or converted."""


def to_ucum(unit: str | None) -> str:
    """A unit as written on a report (μmol/L, ×10^9/L, IU/L) in UCUM (umol/L, 10*9/L, [IU]/L)."""
    text = unicodedata.normalize("NFKC", unit or "").strip()
    text = text.replace("µ", "u").replace("μ", "u").replace(" ", "")
    if text in ("", "1"):
        return "1"
    for pattern, repl in _SPELLINGS:
        if pattern.match(text):
            return pattern.sub(repl, text)
    return _CASE.get(text.lower(), text)


def _registry():
    global _REGISTRY
    with _LOCK:
        if _REGISTRY is None:
            from ucumvert import PintUcumRegistry

            _REGISTRY = PintUcumRegistry()
    return _REGISTRY


@lru_cache(maxsize=2048)
def _unit(code: str):
    try:
        return _registry().from_ucum(code)
    except Exception as exc:  # the parser raises lark and pint errors of several kinds
        raise UnitError(f"unknown unit {code!r}") from exc


@lru_cache(maxsize=4096)
def _factor(src: str, dst: str, molar_mass: float | None) -> float:
    """Multiply a value in ``src`` by this to get it in ``dst``."""
    a, b = _unit(src), _unit(dst)
    try:
        return float((1.0 * a).to(b).magnitude)
    except Exception:  # noqa: BLE001 - pint's DimensionalityError, among others
        pass
    if molar_mass:
        grams_per_mol = molar_mass * _unit("g/mol")  # from the same registry as the parsed units
        q = 1.0 * a
        try:  # mass concentration -> substance concentration
            return float((q / grams_per_mol).to(b).magnitude)
        except Exception:  # noqa: BLE001
            pass
        try:  # substance -> mass
            return float((q * grams_per_mol).to(b).magnitude)
        except Exception:  # noqa: BLE001
            pass
    raise UnitError(f"cannot convert {src} to {dst}" + ("" if molar_mass else " (no molar mass for this item)"))


def convert(value: float, unit: str | None, target: str, molar_mass: float | None = None) -> float:
    """``value`` in ``unit`` expressed in ``target`` (both as written or UCUM)."""
    src, dst = to_ucum(unit), to_ucum(target)
    if src == dst:
        return float(value)
    return float(value) * _factor(src, dst, molar_mass)


def same_dimension(unit: str | None, target: str) -> bool:
    """Whether two units convert into each other without a molar mass."""
    try:
        _factor(to_ucum(unit), to_ucum(target), None)
        return True
    except UnitError:
        return False
