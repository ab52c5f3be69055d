"""Security events: failed sign-ins, lockouts, refused tokens, replays, scraping and scanning,
written as rows and counted by kind and day for the security-events page and API."""

from __future__ import annotations

import logging

from sqlalchemy import func, insert, select

from hutong.core.clock import local_day, now_us
from hutong.security.tables import security_event

log = logging.getLogger("hutong.security")


def shown_name(who: str) -> str:
    """A recorded user name or client id as pages show it: one that looks like a phone number or a
    resident ID (a resident may type either as a user name) is masked."""
    from hutong.china.ids import mask_phone, mask_resident_id

    text = who.strip()
    if len(text) == 18 and text[:17].isdigit():
        return mask_resident_id(text)
    if len(text) >= 7 and text.lstrip("+").isdigit():
        return mask_phone(text)
    return text

KINDS = ("login-failed", "login-locked", "token-refused", "token-replay", "unauthenticated", "forbidden",
         "scraping", "scanning", "break-glass", "credential-stuffing", "rate-limited")


class SecurityEvents:
    def __init__(self, store):
        self.store = store
        #: ``on_record(kind, who, address, detail)``: alerting (the syslog forwarder), after the row is written.
        self.on_record = None

    def record(self, kind: str, who: str = "", address: str = "", detail: str = "") -> None:
        """Record one event (never personal data in ``detail``)."""
        with self.store.write() as tx:
            tx.conn.execute(insert(security_event).values(ts_us=now_us(), kind=kind, who=who[:200],
                                                          address=address[:64], detail=detail[:500]))
        log.warning("security event %s who=%s address=%s", kind, shown_name(who)[:60], address[:40])
        if self.on_record is not None:
            self.on_record(kind, who, address, detail)

    def counts(self, since_us: int = 0) -> list[dict]:
        """Counts by kind and Asia/Shanghai day."""
        with self.store.read() as tx:
            rows = tx.conn.execute(select(security_event.c.kind, security_event.c.ts_us)
                                   .where(security_event.c.ts_us >= since_us)).all()
        out: dict[tuple[str, str], int] = {}
        for kind, ts in rows:
            key = (local_day(ts), kind)
            out[key] = out.get(key, 0) + 1
        return [{"day": d, "kind": k, "count": n} for (d, k), n in sorted(out.items())]

    def totals(self, since_us: int = 0) -> dict[str, int]:
        """Counts by kind (every kind, zeros included) since ``since_us``."""
        with self.store.read() as tx:
            rows = tx.conn.execute(select(security_event.c.kind, func.count()).where(security_event.c.ts_us >= since_us)
                                   .group_by(security_event.c.kind)).all()
        out = dict.fromkeys(KINDS, 0)
        out.update({k: n for k, n in rows})
        return out

    def recent(self, limit: int = 50, kind: str | None = None) -> list[dict]:
        """The latest events, newest first (who and address as recorded; never personal data)."""
        q = select(security_event).order_by(security_event.c.id.desc()).limit(min(limit, 500))
        if kind:
            q = q.where(security_event.c.kind == kind)
        with self.store.read() as tx:
            rows = tx.conn.execute(q).all()
        return [{"ts_us": r.ts_us, "kind": r.kind, "who": shown_name(r.who or ""), "address": r.address or "",
                 "detail": r.detail or ""} for r in rows]

    def total(self, kind: str) -> int:
        with self.store.read() as tx:
            return tx.conn.execute(select(func.count()).select_from(security_event)
                                   .where(security_event.c.kind == kind)).scalar() or 0
