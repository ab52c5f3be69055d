"""E-prescriptions (电子处方) in an internet follow-up visit, valid only after a pharmacist's review.

``issue_prescription`` (the doctor in charge of an open follow-up) writes one MedicationRequest per
drug, all ``draft`` and sharing a ``groupIdentifier``; ``review_prescription`` (a pharmacist — a
PractitionerRole with the code ``pharmacist`` — who is not the prescriber) approves them (``active``:
now valid, the patient can have it dispensed) or rejects them (``cancelled`` with the reason).
Free consultations (义诊) cannot prescribe. ``prescription_valid`` is the one test of validity.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from hutong.consult import directory, work
from hutong.consult.tables import consult_rx
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, bad_request
from hutong.core.ids import new_id

RX_SYSTEM = "https://hutong.example/fhir/sid/e-prescription"
MAX_DRUGS = 5  # 处方管理办法: at most five drugs per prescription


def issue_prescription(env, item: str, doctor: str, drugs: list[dict], *, at_us: int | None = None) -> dict:
    """Write an e-prescription for an open follow-up; returns it with status ``pending`` review.

    ``drugs``: ``[{"name": "二甲双胍缓释片", "dosage": "0.5g 每日两次", "quantity": 60, "unit": "片"}]``."""
    at = at_us or now_us()
    if not isinstance(drugs, list) or not 1 <= len(drugs) <= MAX_DRUGS:
        raise bad_request(f"a prescription has 1 to {MAX_DRUGS} drugs", "drugs")
    for i, d in enumerate(drugs):
        if not isinstance(d, dict) or not str(d.get("name", "")).strip() or not str(d.get("dosage", "")).strip():
            raise bad_request(f"drug {i + 1} needs a name and a dosage", "drugs")

    def body(tx):
        row = work.item_row(tx, item)
        if row.kind != "followup":
            raise FhirError(422, "business-rule", "只有互联网复诊可以开具电子处方 (only follow-up visits prescribe)")
        if row.status != "in-progress":
            raise FhirError(409, "business-rule", "复诊未在进行中 (the visit is not open)")
        if row.owner != doctor:
            raise FhirError(403, "forbidden", "只有接诊医生可以开方 (only the doctor in charge prescribes)")
        doc = directory.doctor(tx, doctor)
        rx_id = new_id()
        ids = []
        for d in drugs:
            mr = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
                  "groupIdentifier": {"system": RX_SYSTEM, "value": rx_id},
                  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                            "code": "outpatient"}]}],
                  "medicationCodeableConcept": {"text": str(d["name"]).strip()[:200]},
                  "subject": {"reference": row.patient}, "encounter": {"reference": row.encounter},
                  "authoredOn": instant(at), "requester": {"reference": doctor},
                  "dosageInstruction": [{"text": str(d["dosage"]).strip()[:500]}]}
            if d.get("quantity"):
                try:
                    qty = float(d["quantity"])
                except (TypeError, ValueError) as exc:
                    raise bad_request("quantity must be a number", "drugs") from exc
                if not 0 < qty <= 10000:
                    raise bad_request("quantity must be between 0 and 10000", "drugs")
                mr["dispenseRequest"] = {"quantity": {"value": qty, "unit": str(d.get("unit") or "")[:20] or None}}
                mr["dispenseRequest"]["quantity"] = {k: v for k, v in mr["dispenseRequest"]["quantity"].items() if v}
            ids.append(tx.create(mr).stored.res_id)
        tx.conn.execute(insert(consult_rx).values(id=rx_id, item=item, status="pending", prescriber=doctor, org=doc.org,
                                                  requests=",".join(ids), created_us=at))
        work.step(tx, item, row.status, "prescribe", doctor, f"电子处方 {len(ids)} 种药品，待药师审核", at)
        work.notify(env, tx, [doc.org], item, "有新的电子处方待审核", at)
        env.announce(item, {"type": "prescription", "id": rx_id, "status": "pending"})
        return {"id": rx_id, "status": "pending", "requests": [f"MedicationRequest/{i}" for i in ids], "item": item}

    return work.run(env, body)


def review_prescription(env, rx_id: str, pharmacist: str, decision: str, note: str = "",
                        *, at_us: int | None = None) -> dict:
    """A pharmacist approves (the prescription becomes valid) or rejects it (with a reason)."""
    at = at_us or now_us()
    if decision not in ("approve", "reject"):
        raise bad_request("decision must be approve or reject", "decision")
    if decision == "reject" and not (note or "").strip():
        raise bad_request("a rejection needs a reason", "note")

    def body(tx):
        rx = tx.conn.execute(select(consult_rx).where(consult_rx.c.id == rx_id)).first()
        if rx is None:
            raise FhirError(404, "not-found", "处方不存在 (unknown prescription)")
        ph = directory.doctor(tx, pharmacist)
        if not ph.pharmacist:
            raise FhirError(403, "forbidden", "只有药师可以审方 (only a pharmacist reviews prescriptions)")
        if ph.role == rx.prescriber:
            raise FhirError(403, "forbidden", "开方医生不能审核自己的处方 (the prescriber cannot review)")
        if rx.org and ph.org != rx.org:
            raise FhirError(403, "forbidden", "请由开方机构的药师审核 (a pharmacist of the prescribing institution)")
        status = "approved" if decision == "approve" else "rejected"
        done = tx.conn.execute(update(consult_rx).where(consult_rx.c.id == rx_id, consult_rx.c.status == "pending")
                               .values(status=status, reviewer=ph.role, note=(note or "").strip()[:1000] or None,
                                       reviewed_us=at))
        if done.rowcount != 1:
            raise FhirError(409, "conflict", "该处方已审核 (already reviewed)")
        for mid in rx.requests.split(","):
            stored = tx.read_current("MedicationRequest", mid)
            mr = stored.resource
            mr["status"] = "active" if status == "approved" else "cancelled"
            text = f"药师审核{'通过' if status == 'approved' else '不通过'}（{ph.name}，{instant(at)}）" + (
                f"：{note.strip()}" if note and note.strip() else "")
            mr.setdefault("note", []).append({"authorReference": {"reference": ph.role}, "time": instant(at),
                                              "text": text[:1000]})
            if status == "rejected":
                mr["statusReason"] = {"text": note.strip()[:500]}
            tx.update("MedicationRequest", mid, mr, if_match=stored.version_id)
        row = work.item_row(tx, rx.item)
        work.step(tx, rx.item, row.status, "review-" + decision, ph.role, note or None, at)
        msg = "您的电子处方已通过药师审核，可凭处方取药。" if status == "approved" else f"电子处方未通过药师审核：{note.strip()[:60]}"
        work.notify(env, tx, [row.patient, rx.prescriber], rx.item, msg, at)
        env.announce(rx.item, {"type": "prescription", "id": rx_id, "status": status})
        return {"id": rx_id, "status": status, "reviewer": ph.role, "item": rx.item}

    return work.run(env, body)


def prescription_valid(store, rx_id: str) -> bool:
    """Whether a prescription may be dispensed: reviewed and approved, every drug ``active``."""
    with store.read() as tx:
        rx = tx.conn.execute(select(consult_rx).where(consult_rx.c.id == rx_id)).first()
        if rx is None or rx.status != "approved":
            return False
        for mid in rx.requests.split(","):
            found = tx.read("MedicationRequest", mid)
            if found is None or found.deleted or found.resource.get("status") != "active":
                return False
    return True


def pending_reviews(store, org: str | None, limit: int = 100) -> list[dict]:
    """Prescriptions waiting for review (a pharmacist's queue), oldest first."""
    c = consult_rx.c
    q = select(consult_rx).where(c.status == "pending")
    if org:
        q = q.where(c.org == org)
    with store.read() as tx:
        rows = tx.conn.execute(q.order_by(c.created_us).limit(limit)).all()
        out = []
        for r in rows:
            drugs = []
            for mid in r.requests.split(","):
                mr = tx.read("MedicationRequest", mid)
                if mr is not None and not mr.deleted:
                    drugs.append({"name": mr.resource["medicationCodeableConcept"]["text"],
                                  "dosage": mr.resource["dosageInstruction"][0]["text"]})
            out.append({"id": r.id, "item": r.item, "prescriber": r.prescriber, "created": instant(r.created_us),
                        "drugs": drugs})
    return out


def prescriptions_of(store, item: str) -> list[dict]:
    c = consult_rx.c
    with store.read() as tx:
        rows = tx.conn.execute(select(consult_rx).where(c.item == item).order_by(c.created_us)).all()
    return [{"id": r.id, "status": r.status, "reviewer": r.reviewer, "note": r.note,
             "requests": [f"MedicationRequest/{m}" for m in r.requests.split(",")]} for r in rows]
