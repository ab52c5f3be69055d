"""The one clock and the one set of time formats.

Times are integer microseconds since the Unix epoch (UTC) inside Hutong (``ts_us``); they are
shown to people in Asia/Shanghai and sent to machines as FHIR instants with an offset.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

#: China Standard Time (no daylight saving since 1991): the zone every page shows.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def now_us() -> int:
    """Now, in microseconds since the epoch."""
    return time.time_ns() // 1000


def instant(ts_us: int) -> str:
    """A FHIR instant in UTC with microseconds, e.g. ``2026-12-01T08:00:00.000000+00:00``."""
    dt = datetime.fromtimestamp(ts_us / 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_us % 1_000_000:06d}+00:00"


def instant_now() -> str:
    """``instant(now_us())``."""
    return instant(now_us())


def iso_utc(ts_s: float) -> str:
    """A UTC instant from seconds, ISO 8601 with ``Z`` (JSON APIs outside FHIR, e.g. ``expires_at``)."""
    if ts_s == int(ts_s):  # whole seconds (code times): time.strftime is several times faster
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_s))
    return datetime.fromtimestamp(ts_s, tz=UTC).isoformat().replace("+00:00", "Z")


def http_date(ts_us: int) -> str:
    """An RFC 9110 HTTP date (``Last-Modified``, ``Expires``)."""
    dt = datetime.fromtimestamp(ts_us / 1_000_000, tz=UTC)
    return dt.strftime("%a, %d %b %Y %H:%M:%S GMT")


def local_day(ts_us: int) -> str:
    """The Asia/Shanghai calendar day (``YYYY-MM-DD``) of an instant."""
    return datetime.fromtimestamp(ts_us / 1_000_000, tz=SHANGHAI).strftime("%Y-%m-%d")


def local_time(ts_us: int, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant as people in the province read it (Asia/Shanghai)."""
    return datetime.fromtimestamp(ts_us / 1_000_000, tz=SHANGHAI).strftime(fmt)


def to_us(dt: datetime) -> int:
    """A datetime (naive ones are taken as Asia/Shanghai) in microseconds since the epoch."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return int(dt.timestamp() * 1_000_000)
