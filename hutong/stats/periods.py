"""Reporting periods, named as DHIS2 names them: ``202611`` (monthly), ``2026Q4`` (quarterly),
``2026`` (yearly)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from hutong.core.errors import bad_request

PeriodType = Literal["monthly", "quarterly", "yearly"]
PERIOD_TYPES: tuple[PeriodType, ...] = ("monthly", "quarterly", "yearly")
_PATTERNS = {
    "monthly": re.compile(r"^(\d{4})(0[1-9]|1[0-2])$"),
    "quarterly": re.compile(r"^(\d{4})Q([1-4])$"),
    "yearly": re.compile(r"^(\d{4})$"),
}


@dataclass(frozen=True)
class Period:
    """One period: its id, type, first and last day."""

    id: str
    type: PeriodType
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        """The Chinese label (``2026年11月``, ``2026年第4季度``, ``2026年``)."""
        if self.type == "monthly":
            return f"{self.start.year}年{self.start.month}月"
        if self.type == "quarterly":
            return f"{self.start.year}年第{(self.start.month - 1) // 3 + 1}季度"
        return f"{self.start.year}年"


def parse_period(value: str, period_type: PeriodType) -> Period:
    """The period ``value`` of ``period_type``; 400 when it is not one."""
    m = _PATTERNS[period_type].match(value or "")
    if not m or not 1900 <= int(m.group(1)) <= 2999:
        example = {"monthly": "202611", "quarterly": "2026Q4", "yearly": "2026"}[period_type]
        raise bad_request(f"period {str(value)[:20]!r} is not a {period_type} period (for example {example})",
                          "period")
    year = int(m.group(1))
    if period_type == "monthly":
        month = int(m.group(2))
        return Period(value, period_type, date(year, month, 1),
                      date(year, month, calendar.monthrange(year, month)[1]))
    if period_type == "quarterly":
        q = int(m.group(2))
        first = 3 * (q - 1) + 1
        return Period(value, period_type, date(year, first, 1),
                      date(year, first + 2, calendar.monthrange(year, first + 2)[1]))
    return Period(value, period_type, date(year, 1, 1), date(year, 12, 31))


def period_of(day: date, period_type: PeriodType) -> Period:
    """The period of ``period_type`` that holds ``day``."""
    if period_type == "monthly":
        return parse_period(f"{day.year}{day.month:02d}", period_type)
    if period_type == "quarterly":
        return parse_period(f"{day.year}Q{(day.month - 1) // 3 + 1}", period_type)
    return parse_period(str(day.year), period_type)


def previous(period: Period) -> Period:
    """The period before ``period``."""
    return period_of(period.start - timedelta(days=1), period.type)
