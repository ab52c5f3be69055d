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
from sqlalchemy import bindparam, select

from hutong.core.clock import now_us
from hutong.core.ids import ID_RE
from hutong.mpi.tables import mpi_ident
from hutong.recognition.catalog import Item, current_catalog, day_us, token
from hutong.recognition.institutions import Institution, current_directory, same_scope
from hutong.recognition.tables import recognition_result
from hutong.share.identity import linked_record_ids

MRN_PREFIX = "urn:hutong:mrn:"  # + Organization id: a hospital's own record number (the simulator's too)


_t = recognition_result.c
#: Built once (SQLAlchemy then caches its compiled form): every result of the person for any of the
#: ordered items' codes since the widest window, newest first.
_RESULTS = (select(_t.res_type, _t.res_id, _t.patient, _t.code, _t.institution, _t.effective_us, _t.hidden, _t.summary)
            .where(_t.patient.in_(bindparam("pids", expanding=True)), _t.code.in_(bindparam("codes", expanding=True)),
                   _t.effective_us >= bindparam("since"), _t.effective_us <= bindparam("at"),
                   _t.res_type != "Condition")
            .order_by(_t.effective_us.desc(), _t.res_type, _t.res_id))
_CONDITIONS = (select(_t.code).where(_t.patient.in_(bindparam("pids", expanding=True)),
                                     _t.code.in_(bindparam("codes", expanding=True)), _t.res_type == "Condition"))


_IDENT = select(mpi_ident.c.patient_id).where(mpi_ident.c.system == bindparam("system"),
                                              mpi_ident.c.value == bindparam("value"))


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


def _conditions(tx, patient_ids: list[str], wanted: set[str]) -> frozenset[str]:
    """Which of the ``wanted`` condition codes the person has as an active Condition (from the index)."""
    rows = tx.conn.execute(_CONDITIONS, {"pids": list(patient_ids), "codes": sorted(wanted)}).all()
    return frozenset(r.code for r in rows)


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
        conditions = _conditions(tx, patient_ids, {c for i in items for c, _d in i.rules})
    windows = {i.key: i.validity_for(conditions or frozenset()) for i in items}
    rows = tx.conn.execute(_RESULTS, {"pids": list(patient_ids), "codes": sorted({c for i in items for c in i.codes}),
                                      "since": at - day_us(max(windows.values())), "at": at}).all()
    offers: list[Offer] = []
    for item in items:
        since = at - day_us(windows[item.key])
        codes = set(item.codes)
        for r in rows:  # newest first: the first that qualifies is the one offered
            if r.code not in codes or r.effective_us < since:
                continue
            if r.hidden or not r.institution or r.institution == ordering_institution:
                continue
            source = directory.get(r.institution)
            if source is None or not item.qualified(source.id, source.level, r.effective_us):
                continue
            if not same_scope(item.scope, source, orderer):
                continue
            offers.append(Offer(item, r.res_type, r.res_id, r.patient, source, r.effective_us,
                                r.effective_us + day_us(windows[item.key]), orjson.loads(r.summary)))
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

    idents = [(i["system"], i["value"]) for i in (patient or {}).get("identifier") or []
              if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str)]
    if not idents and patient_id and institution:
        idents = [(f"{MRN_PREFIX}{institution}", patient_id)]
    for system, value in idents[:10]:
        # the patient index's identifier table first (one key lookup), the search index for records
        # it has not indexed yet
        ids = [r[0] for r in tx.conn.execute(_IDENT, {"system": system, "value": value})]
        add(ids or tx.search_ids("Patient", [("identifier", f"{system}|{value}")], limit=20))
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
