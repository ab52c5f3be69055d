"""Statistics of the consult capability, from ``consult_item`` and ``consult_step``.

Consultations per doctor, department and hospital per day (Asia/Shanghai), first-response times
(median and p90, seconds), SLA breaches, ratings and complaints; referrals by direction and status
(with redirections, returns and overdue flags); telemedicine by kind and status.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from hutong.consult.family import contract_statistics
from hutong.consult.tables import consult_item
from hutong.core.clock import local_day

c = consult_item.c


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (k - lo), 1)


def _group() -> dict:
    return {"consultations": 0, "answered": 0, "breaches": 0, "ratings": 0, "rating_sum": 0, "complaints": 0,
            "_waits": []}


def _finish(g: dict) -> dict:
    waits = g.pop("_waits")
    g["response_s"] = {"median": _pct(waits, 0.5), "p90": _pct(waits, 0.9)}
    g["rating_avg"] = round(g["rating_sum"] / g["ratings"], 2) if g["ratings"] else None
    del g["rating_sum"]
    return g


def consult_statistics(store, since_us: int | None = None, until_us: int | None = None,
                       org: str | None = None) -> dict:
    """The figures (``since``/``until`` bound the creation time; ``org`` one hospital)."""
    q = select(c.kind, c.subkind, c.status, c.owner, c.department, c.target_org, c.requester_org, c.created_us,
               c.first_response_us, c.breached, c.escalations, c.rating, c.complaint, c.urgent, c.parent)
    if since_us:
        q = q.where(c.created_us >= since_us)
    if until_us:
        q = q.where(c.created_us < until_us)
    if org:
        q = q.where((c.target_org == org) | (c.requester_org == org))
    with store.read() as tx:
        rows = tx.conn.execute(q).all()
    total = _group()
    by = {"doctor": defaultdict(_group), "department": defaultdict(_group), "hospital": defaultdict(_group),
          "day": defaultdict(_group)}
    referrals: dict = {"total": 0, "by_direction": defaultdict(int), "by_status": defaultdict(int), "overdue_flags": 0,
                       "redirected": 0, "returned": 0, "response_s": None}
    tele: dict = {"total": 0, "by_kind": defaultdict(int), "by_status": defaultdict(int), "response_s": None}
    ref_waits, tele_waits = [], []
    for r in rows:
        wait = (r.first_response_us - r.created_us) / 1e6 if r.first_response_us else None
        if r.kind in ("free", "followup"):
            keys = [("doctor", r.owner or "(unassigned)"), ("department", r.department or "(none)"),
                    ("hospital", r.target_org or "(any)"), ("day", local_day(r.created_us))]
            for g in [total] + [by[k][v] for k, v in keys]:
                g["consultations"] += 1
                g["answered"] += wait is not None
                g["breaches"] += bool(r.breached)
                if r.rating is not None:
                    g["ratings"] += 1
                    g["rating_sum"] += r.rating
                g["complaints"] += bool(r.complaint)
                if wait is not None:
                    g["_waits"].append(wait)
        elif r.kind == "referral":
            referrals["total"] += 1
            referrals["by_direction"][r.subkind or "up"] += 1
            referrals["by_status"][r.status] += 1
            referrals["overdue_flags"] += r.escalations or 0
            referrals["redirected"] += r.status == "redirected"
            referrals["returned"] += r.status == "returned"
            if wait is not None:
                ref_waits.append(wait)
        else:
            tele["total"] += 1
            tele["by_kind"][r.subkind] += 1
            tele["by_status"][r.status] += 1
            if wait is not None:
                tele_waits.append(wait)
    kinds = defaultdict(int)
    for r in rows:
        kinds[r.kind] += 1
    referrals["response_s"] = {"median": _pct(ref_waits, 0.5), "p90": _pct(ref_waits, 0.9)}
    tele["response_s"] = {"median": _pct(tele_waits, 0.5), "p90": _pct(tele_waits, 0.9)}
    return {
        "consultations": _finish(total) | {"urgent": sum(1 for r in rows if r.kind in ("free", "followup") and r.urgent),
                                           "by_kind": {k: kinds[k] for k in ("free", "followup")}},
        "by_doctor": {k: _finish(v) for k, v in sorted(by["doctor"].items())},
        "by_department": {k: _finish(v) for k, v in sorted(by["department"].items())},
        "by_hospital": {k: _finish(v) for k, v in sorted(by["hospital"].items())},
        "by_day": {k: _finish(v) for k, v in sorted(by["day"].items())},
        "referrals": {k: dict(v) if isinstance(v, defaultdict) else v for k, v in referrals.items()},
        "telemedicine": {k: dict(v) if isinstance(v, defaultdict) else v for k, v in tele.items()},
        "family_doctor_contracts": contract_statistics(store),
    }
