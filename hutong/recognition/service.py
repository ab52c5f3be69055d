"""Which results a patient already has that recognition covers for a new order (plain Python).

``recognisable_results`` is the rule of the 2022 measures as the platform applies it: for each
catalog item the order names, the latest final result of the same person (every linked record of
the patient index) at *another* institution that

- lies within the item's validity window (shorter for patients with a condition the item names),
- came from an institution qualified for that item *on the result's date*,
- is within the item's scope (province, same city, same medical consortium) of the ordering one,
- and was not hidden by the patient from other institutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import select

from hutong.core.clock import now_us
from hutong.core.ids import ID_RE
from hutong.recognition.catalog import Item, current_catalog, day_us, token
from hutong.recognition.institutions import Institution, current_directory, same_scope
from hutong.recognition.tables import recognition_result
from hutong.share.identity import linked_record_ids

MRN_PREFIX = "urn:hutong:mrn:"  # + Organization id: a hospital's own record number (the simulator's too)


@dataclass(frozen=True)
class Offer:
    """A recognisable result for an ordered item."""

    item: Item
    result_type: str
    result_id: str
    patient: str
    institution: Institution
    effective_us: int
    expires_us: int
    summary: dict

    @property
    def reference(self) -> str:
        return f"{self.result_type}/{self.result_id}"


def order_codes(order: dict) -> list[str]:
    """The ``system|code`` tokens of a draft order (ServiceRequest.code)."""
    return [token(c.get("system"), c.get("code")) for c in (order.get("code") or {}).get("coding") or []
            if c.get("code")]


def _conditions(tx, patient_ids: list[str]) -> frozenset[str]:
    out: set[str] = set()
    for pid in patient_ids:
        for cid in tx.search_ids("Condition", [("patient", f"Patient/{pid}")], limit=200):
            s = tx.read("Condition", cid)
            if s is None or s.deleted:
                continue
            cond = s.resource
            status = {c.get("code") for c in (cond.get("clinicalStatus") or {}).get("coding") or []}
            if status and not status & {"active", "recurrence", "relapse"}:
                continue
            out.update(token(c.get("system"), c.get("code")) for c in (cond.get("code") or {}).get("coding") or [])
    return frozenset(out)


def recognisable_results(tx, patient_ids: list[str], codes: list[str], ordering_institution: str | None,
                         *, at_us: int | None = None, conditions: frozenset[str] | None = None) -> list[Offer]:
    """The recognisable results for an order of ``codes`` at ``ordering_institution``, one per item
    (the latest), for the person whose Patient records are ``patient_ids``."""
    at = now_us() if at_us is None else at_us
    catalog = current_catalog(tx)
    items = [i for i in catalog.items_for(codes) if i.in_force(at)]
    if not items or not patient_ids:
        return []
    directory = current_directory(tx)
    orderer = directory.get(ordering_institution) or Institution(ordering_institution or "", "", None, None, frozenset())
    if conditions is None and any(i.rules for i in items):
        conditions = _conditions(tx, patient_ids)
    t = recognition_result.c
    offers: list[Offer] = []
    for item in items:
        window = item.validity_for(conditions or frozenset())
        since = at - day_us(window)
        rows = tx.conn.execute(
            select(t.res_type, t.res_id, t.patient, t.institution, t.effective_us, t.hidden, t.summary)
            .where(t.patient.in_(patient_ids), t.code.in_(item.codes), t.effective_us >= since, t.effective_us <= at)
            .order_by(t.effective_us.desc(), t.res_type, t.res_id)).all()
        for r in rows:
            if r.hidden or not r.institution or r.institution == ordering_institution:
                continue
            source = directory.get(r.institution)
            if source is None or not item.qualified(source.id, source.level, r.effective_us):
                continue
            if not same_scope(item.scope, source, orderer):
                continue
            offers.append(Offer(item, r.res_type, r.res_id, r.patient, source, r.effective_us,
                                r.effective_us + day_us(window), orjson.loads(r.summary)))
            break
    return offers


def resolve_patient(tx, patient_id: str | None, patient: dict | None, institution: str | None) -> list[str]:
    """The platform's Patient ids for the HIS's patient: from the prefetched Patient's identifiers,
    else the HIS's own id as a record number of the calling institution, else a Patient of that id;
    then every record the patient index links to them. Empty when the patient is unknown."""
    found: list[str] = []

    def add(ids):
        for i in ids:
            if i not in found:
                found.append(i)

    for ident in (patient or {}).get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
            add(tx.search_ids("Patient", [("identifier", f"{ident['system']}|{ident['value']}")], limit=20))
    if not found and patient_id and institution:
        add(tx.search_ids("Patient", [("identifier", f"{MRN_PREFIX}{institution}|{patient_id}")], limit=20))
    if not found and patient_id:
        s = tx.read("Patient", patient_id) if ID_RE.fullmatch(patient_id) else None
        if s is not None and not s.deleted:
            found.append(patient_id)
    out: list[str] = []
    for pid in found:
        for linked in linked_record_ids(tx.conn, pid):
            if linked not in out:
                out.append(linked)
    return out
