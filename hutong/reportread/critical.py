"""Critical values (危急值): from a stored result to the ordering doctor, acknowledged in time or
escalated to the department, and counted with the time to acknowledgement.

A change-log consumer watches Observations. A result beyond the critical-value table (the shipped
default or the institution's own, setting ``reportread_critical_table``) creates, in the same
transaction that moves the consumer's position (so exactly once):

- a ``Flag`` on the patient (category ``lab``), which the doctor's desk shows;
- a ``Communication`` (category ``alert``, priority ``stat``) to the ordering doctor
  (``ServiceRequest.requester`` of ``basedOn``, else the Encounter's participant) and institution;
- a row in ``reportread_critical_alert`` with the deadline (setting ``reportread_ack_minutes``).

``acknowledge`` closes it (Communication ``completed``, Flag ``inactive``); ``escalate_overdue``
sends a second Communication to the doctor's department (the PractitionerRole's
HealthcareService, else its Organization) for every alert past its deadline.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import and_, func, select, update

from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError
from hutong.core.ids import ID_RE, new_id
from hutong.core.periodic import Periodic
from hutong.reportread.catalog import Critical, identify, read_critical_table
from hutong.reportread.interpret import _codes, _value
from hutong.reportread.tables import critical_alert
from hutong.reportread.units import UnitError, convert, to_ucum

log = logging.getLogger("hutong.reportread")
CONSUMER = "reportread-critical"
FLAG_SYSTEM = "urn:hutong:reportread"
_STATUSES = ("final", "amended", "corrected", "preliminary")
_TABLES: dict[str, dict[str, Critical]] = {}


def critical_table(settings) -> dict[str, Critical]:
    """The critical-value table this node uses (cached per file)."""
    path = getattr(settings, "reportread_critical_table", "") or ""
    if path not in _TABLES:
        _TABLES[path] = read_critical_table(Path(path) if path else None)
    return _TABLES[path]


def check(obs: dict, table: dict[str, Critical]) -> tuple[str, float, str, str, float] | None:
    """``(analyte, value, unit, direction, threshold)`` when an Observation is critical, else None."""
    if obs.get("status") not in _STATUSES:
        return None
    loinc, texts, _ = _codes(obs)
    analyte = identify(loinc, texts)
    if analyte is None:
        return None
    c = table.get(analyte.key) or table.get(analyte.interval_key)
    value, unit, _, _ = _value(obs)
    if c is None or value is None:
        return None
    unit_in = unit or analyte.unit
    if analyte.category == "enzyme" and to_ucum(unit_in) == "[IU]/L":
        unit_in = "U/L"
    try:
        v = convert(value, unit_in, c.unit, analyte.molar_mass)
    except UnitError:
        return None
    if c.low is not None and v < c.low:
        return analyte.key, round(v, 3), c.unit, "critical-low", c.low
    if c.high is not None and v > c.high:
        return analyte.key, round(v, 3), c.unit, "critical-high", c.high
    return None


def _read(tx, ref: str | None) -> dict | None:
    kind, _, rid = (ref or "").partition("/")
    if not kind or not ID_RE.match(rid or ""):
        return None
    try:
        s = tx.read(kind, rid)
    except FhirError:
        return None
    return None if s is None or s.deleted else s.resource


def recipients(tx, obs: dict) -> tuple[str | None, str | None, str | None]:
    """(ordering doctor, institution, department) for an Observation."""
    doctor = None
    for ref in obs.get("basedOn") or []:
        sr = _read(tx, (ref or {}).get("reference"))
        if sr and sr.get("resourceType") == "ServiceRequest":
            doctor = (sr.get("requester") or {}).get("reference")
            break
    enc = _read(tx, (obs.get("encounter") or {}).get("reference"))
    if doctor is None and enc:
        for p in enc.get("participant") or []:
            ref = ((p or {}).get("individual") or {}).get("reference")
            if ref and ref.split("/")[0] in ("PractitionerRole", "Practitioner"):
                doctor = ref
                break
    role = _read(tx, doctor) if doctor and doctor.startswith("PractitionerRole/") else None
    institution = ((role or {}).get("organization") or {}).get("reference") or (
        ((enc or {}).get("serviceProvider") or {}).get("reference"))
    if institution is None:
        source = (obs.get("meta") or {}).get("source") or ""
        if source.startswith("urn:hutong:org:"):
            institution = "Organization/" + source.rsplit(":", 1)[1]
    services = (role or {}).get("healthcareService") or []
    department = (services[0] or {}).get("reference") if services else None
    department = department or institution

    def exists(ref):
        return ref if ref and _read(tx, ref) is not None else None

    return exists(doctor), exists(institution), exists(department)


def describe(analyte: str, value: float, unit: str, direction: str, threshold: float) -> str:
    """The message of a critical-value alert (Chinese: it goes to the doctor)."""
    from hutong.reportread.catalog import analytes

    sign = "<" if direction == "critical-low" else ">"
    return f"危急值：{analytes()[analyte].name} {value:g} {unit}（危急界值 {sign}{threshold:g} {unit}），请立即处理并确认。"


def consume(tx, events) -> None:
    """Change-log consumer: raise an alert for each new critical result (exactly once per Observation)."""
    settings = tx.store.settings
    table = critical_table(settings)
    ack_minutes = int(getattr(settings, "reportread_ack_minutes", 15))
    for ev in events:
        if ev.op == "delete" or ev.res_type != "Observation":
            continue
        s = tx.read("Observation", ev.res_id)
        if s is None or s.deleted:
            continue
        obs = s.resource
        found = check(obs, table)
        if found is None:
            continue
        obs_ref = f"Observation/{ev.res_id}"
        exists = tx.conn.execute(select(critical_alert.c.id).where(
            and_(critical_alert.c.tenant == ev.tenant, critical_alert.c.observation == obs_ref))).first()
        if exists:
            continue
        _raise(tx, ev.tenant, obs, obs_ref, found, ack_minutes)


def _raise(tx, tenant: str, obs: dict, obs_ref: str, found, ack_minutes: int) -> None:
    analyte, value, unit, direction, threshold = found
    doctor, institution, department = recipients(tx, obs)
    patient = (obs.get("subject") or {}).get("reference")
    patient = patient if patient and _read(tx, patient) is not None else None
    now = now_us()
    text = describe(analyte, value, unit, direction, threshold)
    previous_tenant = tx.tenant
    tx.tenant = tenant  # the alert belongs to the tenant of the result
    try:
        flag_ref = None
        if patient:
            flag = {"resourceType": "Flag", "status": "active",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                              "code": "lab", "display": "Lab"}]}],
                    "code": {"coding": [{"system": FLAG_SYSTEM, "code": "critical-value", "display": "危急值"}],
                             "text": text},
                    "subject": {"reference": patient}, "period": {"start": instant(now)}}
            if obs.get("encounter"):
                flag["encounter"] = obs["encounter"]
            if institution:
                flag["author"] = {"reference": institution}
            flag_ref = "Flag/" + tx.create(flag).stored.res_id
        recipient = [{"reference": r} for r in (doctor, institution) if r]
        comm = {"resourceType": "Communication", "status": "in-progress", "priority": "stat",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                          "code": "alert", "display": "Alert"}], "text": "危急值"}],
                "about": [{"reference": obs_ref}] + ([{"reference": flag_ref}] if flag_ref else []),
                "sent": instant(now), "payload": [{"contentString": text}]}
        if patient:
            comm["subject"] = {"reference": patient}
        if recipient:
            comm["recipient"] = recipient
        comm_ref = "Communication/" + tx.create(comm).stored.res_id
    finally:
        tx.tenant = previous_tenant
    tx.conn.execute(critical_alert.insert().values(
        id=new_id(), tenant=tenant, observation=obs_ref, patient=patient, analyte=analyte, value=value, unit=unit,
        direction=direction, threshold=threshold, doctor=doctor, institution=institution, department=department,
        flag=flag_ref, communication=comm_ref, status="open", created_us=now, deadline_us=now + ack_minutes * 60_000_000))
    log.info("critical value %s %s raised for %s", analyte, direction, doctor or institution or "no recipient")


def _row(r) -> dict:
    d = dict(r._mapping)
    d["created"] = instant(d["created_us"])
    d["deadline"] = instant(d["deadline_us"])
    d["acknowledged"] = instant(d["acked_us"]) if d["acked_us"] else None
    d["escalated"] = instant(d["escalated_us"]) if d["escalated_us"] else None
    d["seconds_to_ack"] = round((d["acked_us"] - d["created_us"]) / 1e6, 1) if d["acked_us"] else None
    return d


def list_alerts(store, *, doctor: str | None = None, institution: str | None = None, status: str | None = None,
                patient: str | None = None, limit: int = 100) -> list[dict]:
    """Alerts for a doctor's desk or an institution, newest first."""
    q = select(critical_alert)
    for col, val in ((critical_alert.c.doctor, doctor), (critical_alert.c.institution, institution),
                     (critical_alert.c.status, status), (critical_alert.c.patient, patient)):
        if val:
            q = q.where(col == val)
    q = q.order_by(critical_alert.c.created_us.desc()).limit(limit)
    with store.read() as tx:
        return [_row(r) for r in tx.conn.execute(q)]


def _update_resource(tx, ref: str | None, change) -> None:
    kind, _, rid = (ref or "").partition("/")
    if not kind:
        return
    s = tx.read(kind, rid)
    if s is None or s.deleted:
        return
    res = s.resource
    change(res)
    tx.update(kind, rid, res)


def acknowledge(store, alert_id: str, by: str | None = None, note: str | None = None, at_us: int | None = None) -> dict:
    """The doctor confirms the critical value: the alert, its Communication and its Flag are closed."""
    at = at_us or now_us()
    with store.read() as tx:
        row = tx.conn.execute(select(critical_alert).where(critical_alert.c.id == alert_id)).first()
    if row is None:
        raise FhirError(404, "not-found", f"危急值提醒 {alert_id[:64]} 不存在 / no such alert")
    if row.status == "acknowledged":
        raise FhirError(409, "conflict", "该危急值已确认 / the alert was already acknowledged")
    with store.write(row.tenant) as tx:
        done = tx.conn.execute(update(critical_alert).where(and_(
            critical_alert.c.id == alert_id, critical_alert.c.status != "acknowledged")).values(
            status="acknowledged", acked_us=at, acked_by=by, ack_note=note))
        if done.rowcount != 1:
            raise FhirError(409, "conflict", "该危急值已确认 / the alert was already acknowledged")

        def close_comm(res):
            res["status"] = "completed"
            res["received"] = instant(at)

        def close_flag(res):
            res["status"] = "inactive"
            res.setdefault("period", {})["end"] = instant(at)

        _update_resource(tx, row.communication, close_comm)
        _update_resource(tx, row.flag, close_flag)
    return next(a for a in list_alerts(store, patient=row.patient, limit=1000) if a["id"] == alert_id) \
        if row.patient else {"id": alert_id, "status": "acknowledged"}


def escalate_overdue(store, at_us: int | None = None) -> list[str]:
    """Escalate every open alert past its deadline to the department; returns the alert ids."""
    at = at_us or now_us()
    with store.read() as tx:
        due = list(tx.conn.execute(select(critical_alert).where(and_(
            critical_alert.c.status == "open", critical_alert.c.deadline_us < at))))
    escalated = []
    for row in due:
        with store.write(row.tenant) as tx:
            claimed = tx.conn.execute(update(critical_alert).where(and_(
                critical_alert.c.id == row.id, critical_alert.c.status == "open")).values(
                status="escalated", escalated_us=at))
            if claimed.rowcount != 1:
                continue  # acknowledged or escalated by another worker meanwhile
            minutes = round((at - row.created_us) / 60e6)
            text = (f"危急值超时未确认（已 {minutes} 分钟）：{describe(row.analyte, row.value, row.unit, row.direction, row.threshold)}"
                    f"原通知对象：{row.doctor or '未知医生'}。请科室立即处理。")
            recipient = [{"reference": r} for r in dict.fromkeys((row.department, row.institution)) if r]
            comm = {"resourceType": "Communication", "status": "in-progress", "priority": "stat",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                              "code": "alert"}], "text": "危急值升级"}],
                    "partOf": [{"reference": row.communication}], "about": [{"reference": row.observation}],
                    "sent": instant(at), "payload": [{"contentString": text}]}
            if row.patient:
                comm["subject"] = {"reference": row.patient}
            if recipient:
                comm["recipient"] = recipient
            ref = "Communication/" + tx.create(comm).stored.res_id
            tx.conn.execute(update(critical_alert).where(critical_alert.c.id == row.id).values(escalation=ref))
        escalated.append(row.id)
    return escalated


def statistics(store, institution: str | None = None) -> dict:
    """Counts of alerts and the time to acknowledgement (seconds)."""
    q = select(critical_alert.c.status, critical_alert.c.created_us, critical_alert.c.acked_us,
               critical_alert.c.deadline_us, critical_alert.c.escalated_us, critical_alert.c.analyte)
    if institution:
        q = q.where(critical_alert.c.institution == institution)
    with store.read() as tx:
        rows = list(tx.conn.execute(q))
    now = now_us()
    waits = sorted((r.acked_us - r.created_us) / 1e6 for r in rows if r.acked_us)
    in_time = sum(1 for r in rows if r.acked_us and r.acked_us <= r.deadline_us)

    def pct(p):
        return round(waits[min(len(waits) - 1, int(p * len(waits)))], 1) if waits else None

    by_item: dict[str, int] = {}
    for r in rows:
        by_item[r.analyte] = by_item.get(r.analyte, 0) + 1
    return {"total": len(rows), "open": sum(r.status == "open" for r in rows),
            "acknowledged": sum(r.status == "acknowledged" for r in rows),
            "escalated": sum(r.escalated_us is not None for r in rows),
            "overdue_now": sum(1 for r in rows if r.status == "open" and r.deadline_us < now),
            "acknowledged_in_time": in_time,
            "seconds_to_ack": {"median": pct(0.5), "p90": pct(0.9), "max": waits[-1] if waits else None},
            "by_item": by_item}


class EscalationLoop(Periodic):
    """Checks for overdue alerts every ``interval`` seconds in a daemon thread (several workers may
    run one each: ``escalate_overdue`` claims each alert with a conditional update)."""

    def __init__(self, store, interval: float):
        self.store = store
        super().__init__("reportread-escalation", interval, lambda: escalate_overdue(store), log,
                         "critical-value escalation")


def count_open(store) -> int:
    with store.read() as tx:
        return tx.conn.execute(select(func.count()).select_from(critical_alert).where(
            critical_alert.c.status == "open")).scalar_one()
