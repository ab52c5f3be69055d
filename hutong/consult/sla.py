"""Service levels: when a first response is due, and what happens when it is missed.

A consultation's first response is due ``consult_first_response_minutes`` after it is asked,
counted in working hours (``consult_hours``, Asia/Shanghai, e.g. ``08:00-22:00``): a question
asked at night is due that many minutes after the next opening. ``escalate_overdue`` (run every
``consult_escalation_seconds`` by each worker; each item is claimed with a conditional update, so
workers never escalate one twice) reassigns a missed consultation to another doctor on duty in
the same department (or back to the department's queue), counts the breach, tells the resident
what to expect and sets a new deadline. Referrals and teleconsultation requests without action
past their deadline (``consult_referral_action_hours``) are flagged to both sides: nothing is
lost silently.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from hutong.consult import directory, vocab, work
from hutong.consult.tables import consult_item
from hutong.core.clock import SHANGHAI, local_time, now_us, to_us
from hutong.core.errors import FhirError
from hutong.core.periodic import Periodic

log = logging.getLogger("hutong.consult")


def working_hours(env) -> tuple[int, int]:
    """Opening and closing minute of the day, from ``consult_hours`` (``HH:MM-HH:MM``)."""
    text = str(env.setting("consult_hours", "08:00-22:00"))
    try:
        a, b = text.split("-")
        start = int(a[:2]) * 60 + int(a[3:5])
        end = int(b[:2]) * 60 + int(b[3:5])
    except (ValueError, IndexError):
        return 0, 24 * 60
    return (start, end) if 0 <= start < end <= 24 * 60 else (0, 24 * 60)


def response_due(env, at_us: int, minutes: int | None = None) -> int:
    """When a first response to a question asked at ``at_us`` is due (working minutes later)."""
    left = minutes if minutes is not None else int(env.setting("consult_first_response_minutes", 30))
    start, end = working_hours(env)
    t = datetime.fromtimestamp(at_us / 1e6, tz=SHANGHAI)
    for _ in range(400):  # a bounded walk over days (a long deadline spans several)
        day0 = t.replace(hour=0, minute=0, second=0, microsecond=0)
        opens, closes = day0 + timedelta(minutes=start), day0 + timedelta(minutes=end)
        if t < opens:
            t = opens
        if t >= closes:
            t = day0 + timedelta(days=1)
            continue
        room = (closes - t).total_seconds() / 60
        if left <= room:
            return to_us(t + timedelta(minutes=left))
        left -= room
        t = day0 + timedelta(days=1)
    return to_us(t)


def expectation(due_us: int) -> str:
    """What the resident is told to expect."""
    return f"医生将在 {local_time(due_us, '%m-%d %H:%M')} 前回复；如病情加重请及时到医院就诊。"


def action_due(env, at_us: int) -> int:
    """The action deadline of a referral or teleconsultation request."""
    return at_us + int(env.setting("consult_referral_action_hours", 48)) * 3600 * 1_000_000


def _pick_other(tx, row) -> str | None:
    """Another on-duty doctor for a missed consultation: same institution and department, fewest
    open consultations first (None: back to the department's queue)."""
    if not row.target_org:
        return None
    doctors = [d.role for d in directory.online_doctors(tx, row.target_org, row.department) if d.role != row.owner]
    if not doctors:
        return None
    c = consult_item.c
    load = {d: 0 for d in doctors}
    for (owner,) in tx.conn.execute(select(c.owner).where(c.owner.in_(doctors), c.status.in_(("waiting", "in-progress")))):
        load[owner] += 1
    return min(doctors, key=lambda d: (load[d], d))


def escalate_overdue(env, at_us: int | None = None) -> list[str]:
    """Escalate every piece of work past its deadline; returns the item ids handled."""
    at = at_us or now_us()
    c = consult_item.c
    with env.store.read() as tx:
        due = tx.conn.execute(select(consult_item).where(and_(c.due_us < at, or_(
            and_(c.kind.in_(("free", "followup")), c.status == "waiting"),
            and_(c.kind == "referral", c.status.in_(("requested", "accepted", "no-slot", "declined"))),
            and_(c.kind == "teleconsult", c.status == "requested"))))).all()
    handled = []
    for row in due:
        try:
            with env.store.write(row.tenant) as tx:
                if row.kind in ("free", "followup"):
                    _escalate_consultation(env, tx, row, at)
                else:
                    _flag_request(env, tx, row, at)
            env.flush()
            handled.append(row.id)
        except FhirError as exc:
            env.pending.clear()
            env.outbox.clear()
            if exc.status != 409:  # 409: answered or escalated by someone else meanwhile
                log.warning("escalating %s failed: %s", row.id, exc)
    return handled


def _escalate_consultation(env, tx, row, at: int) -> None:
    other = _pick_other(tx, row)
    due = response_due(env, at)
    note = (f"首次响应超时（第 {row.escalations + 1} 次），已转派" if other else
            f"首次响应超时（第 {row.escalations + 1} 次），已退回科室队列并通知科室")
    work.move(tx, row, "waiting", actor="system", action="escalate", at_us=at, note=note,
              values={"owner": other, "due_us": due, "escalations": row.escalations + 1, "breached": True})
    work.notify(env, tx, [row.requester, row.patient], row.id,
                "很抱歉，医生未能按时回复，已为您转交其他医生。" + expectation(due), at)
    work.notify(env, tx, [other, row.target_org, row.owner], row.id, f"咨询超时待接诊：{row.title[:40]}", at)
    env.announce(row.id, {"type": "status", "status": "waiting", "escalated": True})


def _flag_request(env, tx, row, at: int) -> None:
    hours = round((at - row.created_us) / 3.6e9)
    what = "转诊" if row.kind == "referral" else "远程医疗申请"
    status_now = vocab.status_label(row.status)
    note = f"{what}超过处理时限（已 {hours} 小时，当前：{status_now}）"
    work.move(tx, row, row.status, actor="system", action="overdue", at_us=at, note=note,
              values={"due_us": action_due(env, at), "escalations": row.escalations + 1, "breached": True})
    work.notify(env, tx, [row.requester_org, row.target_org, row.requester], row.id, note + "：" + row.title[:40], at)
    env.announce(row.id, {"type": "status", "status": row.status, "overdue": True})


class EscalationLoop(Periodic):
    """Runs ``escalate_overdue`` every ``interval`` seconds in a daemon thread."""

    def __init__(self, env, interval: float):
        self.env = env
        super().__init__("consult-escalation", interval, lambda: escalate_overdue(env), log, "consult escalation")
