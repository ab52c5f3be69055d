"""Gaps against each institution's own weekday baseline (pure functions).

An institution is *expected* to send on a day when it sent on at least ``min_seen`` of the same
weekdays in the ``weeks`` weeks before; the baseline is the median of those weekdays' counts. A day
is a *gap* when it was expected and brought less than ``drop`` of the baseline (nothing at all, or
a trickle). So a hospital that sends every weekday and then stops is flagged on the first missing
day (visible the next morning, once the day is complete), and a clinic that never sends on Sundays
is never flagged for a Sunday.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import median

WEEKS = 4
MIN_SEEN = 3
DROP = 0.1


@dataclass(frozen=True)
class DayCheck:
    day: str
    count: int
    baseline: float  # median of the same weekday over the weeks before (0 when never seen)
    expected: bool
    gap: bool


def check_day(per_day: Mapping[str, int], day: str, *, weeks: int = WEEKS, min_seen: int = MIN_SEEN,
              drop: float = DROP) -> DayCheck:
    """How ``day`` compares with the same weekday in the ``weeks`` weeks before it."""
    d = date.fromisoformat(day)
    before = [int(per_day.get((d - timedelta(days=7 * k)).isoformat(), 0)) for k in range(1, weeks + 1)]
    seen = sum(1 for n in before if n > 0)
    base = float(median(before)) if before else 0.0
    count = int(per_day.get(day, 0))
    expected = seen >= min_seen
    return DayCheck(day, count, base, expected, expected and count < max(1.0, drop * base))


def check_days(per_day: Mapping[str, int], days: list[str], **kw) -> list[DayCheck]:
    """``check_day`` for each of ``days`` (complete days only: today is still arriving)."""
    return [check_day(per_day, d, **kw) for d in days]


def days_back(last: str, n: int) -> list[str]:
    """The ``n`` days ending with ``last``, oldest first."""
    d = date.fromisoformat(last)
    return [(d - timedelta(days=k)).isoformat() for k in range(n - 1, -1, -1)]
