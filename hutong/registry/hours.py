"""Opening hours: is a service open at a moment, and how to say its hours.

Reads FHIR's two shapes: ``HealthcareService.availableTime`` (``daysOfWeek``, ``allDay``,
``availableStartTime``, ``availableEndTime``) with ``notAvailable`` (``during`` periods), and
``Location.hoursOfOperation`` (``openingTime``, ``closingTime``). Times are local wall-clock times
in Asia/Shanghai. A period whose end is not after its start crosses midnight: ``20:00``–``08:00``
on ``mon`` is open Monday 20:00 to Tuesday 08:00 (the day names the evening it starts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta

from hutong.core.clock import SHANGHAI

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {"mon": "周一", "tue": "周二", "wed": "周三", "thu": "周四", "fri": "周五", "sat": "周六", "sun": "周日"}


def _t(value: str | None) -> time | None:
    if not value:
        return None
    try:
        return time.fromisoformat(value)
    except ValueError:
        return None


def _period(slot: Mapping) -> tuple[time, time] | None:
    start = _t(slot.get("availableStartTime") or slot.get("openingTime"))
    end = _t(slot.get("availableEndTime") or slot.get("closingTime"))
    if start is None and end is None:
        return None
    return start or time(0, 0), end or time(0, 0)


def _parse_instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        if len(value) == 10:  # a date: the whole local day
            return datetime.fromisoformat(value).replace(tzinfo=SHANGHAI)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=SHANGHAI)
    except ValueError:
        return None


def unavailable_at(not_available: Iterable[Mapping] | None, at: datetime) -> str | None:
    """The description of a ``notAvailable`` entry covering ``at`` (``""`` when it has none), else None."""
    for na in not_available or ():
        during = na.get("during") or {}
        start, end = _parse_instant(during.get("start")), _parse_instant(during.get("end"))
        if end is not None and len(during.get("end", "")) == 10:
            end = end + timedelta(days=1)  # an end date includes that day
        if (start is None or start <= at) and (end is None or at < end) and (start or end):
            return na.get("description") or ""
    return None


def open_at(slots: Iterable[Mapping] | None, at: datetime, not_available: Iterable[Mapping] | None = None) -> bool:
    """True when one of the ``slots`` covers the moment ``at`` (aware; compared in Asia/Shanghai) and no
    ``notAvailable`` period does. A slot with ``allDay`` covers its whole days; a slot whose end is not
    after its start runs past midnight into the next day."""
    local = at.astimezone(SHANGHAI)
    if unavailable_at(not_available, local) is not None:
        return False
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    now = local.time().replace(tzinfo=None)
    for slot in slots or ():
        days = slot.get("daysOfWeek") or DAYS  # no days given: every day
        if slot.get("allDay"):
            if today in days:
                return True
            continue
        period = _period(slot)
        if period is None:
            continue
        start, end = period
        if start < end:
            if today in days and start <= now < end:
                return True
        else:  # crosses midnight (end == start: the whole 24 hours from start)
            if today in days and now >= start:
                return True
            if yesterday in days and now < end:
                return True
    return False


def is_all_hours(slots: Iterable[Mapping] | None) -> bool:
    """True when the slots cover every hour of every day (a 24-hour service)."""
    covered: set[str] = set()
    for slot in slots or ():
        days = slot.get("daysOfWeek") or DAYS
        period = _period(slot)
        if slot.get("allDay") or (period is not None and period[0] == period[1]):
            covered.update(days)
    return covered >= set(DAYS)


def describe(slots: Iterable[Mapping] | None) -> str:
    """Hours in Chinese: ``周一至周五 08:00–17:00；周六、周日 08:00–12:00`` (``全天24小时`` for 24 h)."""
    slots = list(slots or ())
    if not slots:
        return "未公布"
    if is_all_hours(slots):
        return "全天24小时"
    parts = []
    for slot in slots:
        days = [d for d in DAYS if d in (slot.get("daysOfWeek") or DAYS)]
        if len(days) == 7:
            dtext = "每天"
        elif len(days) >= 3 and DAYS.index(days[-1]) - DAYS.index(days[0]) == len(days) - 1:
            dtext = f"{DAY_NAMES[days[0]]}至{DAY_NAMES[days[-1]]}"
        else:
            dtext = "、".join(DAY_NAMES[d] for d in days)
        if slot.get("allDay"):
            parts.append(f"{dtext} 全天")
            continue
        period = _period(slot)
        if period is None:
            continue
        start, end = period
        nxt = "次日" if end <= start else ""
        parts.append(f"{dtext} {start:%H:%M}–{nxt}{end:%H:%M}")
    return "；".join(parts)
