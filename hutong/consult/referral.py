"""Two-way referral (双向转诊): a ServiceRequest with a Task whose business status follows the
documented workflow (``vocab.TRANSITIONS["referral"]``)::

    requested ─▶ accepted ─▶ booked ─▶ arrived ─▶ completed ─▶ returned (a downward referral back)
        │            │          ▲
        ├─▶ declined ├─▶ no-slot┘ (booked later, or)
        │     │            │
        │     └────────────┴─▶ redirected (a new referral to another institution)
        └─▶ cancelled (from any open status by the sender)

Upward referrals go from a primary clinic to a secondary or tertiary hospital, downward ones
(rehabilitation, chronic-disease follow-up) back to the primary clinic with a follow-up plan (a
CarePlan). The receiving side acts as its institution (``by_org``); the sender redirects or
cancels. Every change is a step with its time, visible to both sides, and notifies the patient and
both institutions. A referral nobody acts on past its deadline is flagged (``sla.py``).
"""

from __future__ import annotations

from hutong.consult import directory, sla, vocab, work
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, bad_request
from hutong.core.ids import new_id

REFERRAL_CATEGORY = {"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}],
                     "text": "转诊"}


def check_shared(tx, patient: str, records) -> list[str]:
    """The records shared with the receiving side: each must exist and be about ``patient``."""
    out = []
    for ref in records or ():
        if not isinstance(ref, str) or ref.count("/") != 1:
            raise bad_request(f"shared record {str(ref)[:60]!r} must be a relative reference Type/id", "records")
        res_type, rid = ref.split("/")
        try:
            found = tx.read(res_type, rid)
        except FhirError as exc:
            raise bad_request(f"shared record {ref[:60]!r}: {exc.diagnostics}", "records") from exc
        if found is None or found.deleted:
            raise FhirError(422, "business-rule", f"共享的记录不存在 (shared record {ref} not found)")
        res = found.resource
        about = {(res.get(k) or {}).get("reference") for k in ("subject", "patient")}
        if res_type == "Patient":
            about.add(ref)
        if patient not in about:
            raise FhirError(422, "business-rule", f"共享的记录不属于该患者 (shared record {ref} is about someone else)")
        out.append(ref)
    return list(dict.fromkeys(out))


def open_referral(env, tx, *, patient: str, sender: str, sender_org: str, receiver_org: str, reason: str,
                  direction: str, at_us: int, department: str | None = None, records=(), plan: str | None = None,
                  parent: str | None = None, replaces: str | None = None) -> str:
    """Create a referral (ServiceRequest + Task + row) inside ``tx``; returns the Task id."""
    if direction not in ("up", "down"):
        raise bad_request("direction must be up or down", "direction")
    if not reason or not reason.strip():
        raise bad_request("a referral needs a reason", "reason")
    if receiver_org == sender_org:
        raise FhirError(422, "business-rule", "不能转诊到本机构 (refer to another institution)")
    sender_level = directory.org_level(directory.organization(tx, sender_org))
    receiver_level = directory.org_level(directory.organization(tx, receiver_org))
    up = directory.level_rank(receiver_level) < directory.level_rank(sender_level)
    down = directory.level_rank(receiver_level) > directory.level_rank(sender_level)
    if (direction == "up" and not up) or (direction == "down" and not down):
        raise FhirError(422, "business-rule",
                        f"{'上转' if direction == 'up' else '下转'}须转往{'上级' if direction == 'up' else '下级'}机构 "
                        f"({vocab.LEVEL_LABELS[sender_level]} → {vocab.LEVEL_LABELS[receiver_level]})")
    shared = check_shared(tx, patient, records)
    sr = {"resourceType": "ServiceRequest", "id": new_id(), "status": "active", "intent": "order",
          "category": [REFERRAL_CATEGORY],
          "code": {"text": "上转" if direction == "up" else "下转"},
          "subject": {"reference": patient}, "authoredOn": instant(at_us),
          "requester": {"reference": sender}, "performer": [{"reference": receiver_org}],
          "reasonCode": [{"text": reason.strip()[:1000]}]}
    if shared:
        sr["supportingInfo"] = [{"reference": r} for r in shared]
    if plan:
        sr["note"] = [{"text": plan[:2000]}]
    if replaces:
        sr["replaces"] = [{"reference": replaces}]
    sr_id = tx.update("ServiceRequest", sr["id"], sr).stored.res_id
    due = sla.action_due(env, at_us)
    title = ("上转：" if direction == "up" else "下转：") + reason.strip().replace("\n", " ")[:50]
    inputs = [work.text_input("reason", reason.strip()[:1000])] + [work.ref_input("shared-record", r) for r in shared]
    if plan:
        inputs.append(work.text_input("follow-up-plan", plan[:2000]))
    task = work.new_task(kind="referral", status="requested", title=title, patient=patient, requester=sender,
                         owner=receiver_org, at_us=at_us, subkind=direction, department=department,
                         focus=f"ServiceRequest/{sr_id}", inputs=inputs, due_us=due)
    task["basedOn"] = [{"reference": f"ServiceRequest/{sr_id}"}]
    if parent:
        task["partOf"] = [{"reference": f"Task/{parent}"}]
    tid = work.open_item(tx, task, kind="referral", status="requested", patient=patient, requester=sender,
                         title=title, at_us=at_us, actor=sender, subkind=direction, requester_org=sender_org,
                         target_org=receiver_org, department=department, request=f"ServiceRequest/{sr_id}",
                         parent=parent, due_us=due)
    work.notify(env, tx, [receiver_org], tid, f"收到转诊申请：{title}", at_us)
    work.notify(env, tx, [patient, sender_org], tid, f"转诊申请已发出：{title}", at_us)
    env.announce(tid, {"type": "status", "status": "requested"})
    return tid


def refer_patient(env, *, patient: str, sender: str, sender_org: str, receiver_org: str, reason: str,
                  direction: str = "up", department: str | None = None, records=(), plan: str | None = None,
                  at_us: int | None = None) -> dict:
    """Open a referral; returns it (``id`` is the Task id)."""
    at = at_us or now_us()

    def body(tx):
        if not isinstance(patient, str) or not patient.startswith("Patient/"):
            raise bad_request("patient must be a Patient reference", "patient")
        found = tx.read("Patient", patient.split("/", 1)[1])
        if found is None or found.deleted:
            raise FhirError(404, "not-found", f"患者不存在 ({patient})")
        tid = open_referral(env, tx, patient=patient, sender=sender, sender_org=sender_org, receiver_org=receiver_org,
                            reason=reason, direction=direction, department=department, records=records, plan=plan,
                            at_us=at)
        return work.row_dict(work.item_row(tx, tid), at)

    return work.run(env, body)


def _referral(tx, item: str):
    row = work.item_row(tx, item)
    if row.kind != "referral":
        raise FhirError(404, "not-found", "not a referral")
    return row


def _receiver(row, by_org: str) -> None:
    if by_org != row.target_org:
        raise FhirError(403, "forbidden", "只有接收机构可以处理该转诊 (only the receiving institution may act)")


def _sender(row, by_org: str) -> None:
    if by_org != row.requester_org:
        raise FhirError(403, "forbidden", "只有转出机构可以改转或取消 (only the sending institution may act)")


def _both_sides(env, tx, row, text: str, at: int) -> None:
    work.notify(env, tx, [row.patient, row.requester_org, row.target_org], row.id, text, at)


def _set_request_status(tx, row, status: str) -> None:
    if row.request:
        stored = tx.read_current("ServiceRequest", row.request.split("/", 1)[1])
        sr = stored.resource
        if sr.get("status") != status:
            sr["status"] = status
            tx.update("ServiceRequest", sr["id"], sr)


def accept_referral(env, item: str, *, by: str, by_org: str, note: str = "", at_us: int | None = None) -> dict:
    """The receiving institution accepts; it must still book (or say no slot)."""
    at = at_us or now_us()

    def body(tx):
        row = _referral(tx, item)
        _receiver(row, by_org)
        row = work.move(tx, row, "accepted", actor=by, action="accept", at_us=at, note=note or None,
                        values={"first_response_us": row.first_response_us or at, "due_us": sla.action_due(env, at)})
        _both_sides(env, tx, row, f"转诊已被接收：{row.title}", at)
        env.announce(item, {"type": "status", "status": "accepted"})
        return work.row_dict(row, at)

    return work.run(env, body)


def decline_referral(env, item: str, *, by: str, by_org: str, reason: str, note: str = "",
                     at_us: int | None = None) -> dict:
    """The receiving institution declines with a reason; ``no-slot`` makes the status "no slot"."""
    at = at_us or now_us()
    if reason not in vocab.DECLINE_REASONS:
        raise bad_request("reason must be one of " + ", ".join(vocab.DECLINE_REASONS), "reason")
    label = vocab.DECLINE_REASONS[reason][0]
    text = label + (f"：{note.strip()}" if note and note.strip() else "")

    def body(tx):
        row = _referral(tx, item)
        _receiver(row, by_org)
        to = "no-slot" if reason == "no-slot" else "declined"

        def edit(task):
            task["statusReason"] = {"coding": [{"system": vocab.DECLINE_SYSTEM, "code": reason, "display": label}],
                                    "text": text[:500]}

        row = work.move(tx, row, to, actor=by, action="decline", at_us=at, note=text, edit=edit,
                        values={"first_response_us": row.first_response_us or at, "due_us": sla.action_due(env, at)})
        _both_sides(env, tx, row, f"转诊未能接收（{text}），请转出机构改转其他医院：{row.title}", at)
        env.announce(item, {"type": "status", "status": to, "reason": reason})
        return work.row_dict(row, at)

    return work.run(env, body)


def book_referral(env, item: str, *, by: str, by_org: str, start: str | None = None, slot: str | None = None,
                  note: str = "", at_us: int | None = None) -> dict:
    """Book the patient in (an Appointment, on a free Slot when one is named)."""
    at = at_us or now_us()

    def body(tx):
        row = _referral(tx, item)
        _receiver(row, by_org)
        appointment = _appointment(tx, row, start=start, slot=slot, performer=row.target_org, at=at,
                                   description=row.title)
        row = work.move(tx, row, "booked", actor=by, action="book", at_us=at, note=note or None,
                        values={"first_response_us": row.first_response_us or at, "due_us": None},
                        edit=lambda task: task.setdefault("output", []).append(
                            work.ref_input("appointment", appointment["ref"])))
        _both_sides(env, tx, row, f"转诊已预约：{appointment['start_local']}，{row.title}", at)
        env.announce(item, {"type": "status", "status": "booked", "appointment": appointment["ref"]})
        return work.row_dict(row, at) | {"appointment": appointment["ref"]}

    return work.run(env, body)


def _appointment(tx, row, *, start: str | None, slot: str | None, performer: str, at: int, description: str,
                 participants=(), extension=None) -> dict:
    """An Appointment for ``row`` (booked), taking ``slot`` (which must be free) when given."""
    from hutong.consult.schedule import take_slot
    from hutong.core.clock import local_time

    end = None
    if slot:
        start, end = take_slot(tx, slot)
    if not start:
        raise bad_request("a booking needs a slot or a start time", "start")
    start_us = _parse_instant(start)
    appt = {"resourceType": "Appointment", "status": "booked", "description": description[:200],
            "start": instant(start_us), "created": instant(at)[:10],
            "basedOn": [{"reference": row.request}] if row.request else None,
            "slot": [{"reference": slot}] if slot else None,
            "participant": [{"actor": {"reference": row.patient}, "status": "accepted"},
                            {"actor": {"reference": performer}, "status": "accepted"}]
            + [{"actor": {"reference": p}, "status": "accepted"} for p in participants]}
    if end:
        appt["end"] = instant(_parse_instant(end))
    if extension:
        appt["extension"] = extension
    appt = {k: v for k, v in appt.items() if v is not None}
    ref = "Appointment/" + tx.create(appt).stored.res_id
    return {"ref": ref, "start": appt["start"], "start_local": local_time(start_us)}


def _parse_instant(value: str) -> int:
    from datetime import datetime

    from hutong.core.clock import SHANGHAI, to_us

    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_request(f"invalid time {str(value)[:40]!r} (ISO 8601)", "start") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return to_us(dt)


def mark_arrived(env, item: str, *, by: str, by_org: str, at_us: int | None = None) -> dict:
    """The patient arrived at the receiving institution (the visit opens)."""
    at = at_us or now_us()

    def body(tx):
        row = _referral(tx, item)
        _receiver(row, by_org)
        enc = {"resourceType": "Encounter", "status": "in-progress",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                         "display": "ambulatory"},
               "type": [{"text": "转诊就诊"}], "subject": {"reference": row.patient},
               "basedOn": [{"reference": row.request}] if row.request else None,
               "period": {"start": instant(at)}, "serviceProvider": {"reference": row.target_org}}
        enc = {k: v for k, v in enc.items() if v is not None}
        eid = tx.create(enc).stored.res_id
        row = work.move(tx, row, "arrived", actor=by, action="arrive", at_us=at, values={"encounter": f"Encounter/{eid}"},
                        edit=lambda task: task.__setitem__("encounter", {"reference": f"Encounter/{eid}"}))
        _both_sides(env, tx, row, f"患者已到诊：{row.title}", at)
        env.announce(item, {"type": "status", "status": "arrived"})
        return work.row_dict(row, at)

    return work.run(env, body)


def complete_referral(env, item: str, *, by: str, by_org: str, summary: str, at_us: int | None = None) -> dict:
    """The receiving side finished the care it was asked for."""
    at = at_us or now_us()
    if not summary or not summary.strip():
        raise bad_request("completing a referral needs a summary", "summary")

    def body(tx):
        row = _referral(tx, item)
        _receiver(row, by_org)
        row = work.move(tx, row, "completed", actor=by, action="complete", at_us=at, note=summary.strip()[:1000],
                        edit=lambda task: task.setdefault("output", []).append(
                            work.text_input("summary", summary.strip()[:2000])))
        _set_request_status(tx, row, "completed")
        if row.encounter:
            enc = tx.read_current("Encounter", row.encounter.split("/", 1)[1]).resource
            enc["status"] = "finished"
            enc.setdefault("period", {})["end"] = instant(at)
            tx.update("Encounter", enc["id"], enc)
        _both_sides(env, tx, row, f"转诊诊疗已完成：{row.title}", at)
        env.announce(item, {"type": "status", "status": "completed"})
        return work.row_dict(row, at)

    return work.run(env, body)


def return_patient(env, item: str, *, by: str, by_org: str, plan: str, to_org: str | None = None,
                   at_us: int | None = None) -> dict:
    """Send the patient back down (rehabilitation, chronic follow-up) with a follow-up plan.

    Opens a downward referral to the sending clinic (or ``to_org``) carrying a CarePlan."""
    at = at_us or now_us()
    if not plan or not plan.strip():
        raise bad_request("returning a patient needs a follow-up plan", "plan")

    def body(tx):
        row = _referral(tx, item)
        _receiver(row, by_org)
        if row.subkind != "up":
            raise FhirError(409, "business-rule", "只有上转的患者可以下转回基层 (only upward referrals return down)")
        target = to_org or row.requester_org
        care_plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                     "category": [{"text": "下转随访计划"}], "title": "下转随访计划",
                     "description": plan.strip()[:2000], "subject": {"reference": row.patient},
                     "created": instant(at), "author": {"reference": by_org},
                     "basedOn": [], "note": [{"text": plan.strip()[:2000]}]}
        care_plan.pop("basedOn")
        cp_ref = "CarePlan/" + tx.create(care_plan).stored.res_id
        down = open_referral(env, tx, patient=row.patient, sender=by, sender_org=by_org, receiver_org=target,
                             reason="下转随访：" + plan.strip()[:200], direction="down", department=None,
                             records=[cp_ref], plan=plan, at_us=at, parent=row.id)

        def edit(task):
            task.setdefault("output", []).extend([work.ref_input("follow-up-plan", cp_ref),
                                                  work.ref_input("returned-by", f"Task/{down}")])

        row = work.move(tx, row, "returned", actor=by, action="return", at_us=at, note=plan.strip()[:500], edit=edit)
        _both_sides(env, tx, row, f"患者已下转回基层随访：{row.title}", at)
        env.announce(item, {"type": "status", "status": "returned", "downward": down})
        return work.row_dict(row, at) | {"downward": down, "care_plan": cp_ref}

    return work.run(env, body)


def redirect_referral(env, item: str, *, by: str, by_org: str, receiver_org: str, note: str = "",
                      at_us: int | None = None) -> dict:
    """The sender sends a declined (or unbooked) referral to another institution instead."""
    at = at_us or now_us()

    def body(tx):
        row = _referral(tx, item)
        _sender(row, by_org)
        if row.status not in vocab.SENDER_ACTION:
            raise FhirError(409, "business-rule", "只有被拒绝或无号源的转诊可以改转 (redirect a declined or unbooked referral)")
        sr = tx.read_current("ServiceRequest", row.request.split("/", 1)[1]).resource
        task = tx.read_current("Task", row.id).resource
        records = [i["valueReference"]["reference"] for i in task.get("input", ())
                   if (i.get("type") or {}).get("text") == "shared-record"]
        plan = next((n.get("text") for n in sr.get("note", ())), None)
        reason = (sr.get("reasonCode") or [{}])[0].get("text", row.title)
        new = open_referral(env, tx, patient=row.patient, sender=by, sender_org=by_org, receiver_org=receiver_org,
                            reason=reason, direction=row.subkind, department=row.department, records=records,
                            plan=plan, at_us=at, parent=row.id, replaces=row.request)
        _set_request_status(tx, row, "revoked")
        row = work.move(tx, row, "redirected", actor=by, action="redirect", at_us=at, note=note or receiver_org,
                        edit=lambda t: t.setdefault("output", []).append(work.ref_input("redirected-to", f"Task/{new}")))
        env.announce(item, {"type": "status", "status": "redirected", "to": new})
        return work.row_dict(row, at) | {"redirected_to": new}

    return work.run(env, body)


def cancel_referral(env, item: str, *, by: str, by_org: str, reason: str, at_us: int | None = None) -> dict:
    """The sender withdraws a referral that has not been seen to yet."""
    at = at_us or now_us()
    if not reason or not reason.strip():
        raise bad_request("cancelling needs a reason", "reason")

    def body(tx):
        row = _referral(tx, item)
        _sender(row, by_org)
        row = work.move(tx, row, "cancelled", actor=by, action="cancel", at_us=at, note=reason.strip()[:500])
        _set_request_status(tx, row, "revoked")
        _both_sides(env, tx, row, f"转诊已取消（{reason.strip()[:60]}）：{row.title}", at)
        env.announce(item, {"type": "status", "status": "cancelled"})
        return work.row_dict(row, at)

    return work.run(env, body)


def referral_view(store, item: str, at_us: int | None = None) -> dict:
    """One referral with its timeline, request and shared records (both sides see the same)."""
    with store.read() as tx:
        row = _referral(tx, item)
        task = tx.read_current("Task", item).resource
        out = work.row_dict(row, at_us)
        out["steps"] = work.steps(tx, item)
        out["shared"] = [i["valueReference"]["reference"] for i in task.get("input", ())
                         if (i.get("type") or {}).get("text") == "shared-record"]
        out["reason_text"] = next((i["valueString"] for i in task.get("input", ())
                                   if (i.get("type") or {}).get("text") == "reason"), "")
        out["status_reason"] = (task.get("statusReason") or {}).get("text")
        out["outputs"] = [{"type": (o.get("type") or {}).get("text"),
                           "value": o.get("valueString") or (o.get("valueReference") or {}).get("reference")}
                          for o in task.get("output", ())]
        names = {}
        for ref in (row.requester_org, row.target_org):
            if ref:
                try:
                    names[ref] = directory.organization(tx, ref).get("name", ref)
                except FhirError:
                    names[ref] = ref
        out["org_names"] = names
    return out
