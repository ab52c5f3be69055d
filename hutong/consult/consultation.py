"""Online consultation (医生在线, 义诊) and internet-hospital follow-up visits (互联网复诊).

The whole life of one consultation, as plain functions a test calls without a server:

``ask_question`` → (queue; ``assign_consultation``) → ``accept_consultation`` → ``send_message`` … →
``close_consultation`` (advice, optionally a referral or an appointment suggestion) →
``rate_consultation``. ``cancel_consultation`` while waiting. Missed first responses escalate
(``hutong/consult/sla.py``).

Rules:
- No online first visits: a follow-up (``followup``) needs an earlier in-person visit (a finished
  Encounter of class ambulatory, emergency or inpatient, not virtual) of the patient within
  ``consult_followup_window_days``; the visit's diagnosis is carried into the consultation, and
  the follow-up goes to that visit's institution unless the resident names another hospital.
- A free consultation (义诊) is advice only: no e-prescription (``prescription.py``).
- Red flags (the triage capability's rules: chest pain, stroke signs, heavy bleeding, suicidal
  thoughts…) mark the consultation urgent (first in every queue) and the answer tells the
  resident to call 120 or go to an emergency department now.
- Every record carries its retention date (15 years, ``vocab.RETENTION_YEARS``).
"""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import insert, select

from hutong.consult import directory, sla, vocab, work
from hutong.consult.tables import consult_item, consult_message
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, bad_request
from hutong.core.ids import new_id

MAX_TEXT = 2000
MAX_ATTACHMENTS = 9
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf"})
IN_PERSON = frozenset({"AMB", "EMER", "IMP", "ACUTE", "NONAC", "OBSENC", "SS", "PRENC", "HH"})
EMERGENCY_ADVICE = "您描述的情况可能危及生命：请立即拨打 120 或马上到最近的医院急诊科就诊，不要等待在线回复。"


def _text(value: str, name: str = "text", limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{name} must not be empty", name)
    if len(value) > limit:
        raise bad_request(f"{name} is longer than {limit} characters", name)
    return value.strip()


def store_attachments(tx, attachments, patient: str) -> list[str]:
    """Store images/reports as Binary; returns ``Binary/…`` references.

    ``attachments`` are ``(content_type, data)`` with ``data`` bytes or base64 text."""
    if len(attachments or ()) > MAX_ATTACHMENTS:
        raise bad_request(f"at most {MAX_ATTACHMENTS} attachments", "attachments")
    refs = []
    for i, (ctype, data) in enumerate(attachments or ()):
        ctype = (ctype or "").split(";")[0].strip().lower()
        if ctype not in IMAGE_TYPES:
            raise bad_request(f"attachment {i + 1}: only images and PDF reports are accepted (got {ctype[:40]!r})",
                              "attachments")
        if isinstance(data, str):
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request(f"attachment {i + 1}: data is not base64", "attachments") from exc
        if not data:
            raise bad_request(f"attachment {i + 1} is empty", "attachments")
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise bad_request(f"attachment {i + 1} is larger than {MAX_ATTACHMENT_BYTES // 1024 // 1024} MB",
                              "attachments")
        binary = {"resourceType": "Binary", "contentType": ctype, "securityContext": {"reference": patient},
                  "data": base64.b64encode(data).decode()}
        refs.append("Binary/" + tx.create(binary).stored.res_id)
    return refs


def _patient(tx, ref: str) -> dict:
    if not isinstance(ref, str) or not ref.startswith("Patient/"):
        raise bad_request("patient must be a Patient reference", "patient")
    found = tx.read("Patient", ref.split("/", 1)[1])
    if found is None or found.deleted:
        raise FhirError(404, "not-found", f"患者不存在 (unknown patient {ref})")
    return found.resource


def manages(tx, guardian: str, dependant: str) -> bool:
    """True when ``guardian`` (``Patient/…``) manages ``dependant``'s health card: the card's guardian
    relation (a child's or an elderly parent's card issued under the guardian's own card), both cards
    not revoked. This is the relation the card capability records; nothing else grants it."""
    from hutong.card.tables import card_card  # the card capability's record of who manages whom

    c = card_card.c
    own = select(c.card_id).where(c.patient == guardian, c.status != "revoked")
    row = tx.conn.execute(select(c.card_id).where(c.patient == dependant, c.status != "revoked",
                                                  c.guardian_card.in_(own))
                          .limit(1)).first()
    return row is not None


def prior_visit(tx, env, patient: str, encounter: str | None, at_us: int) -> dict:
    """The in-person visit a follow-up builds on (422 when there is none: no online first visits)."""
    window_us = int(env.setting("consult_followup_window_days", 365)) * 86400 * 1_000_000
    if encounter:
        if not encounter.startswith("Encounter/"):
            raise bad_request("encounter must be an Encounter reference", "encounter")
        ids = [encounter.split("/", 1)[1]]
    else:
        ids = tx.search_ids("Encounter", [("patient", patient), ("status", "finished")], limit=200)
    best = None
    for eid in ids:
        found = tx.read("Encounter", eid)
        if found is None or found.deleted:
            continue
        enc = found.resource
        if (enc.get("subject") or {}).get("reference") != patient or enc.get("status") != "finished":
            continue
        if (enc.get("class") or {}).get("code") not in IN_PERSON:
            continue
        end = (enc.get("period") or {}).get("end") or (enc.get("period") or {}).get("start")
        end_us = _instant_us(end)
        if end_us is None or end_us > at_us or at_us - end_us > window_us:
            continue
        if best is None or end_us > best[0]:
            best = (end_us, enc)
    if best is None:
        raise FhirError(422, "business-rule",
                        "互联网诊疗仅限常见病、慢性病复诊：未找到您近期在医疗机构线下就诊的记录，请先到医院面诊 "
                        "(internet visits are follow-ups only: no in-person visit found)")
    return best[1]


def _instant_us(value: str | None) -> int | None:
    from datetime import datetime

    from hutong.core.clock import SHANGHAI, to_us

    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return to_us(dt)


def _diagnosis(enc: dict) -> str:
    for rc in enc.get("reasonCode") or ():
        text = rc.get("text") or next((c.get("display") for c in rc.get("coding", ()) if c.get("display")), None)
        if text:
            return text
    return ""


def suggest_department(env, text: str, age: float | None, sex: str | None, offered: list[str] | None):
    """The triage capability's answer (departments best first, red flags) for a question."""
    from hutong.triage.install import triager_for

    triager = env.triager if getattr(env, "triager", None) is not None else triager_for(env.settings)
    env.triager = triager
    return triager.answer(text[:2000], age, sex, offered=offered or None)


def ask_question(env, *, patient: str, text: str, asker: str | None = None, kind: str = "free",
                 age: float | None = None, sex: str | None = None, department: str | None = None,
                 hospital: str | None = None, doctor: str | None = None, encounter: str | None = None,
                 attachments=(), at_us: int | None = None) -> dict:
    """A resident (or a guardian, ``asker``) asks a question; returns the new consultation.

    The answer says where it went (department, hospital, doctor), when a first response is due,
    and whether it is urgent (then ``advice`` tells the resident to call 120)."""
    at = at_us or now_us()
    text = _text(text)
    asker = asker or patient
    if kind not in ("free", "followup"):
        raise bad_request("kind must be free or followup", "kind")
    if age is not None and not (0 <= age <= 130):
        raise bad_request("age must be between 0 and 130", "age")

    def body(tx):
        _patient(tx, patient)
        if asker != patient and not manages(tx, asker, patient):
            raise FhirError(403, "forbidden", "只有监护人可为被监护人提问 / only the guardian who manages this "
                            "person's health card may ask for them", "patient")
        target_org, dept, owner, diagnosis, visit = hospital, department, None, "", None
        if doctor:
            doc = directory.doctor(tx, doctor)
            if not doc.online:
                raise FhirError(422, "business-rule", "该医生未开通在线咨询 (the doctor does not take online questions)")
            owner, target_org = doc.role, doc.org
            dept = dept if dept in doc.departments else (doc.departments[0] if doc.departments else dept)
        if kind == "followup":
            visit = prior_visit(tx, env, patient, encounter, at)
            diagnosis = _diagnosis(visit)
            target_org = target_org or (visit.get("serviceProvider") or {}).get("reference")
            if not dept:
                dept = next((c.get("code") for c in (visit.get("serviceType") or {}).get("coding", ())
                             if c.get("code")), None)
        if target_org:
            directory.organization(tx, target_org)
        offered = directory.offered_departments(tx, target_org) if target_org and not dept else None
        triage = suggest_department(env, text, age, sex, offered)
        flags = triage.get("red_flags") or []
        urgent = bool(flags)
        if not dept:
            dept = next((d["code"] for d in triage["departments"] if d["code"] != "20" or urgent), None)
        due = sla.response_due(env, at)
        title = text.replace("\n", " ")[:60]
        refs = store_attachments(tx, attachments, patient)
        inputs = [work.text_input("question", text)]
        if age is not None:
            inputs.append({"type": {"text": "age"}, "valueDecimal": age})
        if sex:
            inputs.append({"type": {"text": "sex"}, "valueCode": sex})
        if diagnosis:
            inputs.append(work.text_input("diagnosis", diagnosis))
        if visit is not None:
            inputs.append(work.ref_input("prior-visit", f"Encounter/{visit['id']}"))
        inputs += [work.ref_input("attachment", r) for r in refs]
        task = work.new_task(kind=kind, status="waiting", title=title, patient=patient, requester=asker,
                             owner=owner or target_org, at_us=at, urgent=urgent, department=dept, inputs=inputs,
                             due_us=due, red_flags=[f["label"] for f in flags])
        tid = work.open_item(tx, task, kind=kind, status="waiting", patient=patient, requester=asker, title=title,
                             at_us=at, actor=asker, target_org=target_org, department=dept, owner=owner,
                             urgent=urgent, due_us=due)
        recipients = [owner] if owner else [target_org or f"Department/{dept}"]
        work.notify(env, tx, recipients, tid, ("【紧急】" if urgent else "") + f"新咨询：{title[:40]}", at)
        env.pending.append((f"consult.queue.{work.subject_token(target_org or 'any')}.{dept or 'any'}",
                            {"item": tid, "urgent": urgent}))
        return {"id": tid, "status": "waiting", "kind": kind, "department": dept, "hospital": target_org,
                "doctor": owner, "urgent": urgent, "red_flags": flags,
                "advice": EMERGENCY_ADVICE if urgent else sla.expectation(due),
                "first_response_due": instant(due), "suggested": triage["departments"][:3],
                "diagnosis": diagnosis or None, "attachments": refs}

    return work.run(env, body)


def _doctor_may_take(doc: directory.Doctor, row) -> None:
    if not doc.online:
        raise FhirError(403, "forbidden", "该医生未开通在线咨询 (not an online doctor)")
    if row.owner and row.owner != doc.role:
        raise FhirError(409, "conflict", "该咨询已指派给其他医生 (assigned to another doctor)")
    if row.target_org and doc.org != row.target_org:
        raise FhirError(403, "forbidden", "该咨询属于其他医院 (the consultation belongs to another hospital)")
    if not row.owner and row.department and doc.departments and not any(
            row.department == d or row.department.startswith(d + ".") or d.startswith(row.department + ".")
            for d in doc.departments):
        raise FhirError(403, "forbidden", "该咨询属于其他科室 (the consultation is for another department)")


def _consultation(tx, item: str):
    row = work.item_row(tx, item)
    if row.kind not in ("free", "followup"):
        raise FhirError(404, "not-found", "not an online consultation")
    return row


def assign_consultation(env, item: str, doctor: str, *, by: str, at_us: int | None = None) -> dict:
    """Assign a waiting consultation to a doctor on duty (a coordinator or the department)."""
    at = at_us or now_us()

    def body(tx):
        row = _consultation(tx, item)
        doc = directory.doctor(tx, doctor)
        if row.status != "waiting":
            raise FhirError(409, "business-rule", "只能指派待接诊的咨询 (only waiting consultations can be assigned)")
        if row.target_org and doc.org != row.target_org:
            raise FhirError(403, "forbidden", "医生不属于该医院 (the doctor works elsewhere)")
        if not doc.online:
            raise FhirError(422, "business-rule", "该医生未开通在线咨询 (not an online doctor)")
        row = work.move(tx, row, "waiting", actor=by, action="assign", at_us=at, note=doc.name,
                        values={"owner": doc.role, "target_org": row.target_org or doc.org})
        work.notify(env, tx, [doc.role], item, f"您有新的指派咨询：{row.title[:40]}", at)
        env.announce(item, {"type": "status", "status": "waiting", "owner": doc.role})
        return work.row_dict(row, at)

    return work.run(env, body)


def accept_consultation(env, item: str, doctor: str, *, at_us: int | None = None) -> dict:
    """A doctor on duty picks up a waiting consultation (or the one assigned to them).

    Opens the online visit (an Encounter of class ``VR``, virtual) and stops the first-response clock."""
    at = at_us or now_us()

    def body(tx):
        row = _consultation(tx, item)
        doc = directory.doctor(tx, doctor)
        if row.status != "waiting":
            raise FhirError(409, "conflict", "该咨询已被接诊或已结束 (already taken or closed)")
        _doctor_may_take(doc, row)
        enc = {"resourceType": "Encounter", "status": "in-progress",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR",
                         "display": "virtual"},
               "type": [{"text": vocab.KINDS[row.kind][0]}],
               "subject": {"reference": row.patient},
               "participant": [{"individual": {"reference": doc.role}}],
               "period": {"start": instant(at)},
               "serviceProvider": {"reference": doc.org} if doc.org else None}
        if row.department:
            enc["serviceType"] = {"coding": [{"system": vocab.DEPARTMENT_SYSTEM, "code": row.department}]}
        enc = {k: v for k, v in enc.items() if v is not None}
        eid = tx.create(enc).stored.res_id

        def edit(task):
            task["encounter"] = {"reference": f"Encounter/{eid}"}
            task["executionPeriod"] = {"start": instant(at)}

        row = work.move(tx, row, "in-progress", actor=doc.role, action="accept", at_us=at, note=doc.name,
                        values={"owner": doc.role, "first_response_us": at, "encounter": f"Encounter/{eid}",
                                "target_org": row.target_org or doc.org, "due_us": None},
                        edit=edit)
        work.notify(env, tx, [row.requester], item, f"{doc.name}医生已接诊，请留意回复。", at)
        env.announce(item, {"type": "status", "status": "in-progress", "doctor": doc.role, "doctor_name": doc.name})
        return work.row_dict(row, at)

    return work.run(env, body)


def participants(row) -> set[str]:
    return {r for r in (row.patient, row.requester, row.owner) if r}


def send_message(env, item: str, sender: str, text: str = "", *, attachments=(), at_us: int | None = None) -> dict:
    """A message in the conversation (a Communication ``partOf`` the Task), delivered live."""
    at = at_us or now_us()
    text = (text or "").strip()
    if not text and not attachments:
        raise bad_request("a message needs text or an attachment", "text")
    if len(text) > MAX_TEXT:
        raise bad_request(f"text is longer than {MAX_TEXT} characters", "text")

    def body(tx):
        row = work.item_row(tx, item)
        if sender not in participants(row):
            raise FhirError(403, "forbidden", "只有咨询双方可以发消息 (only the resident and the doctor may write)")
        doctor_side = sender == row.owner
        if row.status not in ("waiting", "in-progress") or (doctor_side and row.status != "in-progress"):
            raise FhirError(409, "business-rule", "咨询未在进行中 (the consultation is not open for messages)")
        refs = store_attachments(tx, attachments, row.patient)
        payload = ([{"contentString": text}] if text else []) + [
            {"contentAttachment": {"url": r, "title": f"附件 {i + 1}"}} for i, r in enumerate(refs)]
        comm = {"resourceType": "Communication", "id": new_id(), "status": "completed",
                "partOf": [{"reference": f"Task/{item}"}], "subject": {"reference": row.patient},
                "sent": instant(at), "sender": {"reference": sender},
                "recipient": [{"reference": r} for r in sorted(participants(row) - {sender})] or None,
                "payload": payload}
        if row.encounter:
            comm["encounter"] = {"reference": row.encounter}
        comm = {k: v for k, v in comm.items() if v is not None}
        cid = tx.update("Communication", comm["id"], comm).stored.res_id
        seq = tx.conn.execute(insert(consult_message).values(item=item, communication=cid, sender=sender,
                                                             ts_us=at)).inserted_primary_key[0]
        msg = {"seq": seq, "id": cid, "sender": sender, "text": text, "attachments": refs, "at": instant(at),
               "ts_us": at}
        env.announce(item, {"type": "message", **msg})
        return msg

    return work.run(env, body)


def messages(store, item: str, after: int = 0, limit: int = 200) -> list[dict]:
    """The conversation after message number ``after``, oldest first (the polling fall-back)."""
    m = consult_message.c
    with store.read() as tx:
        work.item_row(tx, item)
        rows = tx.conn.execute(select(m.id, m.communication, m.sender, m.ts_us).where(
            m.item == item, m.id > after).order_by(m.id).limit(limit)).all()
        out = []
        for r in rows:
            found = tx.read("Communication", r.communication)
            comm = found.resource if found is not None and not found.deleted else {}
            text = "".join(p.get("contentString", "") for p in comm.get("payload", ()))
            atts = [p["contentAttachment"]["url"] for p in comm.get("payload", ()) if "contentAttachment" in p]
            out.append({"seq": r.id, "id": r.communication, "sender": r.sender, "text": text, "attachments": atts,
                        "at": instant(r.ts_us), "ts_us": r.ts_us})
    return out


def close_consultation(env, item: str, doctor: str, advice: str, *, refer_to: str | None = None,
                       appointment: str | None = None, at_us: int | None = None) -> dict:
    """The doctor closes with advice, optionally suggesting an appointment or referring the patient.

    ``refer_to`` (an Organization) opens an upward referral from the doctor's institution."""
    at = at_us or now_us()
    advice = _text(advice, "advice")

    def body(tx):
        row = _consultation(tx, item)
        if row.owner != doctor:
            raise FhirError(403, "forbidden", "只有接诊医生可以结束咨询 (only the doctor in charge may close)")
        outputs = [work.text_input("advice", advice)]
        if appointment:
            outputs.append(work.text_input("appointment-suggestion", _text(appointment, "appointment", 500)))
        referral_id = None
        if refer_to:
            from hutong.consult import referral

            doc = directory.doctor(tx, doctor)
            referral_id = referral.open_referral(env, tx, patient=row.patient, sender=doctor, sender_org=doc.org,
                                                 receiver_org=refer_to, reason=advice, direction="up",
                                                 department=row.department, at_us=at, parent=item)
            outputs.append(work.ref_input("referral", f"Task/{referral_id}"))

        def edit(task):
            task["output"] = outputs
            task.setdefault("executionPeriod", {})["end"] = instant(at)

        row = work.move(tx, row, "closed", actor=doctor, action="close", at_us=at, note=advice[:200], edit=edit)
        if row.encounter:
            enc = tx.read_current("Encounter", row.encounter.split("/", 1)[1]).resource
            enc["status"] = "finished"
            enc.setdefault("period", {})["end"] = instant(at)
            tx.update("Encounter", enc["id"], enc)
        work.notify(env, tx, [row.requester], item, "医生已给出建议，欢迎对本次咨询评价。", at)
        env.announce(item, {"type": "status", "status": "closed", "advice": advice, "referral": referral_id})
        return work.row_dict(row, at) | {"advice": advice, "referral": referral_id}

    return work.run(env, body)


def cancel_consultation(env, item: str, by: str, reason: str = "", *, at_us: int | None = None) -> dict:
    """The resident withdraws a question nobody has taken yet."""
    at = at_us or now_us()

    def body(tx):
        row = _consultation(tx, item)
        if by not in (row.patient, row.requester):
            raise FhirError(403, "forbidden", "只有提问人可以取消 (only the resident may cancel)")
        row = work.move(tx, row, "cancelled", actor=by, action="cancel", at_us=at, note=reason or "居民取消")
        env.announce(item, {"type": "status", "status": "cancelled"})
        return work.row_dict(row, at)

    return work.run(env, body)


def rate_consultation(env, item: str, by: str, stars: int, comment: str = "", complaint: str = "",
                      *, at_us: int | None = None) -> dict:
    """The resident rates a closed consultation (once), optionally with a complaint."""
    at = at_us or now_us()
    if not isinstance(stars, int) or isinstance(stars, bool) or not 1 <= stars <= 5:
        raise bad_request("stars must be 1 to 5", "stars")

    def body(tx):
        row = _consultation(tx, item)
        if by not in (row.patient, row.requester):
            raise FhirError(403, "forbidden", "只有提问人可以评价 (only the resident may rate)")
        if row.status != "closed":
            raise FhirError(409, "business-rule", "咨询结束后才能评价 (rate after the consultation is closed)")
        if row.rating is not None:
            raise FhirError(409, "business-rule", "已评价过 (already rated)")

        def edit(task):
            task.setdefault("output", []).append({"type": {"text": "rating"}, "valueInteger": stars})
            if comment:
                task["output"].append(work.text_input("rating-comment", comment[:500]))
            if complaint:
                task["output"].append(work.text_input("complaint", complaint[:2000]))

        row = work.move(tx, row, "closed", actor=by, action="rate", at_us=at, note=f"{stars}★ {comment}"[:500],
                        values={"rating": stars, "complaint": complaint[:2000] or None, "closed_us": row.closed_us},
                        edit=edit)
        if complaint:
            work.notify(env, tx, [row.target_org, row.owner], item, f"收到投诉：{complaint[:60]}", at)
        return work.row_dict(row, at)

    return work.run(env, body)


def consultation_view(store, item: str, at_us: int | None = None) -> dict:
    """One consultation with its question, timeline and outputs (pages and the API)."""
    with store.read() as tx:
        row = work.item_row(tx, item)
        task = tx.read_current("Task", item).resource
        out = work.row_dict(row, at_us)
        out["steps"] = work.steps(tx, item)
        out["inputs"] = _io(task.get("input"))
        out["outputs"] = _io(task.get("output"))
        out["red_flags"] = [e["valueString"] for e in task.get("extension", ()) if e.get("url") == vocab.EXT_URGENT]
        out["doctor_name"] = ""
        if row.owner:
            try:
                out["doctor_name"] = directory.doctor(tx, row.owner).name
            except FhirError:
                pass
    return out


def _io(entries) -> dict:
    out: dict = {}
    for e in entries or ():
        label = (e.get("type") or {}).get("text", "")
        value = next((v for k, v in e.items() if k.startswith("value")), None)
        if isinstance(value, dict) and "reference" in value:
            value = value["reference"]
        out.setdefault(label, []).append(value)
    return out


def open_count(store, owner: str) -> int:
    c = consult_item.c
    from sqlalchemy import func

    with store.read() as tx:
        return tx.conn.execute(select(func.count()).select_from(consult_item).where(
            c.owner == owner, c.status.in_(("waiting", "in-progress")))).scalar_one()
