"""Telemedicine across the five levels (五级远程医疗: 省 → 市 → 县 → 乡 → 村).

A doctor at a lower level asks a higher level for a teleconsultation (远程会诊), a remote imaging or
ECG reading (远程影像/心电诊断) or a remote outpatient visit (远程门诊)::

    request_teleconsult ─▶ requested ─▶ schedule_teleconsult ─▶ scheduled ─▶ start_session ─▶ in-session
                              │                                                              │
                              └─▶ declined / cancelled                report_teleconsult ─▶ reported

The request carries the question, the patient (a Patient reference or an identifier the patient
index resolves) and the records shared for the purpose. The consulting doctor reads those records
through ``shared_record`` only — nothing else of the patient's — while the request is open and
assigned to them. The session runs in an external video system: Hutong keeps the room link (an
extension on the Appointment) and the times; the report returns as a DiagnosticReport (readings)
or a Communication (advice).
"""

from __future__ import annotations

from hutong.consult import directory, sla, vocab, work
from hutong.consult.referral import _appointment, check_shared
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, bad_request
from hutong.core.ids import new_id

EXT_ROOM = f"{vocab.BASE}/StructureDefinition/video-room"


def resolve_patient(tx, patient: str) -> str:
    """``Patient/…`` as given, or the one Patient an identifier (``system|value``) names."""
    if isinstance(patient, str) and patient.startswith("Patient/"):
        found = tx.read("Patient", patient.split("/", 1)[1])
        if found is None or found.deleted:
            raise FhirError(404, "not-found", f"患者不存在 ({patient})")
        return patient
    if not isinstance(patient, str) or "|" not in patient:
        raise bad_request("patient must be Patient/id or an identifier system|value", "patient")
    ids = tx.search_ids("Patient", [("identifier", patient)], limit=3)
    if len(ids) != 1:
        raise FhirError(422, "business-rule", f"无法唯一确定患者 (the identifier matches {len(ids)} patients)")
    return f"Patient/{ids[0]}"


def _tele(tx, item: str):
    row = work.item_row(tx, item)
    if row.kind != "teleconsult":
        raise FhirError(404, "not-found", "not a telemedicine request")
    return row


def request_teleconsult(env, *, requester: str, patient: str, target_org: str, tele_kind: str, question: str,
                        records=(), department: str | None = None, at_us: int | None = None) -> dict:
    """A lower-level doctor asks a higher level; returns the request (``id`` is the Task id)."""
    at = at_us or now_us()
    if tele_kind not in vocab.TELE_KINDS:
        raise bad_request("kind must be one of " + ", ".join(vocab.TELE_KINDS), "kind")
    if not isinstance(question, str) or not question.strip() or len(question) > 4000:
        raise bad_request("question must be 1..4000 characters", "question")

    def body(tx):
        doc = directory.doctor(tx, requester)
        pat = resolve_patient(tx, patient)
        lower = directory.org_level(directory.organization(tx, doc.org))
        upper = directory.org_level(directory.organization(tx, target_org))
        if directory.level_rank(upper) >= directory.level_rank(lower):
            raise FhirError(422, "business-rule", f"远程医疗须向上级机构申请（{vocab.LEVEL_LABELS[lower]} → "
                                                  f"{vocab.LEVEL_LABELS[upper]}）(ask a higher level)")
        shared = check_shared(tx, pat, records)
        label = vocab.TELE_KINDS[tele_kind][0]
        sr = {"resourceType": "ServiceRequest", "id": new_id(), "status": "active", "intent": "order",
              "category": [{"coding": [{"system": vocab.KIND_SYSTEM, "code": "teleconsult", "display": "远程医疗"}]}],
              "code": {"coding": [{"system": vocab.KIND_SYSTEM, "code": tele_kind, "display": label}], "text": label},
              "subject": {"reference": pat}, "authoredOn": instant(at), "requester": {"reference": doc.role},
              "performer": [{"reference": target_org}], "reasonCode": [{"text": question.strip()[:1000]}]}
        if shared:
            sr["supportingInfo"] = [{"reference": r} for r in shared]
        sr_id = tx.update("ServiceRequest", sr["id"], sr).stored.res_id
        due = sla.action_due(env, at)
        title = f"{label}：{question.strip().replace(chr(10), ' ')[:50]}"
        inputs = [work.text_input("question", question.strip())] + [work.ref_input("shared-record", r) for r in shared]
        task = work.new_task(kind="teleconsult", status="requested", title=title, patient=pat, requester=doc.role,
                             owner=target_org, at_us=at, subkind=tele_kind, department=department,
                             focus=f"ServiceRequest/{sr_id}", inputs=inputs, due_us=due)
        task["basedOn"] = [{"reference": f"ServiceRequest/{sr_id}"}]
        tid = work.open_item(tx, task, kind="teleconsult", status="requested", patient=pat, requester=doc.role,
                             title=title, at_us=at, actor=doc.role, subkind=tele_kind, requester_org=doc.org,
                             target_org=target_org, department=department, request=f"ServiceRequest/{sr_id}",
                             due_us=due)
        work.notify(env, tx, [target_org], tid, f"收到{label}申请：{title}", at)
        env.announce(tid, {"type": "status", "status": "requested"})
        return work.row_dict(work.item_row(tx, tid), at) | {"shared": shared, "levels": [lower, upper]}

    return work.run(env, body)


def schedule_teleconsult(env, item: str, *, by_org: str, consultant: str, slot: str | None = None,
                         start: str | None = None, room_link: str, at_us: int | None = None) -> dict:
    """The consulting side books a time (a Slot of its Schedule), names the consulting doctor and
    records the external video room's link. Rescheduling is the same call again."""
    at = at_us or now_us()
    if not isinstance(room_link, str) or not room_link.startswith(("https://", "http://")) or len(room_link) > 500:
        raise bad_request("room_link must be an http(s) URL of the video system", "room_link")

    def body(tx):
        row = _tele(tx, item)
        if by_org != row.target_org:
            raise FhirError(403, "forbidden", "只有受邀机构可以排期 (only the consulting institution schedules)")
        doc = directory.doctor(tx, consultant)
        if doc.org != row.target_org:
            raise FhirError(422, "business-rule", "会诊医生须属于受邀机构 (the consultant must work there)")
        appt = _appointment(tx, row, start=start, slot=slot, performer=doc.role, at=at, description=row.title,
                            participants=[row.requester],
                            extension=[{"url": EXT_ROOM, "valueUrl": room_link}])

        def edit(task):
            task["input"] = [i for i in task.get("input", ()) if (i.get("type") or {}).get("text") != "room-link"]
            task["input"].append({"type": {"text": "room-link"}, "valueUrl": room_link})
            task.setdefault("output", []).append(work.ref_input("appointment", appt["ref"]))

        row = work.move(tx, row, "scheduled", actor=by_org, action="schedule", at_us=at, note=appt["start_local"],
                        values={"owner": doc.role, "first_response_us": row.first_response_us or at, "due_us": None},
                        edit=edit)
        work.notify(env, tx, [row.requester, row.requester_org, doc.role], item,
                    f"远程医疗已排期：{appt['start_local']}，{row.title}", at)
        env.announce(item, {"type": "status", "status": "scheduled", "appointment": appt["ref"]})
        return work.row_dict(row, at) | {"appointment": appt["ref"], "room_link": room_link}

    return work.run(env, body)


def decline_teleconsult(env, item: str, *, by_org: str, reason: str, at_us: int | None = None) -> dict:
    at = at_us or now_us()
    if not reason or not reason.strip():
        raise bad_request("declining needs a reason", "reason")

    def body(tx):
        row = _tele(tx, item)
        if by_org != row.target_org:
            raise FhirError(403, "forbidden", "only the consulting institution may decline")
        row = work.move(tx, row, "declined", actor=by_org, action="decline", at_us=at, note=reason.strip()[:500],
                        values={"first_response_us": row.first_response_us or at})
        work.notify(env, tx, [row.requester, row.requester_org], item, f"远程医疗申请未被接受：{reason[:60]}", at)
        return work.row_dict(row, at)

    return work.run(env, body)


def start_session(env, item: str, *, by: str, at_us: int | None = None) -> dict:
    """The video session began (either side records it)."""
    at = at_us or now_us()

    def body(tx):
        row = _tele(tx, item)
        if by not in (row.owner, row.requester):
            raise FhirError(403, "forbidden", "only the two doctors record the session")

        def edit(task):
            task["executionPeriod"] = {"start": instant(at)}

        row = work.move(tx, row, "in-session", actor=by, action="start", at_us=at, edit=edit)
        env.announce(item, {"type": "status", "status": "in-session"})
        return work.row_dict(row, at)

    return work.run(env, body)


def report_teleconsult(env, item: str, *, by: str, conclusion: str, findings: str = "",
                       at_us: int | None = None) -> dict:
    """The consulting doctor's report: a DiagnosticReport for readings (imaging, ECG), a
    Communication for a consultation or outpatient visit; the request completes."""
    at = at_us or now_us()
    if not isinstance(conclusion, str) or not conclusion.strip() or len(conclusion) > 4000:
        raise bad_request("conclusion must be 1..4000 characters", "conclusion")

    def body(tx):
        row = _tele(tx, item)
        if row.owner is None and row.status == "requested":
            # A reading (imaging, ECG) needs no session: a doctor of the consulting side reports directly.
            if directory.doctor(tx, by).org != row.target_org:
                raise FhirError(403, "forbidden", "只有受邀机构的医生可以出具报告 (only the consulting side reports)")
        elif by != row.owner:
            raise FhirError(403, "forbidden", "只有会诊医生可以出具报告 (only the consultant reports)")
        label = vocab.TELE_KINDS[row.subkind][0]
        if row.subkind in ("imaging", "ecg"):
            report = {"resourceType": "DiagnosticReport", "status": "final",
                      "code": {"coding": [{"system": vocab.KIND_SYSTEM, "code": row.subkind, "display": label}],
                               "text": label},
                      "basedOn": [{"reference": row.request}], "subject": {"reference": row.patient},
                      "issued": instant(at), "effectiveDateTime": instant(at), "performer": [{"reference": by}],
                      "conclusion": conclusion.strip()}
            if findings:
                report["presentedForm"] = [{"contentType": "text/plain", "title": "所见",
                                            "data": __import__("base64").b64encode(findings.encode()).decode()}]
            ref = "DiagnosticReport/" + tx.create(report).stored.res_id
        else:
            comm = {"resourceType": "Communication", "status": "completed", "basedOn": [{"reference": row.request}],
                    "partOf": [{"reference": f"Task/{row.id}"}], "subject": {"reference": row.patient},
                    "sender": {"reference": by}, "recipient": [{"reference": row.requester}], "sent": instant(at),
                    "category": [{"text": label + "意见"}],
                    "payload": [{"contentString": conclusion.strip()}] + (
                        [{"contentString": findings.strip()}] if findings.strip() else [])}
            ref = "Communication/" + tx.create(comm).stored.res_id

        def edit(task):
            task.setdefault("output", []).append(work.ref_input("report", ref))
            task.setdefault("executionPeriod", {})["end"] = instant(at)

        row = work.move(tx, row, "reported", actor=by, action="report", at_us=at, note=conclusion.strip()[:200],
                        edit=edit, values={"owner": by, "first_response_us": row.first_response_us or at})
        sr = tx.read_current("ServiceRequest", row.request.split("/", 1)[1]).resource
        sr["status"] = "completed"
        tx.update("ServiceRequest", sr["id"], sr)
        work.notify(env, tx, [row.requester, row.requester_org], item, f"{label}报告已返回：{row.title}", at)
        env.announce(item, {"type": "status", "status": "reported", "report": ref})
        return work.row_dict(row, at) | {"report": ref}

    return work.run(env, body)


def shared_records(store, item: str, viewer: str) -> list[str]:
    """The records shared with the consulting side, for ``viewer`` (403 for anyone else)."""
    with store.read() as tx:
        row = work.item_row(tx, item)
        return _shared_for(tx, row, viewer)


def _shared_for(tx, row, viewer: str) -> list[str]:
    if row.kind not in ("teleconsult", "referral"):
        raise FhirError(404, "not-found", "nothing is shared for this item")
    allowed = viewer in (row.owner, row.requester) or (row.owner is None and viewer == row.target_org)
    if row.kind == "referral":
        allowed = allowed or viewer in (row.target_org, row.requester_org)
    if not allowed:
        raise FhirError(403, "forbidden", "这些记录未向您共享 (the records were not shared with you)")
    if row.status in ("cancelled", "declined", "redirected"):
        raise FhirError(403, "forbidden", "申请已结束，共享已收回 (the request is closed: sharing ended)")
    task = tx.read_current("Task", row.id).resource
    return [i["valueReference"]["reference"] for i in task.get("input", ())
            if (i.get("type") or {}).get("text") == "shared-record"]


def shared_record(env, item: str, viewer: str, ref: str, at_us: int | None = None) -> dict:
    """One record shared for ``item``, read by ``viewer`` (403 unless it was shared with them).

    Every read is a step of the item (who read which record, when)."""
    at = at_us or now_us()

    def body(tx):
        row = work.item_row(tx, item)
        if ref not in _shared_for(tx, row, viewer):
            raise FhirError(403, "forbidden", "该记录未向您共享 (this record was not shared for the request)")
        res_type, rid = ref.split("/", 1)
        found = tx.read(res_type, rid)
        if found is None or found.deleted:
            raise FhirError(404, "not-found", "记录已删除 (the record was deleted)")
        work.step(tx, item, row.status, "view-shared", viewer, ref, at)
        return found.resource

    return work.run(env, body)


def telemed_steps(store, item: str) -> list[dict]:
    """The timeline of a request (who scheduled, read, started and reported, and when)."""
    with store.read() as tx:
        _tele(tx, item)
        return work.steps(tx, item)
