"""Accuracy of a department ranker on labelled questions: top-1, top-3, per department and a
confusion table. Used by ``hutong triage eval`` and the benchmark."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hutong.triage.departments import matches

#: A ranker: question -> department codes, best first.
Ranker = Callable[[str], Sequence[str]]


@dataclass
class Scores:
    """Counts behind the figures."""

    n: int = 0
    top1: int = 0
    top3: int = 0
    per_label: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    confusion: Counter = field(default_factory=Counter)

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.n if self.n else 0.0

    @property
    def top3_rate(self) -> float:
        return self.top3 / self.n if self.n else 0.0


def evaluate(rank: Ranker, items: Sequence[tuple[str, Sequence[str], str]]) -> Scores:
    """Score ``rank`` on ``(text, acceptable codes, label)`` items."""
    s = Scores()
    for text, codes, label in items:
        ranked = list(rank(text))
        hit1 = bool(ranked) and any(matches(ranked[0], c) for c in codes)
        hit3 = any(matches(r, c) for r in ranked[:3] for c in codes)
        s.n += 1
        s.top1 += hit1
        s.top3 += hit3
        row = s.per_label[label]
        row[0] += 1
        row[1] += hit1
        row[2] += hit3
        s.confusion[(label, ranked[0] if ranked else "-")] += 1
    return s


def confusion_table(s: Scores, names: Callable[[str], str] = str, width: int = 8) -> str:
    """The confusion table as text: one row per expected label, the most frequent predictions."""
    rows = []
    labels = sorted(s.per_label, key=lambda x: -s.per_label[x][0])
    for label in labels:
        preds = sorted(((p, n) for (lab, p), n in s.confusion.items() if lab == label), key=lambda x: -x[1])
        total = s.per_label[label][0]
        cells = "  ".join(f"{names(p)} {n / total:.0%}" for p, n in preds[:width])
        rows.append(f"{label:<14} n={total:<5} {cells}")
    return "\n".join(rows)


def summary(s: Scores) -> str:
    return f"n={s.n}  top-1 {s.top1_rate:.1%}  top-3 {s.top3_rate:.1%}"
