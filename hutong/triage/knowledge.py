"""The triage knowledge base: symptoms, body parts, conditions and requests -> departments.

Written by the Hutong team in its own words (``data/knowledge.tsv``). It gives the shipped model
its training questions (``hutong.triage.synth``), the reasons shown beside each department, and
the keyword baseline the benchmark compares against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hutong.triage.text import negated

DATA = Path(__file__).resolve().parent / "data"
KINDS = ("symptom", "disease", "body", "need")


@dataclass(frozen=True)
class Entry:
    code: str
    kind: str
    term: str


@lru_cache(maxsize=1)
def entries() -> tuple[Entry, ...]:
    """Every (department, kind, term) of the knowledge base, in file order."""
    out: list[Entry] = []
    for line in (DATA / "knowledge.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        code, kind, terms = line.split("\t")
        if kind not in KINDS:
            raise ValueError(f"knowledge.tsv: unknown kind {kind!r}")
        out.extend(Entry(code, kind, t.strip().lower()) for t in terms.split("|") if t.strip())
    return tuple(out)


def by_department() -> dict[str, dict[str, list[str]]]:
    """``{code: {kind: [terms]}}``."""
    out: dict[str, dict[str, list[str]]] = {}
    for e in entries():
        out.setdefault(e.code, {}).setdefault(e.kind, []).append(e.term)
    return out


@lru_cache(maxsize=1)
def _by_length() -> tuple[Entry, ...]:
    return tuple(sorted(entries(), key=lambda e: -len(e.term)))


def matched_terms(text: str) -> dict[str, list[str]]:
    """Knowledge-base terms found in ``text`` (normalised), by department: longest terms first,
    each stretch of text counted once, negated mentions skipped."""
    taken = [False] * len(text)
    found: dict[str, list[str]] = {}
    for e in _by_length():
        if e.kind == "body" and len(e.term) < 2:
            continue  # single-character body parts (腰, 头) match too much on their own
        start = text.find(e.term)
        while start >= 0:
            end = start + len(e.term)
            if not any(taken[start:end]) and not negated(text, start):
                for i in range(start, end):
                    taken[i] = True
                terms = found.setdefault(e.code, [])
                if e.term not in terms:
                    terms.append(e.term)
            start = text.find(e.term, end)
    return found


def keyword_scores(text: str) -> dict[str, float]:
    """The keyword baseline: per department, the number of its terms in the text weighted by length."""
    return {code: float(sum(len(t) for t in terms)) for code, terms in matched_terms(text).items()}
