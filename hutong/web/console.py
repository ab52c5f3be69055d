"""What the operations console shows, as plain functions over the store (the pages only format).

- ``institution_activity``: per institution, when data last arrived and how much per day, from the change
  log (``change_event``) joined to each changed resource's source (``resource.source``, the institution's
  ``meta.source`` ``urn:hutong:org:ID``); connection status follows from the last arrival.
- ``platform_health``: backend, resource and event counts, consumers' lag behind the change log.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import false, func, select

from hutong.core.clock import local_day, now_us
from hutong.store.schema import change_event as CE
from hutong.store.schema import consumer_position as CP
from hutong.store.schema import resource as R

ORG_PREFIX = "urn:hutong:org:"
DAY_US = 86_400_000_000
#: Connection status by the age of the last data received.
STATUS_LIMITS = (("connected", DAY_US), ("quiet", 7 * DAY_US))

_cache: dict[tuple, tuple[float, object]] = {}
_lock = threading.Lock()


def _cached(key: tuple, seconds: float, compute):
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    value = compute()
    with _lock:
        _cache[key] = (now + seconds, value)
        if len(_cache) > 200:
            _cache.clear()
    return value


def forget_cache() -> None:
    """Drop cached console figures (after a change the operator wants to see at once; tests)."""
    with _lock:
        _cache.clear()


@dataclass
class InstitutionActivity:
    org_id: str
    name: str
    city: str
    last_us: int | None
    total: int
    per_day: dict[str, int]  # Asia/Shanghai day -> changes received
    status: str  # connected | quiet | silent | never


def _status(last_us: int | None, now: int) -> str:
    if last_us is None:
        return "never"
    for name, limit in STATUS_LIMITS:
        if now - last_us <= limit:
            return name
    return "silent"


def institution_activity(store, days: int = 14, *, cache_seconds: float = 30.0) -> list[InstitutionActivity]:
    """Every registered institution with its data flow over the last ``days`` days, busiest first."""
    return _cached(("activity", id(store), days), cache_seconds, lambda: _activity(store, days))


def _activity(store, days: int) -> list[InstitutionActivity]:
    now = now_us()
    since = now - days * DAY_US
    with store.read() as tx:
        conn = tx.conn
        orgs = {}
        for rid, content in conn.execute(select(R.c.res_id, R.c.content).where(
                R.c.res_type == "Organization", R.c.deleted == false())):
            o = orjson.loads(content)
            city = ""
            for a in o.get("address") or []:
                city = (a or {}).get("city") or city
            orgs[rid] = (o.get("name") or rid, city)
        stmt = (select(R.c.source, CE.c.ts_us)
                .select_from(CE.join(R, (CE.c.res_type == R.c.res_type) & (CE.c.res_id == R.c.res_id)))
                .where(CE.c.ts_us >= since, R.c.source.like(ORG_PREFIX + "%")))
        per: dict[str, dict[str, int]] = {}
        last: dict[str, int] = {}
        for source, ts in conn.execute(stmt):
            org = source[len(ORG_PREFIX):].split("#", 1)[0]
            day = local_day(ts)
            per.setdefault(org, {})
            per[org][day] = per[org].get(day, 0) + 1
            if ts > last.get(org, 0):
                last[org] = ts
        # Before the window: the last change ever seen from each institution that was quiet in the window.
        older = (select(R.c.source, func.max(R.c.ts_us)).where(R.c.source.like(ORG_PREFIX + "%"), R.c.ts_us < since)
                 .group_by(R.c.source))
        for source, ts in conn.execute(older):
            org = source[len(ORG_PREFIX):].split("#", 1)[0]
            if org not in last:
                last[org] = ts
    out = []
    for org in set(orgs) | set(per) | set(last):
        name, city = orgs.get(org, (org, ""))
        counts = per.get(org, {})
        out.append(InstitutionActivity(org, name, city, last.get(org), sum(counts.values()), counts,
                                       _status(last.get(org), now)))
    out.sort(key=lambda a: (-a.total, -(a.last_us or 0), a.org_id))
    return out


def day_range(days: int) -> list[str]:
    """The last ``days`` Asia/Shanghai days, oldest first."""
    now = now_us()
    return [local_day(now - k * DAY_US) for k in range(days - 1, -1, -1)]


def platform_health(store) -> dict:
    """Backend, counts, and each change-log consumer's lag (events behind the newest)."""
    with store.read() as tx:
        conn = tx.conn
        head = conn.execute(select(func.max(CE.c.seq))).scalar() or 0
        by_type = conn.execute(select(R.c.res_type, func.count()).where(R.c.deleted == false())
                               .group_by(R.c.res_type)).all()
        consumers = conn.execute(select(CP.c.name, CP.c.seq)).all()
        day_ago = now_us() - DAY_US
        events_24h = conn.execute(select(func.count()).select_from(CE).where(CE.c.ts_us >= day_ago)).scalar() or 0
    registered = set(getattr(store, "_consumers", {}) or {})
    lag = [{"name": n, "position": int(s), "lag": max(0, int(head) - int(s))} for n, s in consumers]
    lag += [{"name": n, "position": 0, "lag": int(head)} for n in sorted(registered - {c[0] for c in consumers})]
    lag.sort(key=lambda c: c["name"])
    return {
        "backend": store.engine.dialect.name, "head": int(head), "events_24h": int(events_24h),
        "resources": sum(int(n) for _t, n in by_type), "by_type": sorted(((t, int(n)) for t, n in by_type),
                                                                      key=lambda x: -x[1]),
        "consumers": lag,
    }
