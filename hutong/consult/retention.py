"""The 15-year retention of consultation records (互联网诊疗管理办法: at least 15 years) enforced on
the generic FHIR API: a DELETE of a record that belongs to a consultation, referral or
teleconsultation still within its retention period is refused with 409 and an OperationOutcome that
gives the date it may be purged. Registered as the capability's ``delete_guards``.

A resource is retained when it is the Task of a tracked item, the item's ServiceRequest or
Encounter, or a record pointing at one of those (``partOf``, ``basedOn``, ``encounter``: the
messages, reports and prescriptions of the item), or when it carries the retain-until extension
itself."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from hutong.consult import vocab
from hutong.consult.tables import consult_item
from hutong.consult.work import date_of
from hutong.core.clock import now_us
from hutong.core.errors import FhirError

#: The record types a consultation, referral or teleconsultation writes.
RETAINED_TYPES = ("Task", "ServiceRequest", "Encounter", "Communication", "MedicationRequest",
                  "DiagnosticReport", "Appointment", "CarePlan")


def _refs(ref_list) -> list[str]:
    out = []
    for ref in ref_list if isinstance(ref_list, list) else [ref_list]:
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            out.append(ref["reference"])
    return out


def retained_until(tx, res_type: str, res: dict) -> str | None:
    """The date (YYYY-MM-DD) until which this resource must be kept, or None if it is not retained."""
    today = date_of(now_us())
    for ext in res.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == vocab.EXT_RETAIN and isinstance(ext.get("valueDate"), str):
            if ext["valueDate"] > today:
                return ext["valueDate"]
    own = f"{res_type}/{res.get('id')}"
    linked = [own] + _refs(res.get("partOf")) + _refs(res.get("basedOn")) + _refs(res.get("encounter"))
    task_ids = [r.removeprefix("Task/") for r in linked if r.startswith("Task/")]
    c = consult_item.c
    conds = [c.request.in_(linked), c.encounter.in_(linked)]
    if task_ids:
        conds.append(c.id.in_(task_ids))
    row = tx.conn.execute(select(func.max(c.retain_until_us)).where(or_(*conds))).scalar()
    if row is not None and row > now_us():
        return date_of(row)
    return None


def guard_delete(tx, stored) -> None:
    """Refuse the DELETE of a record still within its retention period (409, with the date)."""
    until = retained_until(tx, stored.res_type, stored.resource)
    if until is None:
        return
    years = vocab.RETENTION_YEARS
    raise FhirError(
        409, "business-rule",
        f"{stored.res_type}/{stored.res_id} 属于在线诊疗记录，须保存{years}年，{until}前不得删除 / "
        f"is an internet diagnosis and treatment record kept for {years} years: it may not be deleted "
        f"before {until}", stored.res_type)


DELETE_GUARDS = {t: guard_delete for t in RETAINED_TYPES}
