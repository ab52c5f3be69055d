"""Who sees which work: the doctor's desk, a department's queue, an institution's referral inbox
and outbox, the resident's own items, and the province coordinator's open items by age.

All read ``consult_item`` with its indexes (one query per list): urgent first, then oldest first.
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, or_, select

from hutong.consult import directory, work
from hutong.consult.tables import consult_item
from hutong.core.clock import now_us

OPEN_CONSULT = ("waiting", "in-progress")
OPEN_REFERRAL = ("requested", "accepted", "declined", "no-slot", "booked", "arrived", "completed")
OPEN_TELE = ("requested", "scheduled", "in-session")
c = consult_item.c


def _order(q):
    return q.order_by(case((c.urgent, 0), else_=1), c.created_us)


def _rows(store, q, at: int) -> list[dict]:
    with store.read() as tx:
        return [work.row_dict(r, at) for r in tx.conn.execute(q)]


def accepted_departments(departments) -> list[str]:
    """A doctor's departments and their parents (a 心血管内科 doctor sees 内科 questions too)."""
    out = set()
    for d in departments:
        out.add(d)
        while "." in d:
            d = d.rsplit(".", 1)[0]
            out.add(d)
    return sorted(out)


def doctor_desk(store, doctor: str, at_us: int | None = None, closed_limit: int = 30) -> dict:
    """Waiting (assigned to the doctor, or unassigned in the doctor's hospital and departments, or
    province-wide free questions of those departments), in-progress and recently closed."""
    at = at_us or now_us()
    with store.read() as tx:
        doc = directory.doctor(tx, doctor)
    depts = accepted_departments(doc.departments)
    kinds = c.kind.in_(("free", "followup"))
    pool = and_(c.owner.is_(None), or_(c.target_org == doc.org, c.target_org.is_(None)),
                or_(c.department.in_(depts), c.department.is_(None)) if depts else True)
    waiting = _order(select(consult_item).where(kinds, c.status == "waiting", or_(c.owner == doc.role, pool))).limit(200)
    working = _order(select(consult_item).where(kinds, c.status == "in-progress", c.owner == doc.role)).limit(200)
    closed = (select(consult_item).where(kinds, c.status.in_(("closed", "cancelled")), c.owner == doc.role)
              .order_by(c.closed_us.desc()).limit(closed_limit))
    return {"doctor": doc, "waiting": _rows(store, waiting, at), "in_progress": _rows(store, working, at),
            "closed": _rows(store, closed, at)}


def department_queue(store, org: str | None, department: str | None, at_us: int | None = None,
                     limit: int = 200) -> list[dict]:
    """Waiting consultations of one hospital's department (either may be None: any)."""
    at = at_us or now_us()
    q = select(consult_item).where(c.kind.in_(("free", "followup")), c.status == "waiting")
    if org:
        q = q.where(c.target_org == org)
    if department:
        q = q.where(c.department == department)
    return _rows(store, _order(q).limit(limit), at)


def inbox(store, org: str, at_us: int | None = None, include_closed: bool = False, limit: int = 200) -> list[dict]:
    """Referrals and telemedicine requests an institution receives."""
    at = at_us or now_us()
    q = select(consult_item).where(c.target_org == org, c.kind.in_(("referral", "teleconsult")))
    if not include_closed:
        q = q.where(or_(and_(c.kind == "referral", c.status.in_(OPEN_REFERRAL)),
                        and_(c.kind == "teleconsult", c.status.in_(OPEN_TELE))))
    return _rows(store, _order(q).limit(limit), at)


def outbox(store, org: str, at_us: int | None = None, limit: int = 200) -> list[dict]:
    """Referrals and telemedicine requests an institution sent, newest first (declined and
    unbooked ones, which need the sender, first of all)."""
    at = at_us or now_us()
    q = select(consult_item).where(c.requester_org == org, c.kind.in_(("referral", "teleconsult")))
    q = q.order_by(case((c.status.in_(("declined", "no-slot")), 0), else_=1), c.created_us.desc()).limit(limit)
    return _rows(store, q, at)


def resident_items(store, patient: str, at_us: int | None = None, limit: int = 100) -> list[dict]:
    """A resident's consultations (asked by or for them) and referrals, newest first."""
    at = at_us or now_us()
    q = (select(consult_item).where(or_(c.patient == patient, c.requester == patient))
         .order_by(c.created_us.desc()).limit(limit))
    return _rows(store, q, at)


AGE_BUCKETS = (("<1h", 3600), ("1-24h", 86400), ("1-3d", 3 * 86400), (">3d", None))


def coordinator_view(store, at_us: int | None = None, limit: int = 100) -> dict:
    """Open items in the province by kind and age, the overdue ones listed oldest first."""
    at = at_us or now_us()
    open_any = or_(and_(c.kind.in_(("free", "followup")), c.status.in_(OPEN_CONSULT)),
                   and_(c.kind == "referral", c.status.in_(OPEN_REFERRAL)),
                   and_(c.kind == "teleconsult", c.status.in_(OPEN_TELE)))
    age = (at - c.created_us) / 1_000_000
    bucket = case((age < 3600, "<1h"), (age < 86400, "1-24h"), (age < 3 * 86400, "1-3d"), else_=">3d")
    with store.read() as tx:
        counts = tx.conn.execute(select(c.kind, bucket.label("bucket"), func.count()).where(open_any)
                                 .group_by(c.kind, bucket)).all()
        overdue = tx.conn.execute(select(consult_item).where(open_any, c.due_us < at).order_by(c.created_us)
                                  .limit(limit)).all()
        stuck = tx.conn.execute(select(consult_item).where(c.kind == "referral", c.status.in_(("declined", "no-slot")))
                                .order_by(c.updated_us).limit(limit)).all()
    table: dict[str, dict[str, int]] = {}
    for kind, b, n in counts:
        table.setdefault(kind, {k: 0 for k, _ in AGE_BUCKETS})[b] = n
    return {"by_age": table, "overdue": [work.row_dict(r, at) for r in overdue],
            "awaiting_sender": [work.row_dict(r, at) for r in stuck]}
