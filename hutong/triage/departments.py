"""The national list of clinical departments (《医疗机构诊疗科目名录》) shipped as data.

Codes are the list's own: two digits for a department (``03`` 内科), ``NN.NN`` for a
subdivision (``03.01`` 呼吸内科专业). ``resolve`` maps the names hospitals and consultation sites
use (心内科, 普外科, 男科 …) onto codes, so an operator's own labelled questions can train a model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Department:
    """One entry of the national list."""

    code: str
    name: str        # the list's own name (呼吸内科专业)
    common: str      # the name residents see on hospital signs (呼吸内科)
    en: str          # the English name shown on English pages (Respiratory Medicine)
    aliases: tuple[str, ...]

    @property
    def parent(self) -> str | None:
        return self.code.rsplit(".", 1)[0] if "." in self.code else None


@lru_cache(maxsize=1)
def departments() -> dict[str, Department]:
    """Every department of the list, by code."""
    out: dict[str, Department] = {}
    with open(DATA / "departments.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            aliases = tuple(a for a in (row["aliases"] or "").split("|") if a)
            out[row["code"]] = Department(row["code"], row["name"], row["common"], row["en"], aliases)
    return out


def department(code: str) -> Department:
    """The department with ``code`` (KeyError when the list has none)."""
    return departments()[code]


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    names: dict[str, str] = {}
    for d in departments().values():
        for n in (d.code, d.name, d.common, *d.aliases):
            names.setdefault(n.strip().lower(), d.code)
    return names


def resolve(label: str) -> str | None:
    """The code for a department label (a code, the list's name, a common name or alias), or None."""
    text = (label or "").strip().lower()
    if not text:
        return None
    names = _names()
    if text in names:
        return names[text]
    # "心内科/高血压" style labels: the part before the slash names the department.
    head = text.split("/", 1)[0].strip()
    return names.get(head)


def matches(predicted: str, expected: str) -> bool:
    """Whether a predicted code answers an expected one: the same department or one of its
    subdivisions (``03.04`` answers ``03``; ``03`` does not answer ``03.04``)."""
    return predicted == expected or predicted.startswith(expected + ".")
