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

from hutong.core.clock import now_us
from hutong.core.ids import ID_RE
from hutong.recognition.catalog import Item, current_catalog, day_us, fingerprints, token
from hutong.recognition.institutions import Institution, current_directory, same_scope

MRN_PREFIX = "urn:hutong:mrn:"  # + Organization id: a hospital's own record number (the simulator's too)


# The order-time queries go straight to the driver (as the store's read by id does): the hook asks
# them on every call, and SQLAlchemy's statement building and result machinery cost several times
# the index probes themselves. Written with ``?`` and adapted to the driver's placeholder.
def fetch(tx, sql: str, params: tuple) -> list[tuple]:
    """Rows of ``sql`` (``?`` placeholders) on the transaction's driver connection."""
    tx.flush()
    if tx.store.is_postgres:
        sql = sql.replace("?", "%s")
    return tx.conn.connection.dbapi_connection.execute(sql, params).fetchall()


def _marks(n: int) -> str:
    return ", ".join("?" * n)


#: A patient's identifiers → its record, the person the patient index links it to, and every record
#: of that person (one statement; rows without a person have NULL in the last two columns).
_IDENT_SQL = ("SELECT i.patient_id, r1.person_id, r2.patient_id FROM mpi_ident i "
              "LEFT JOIN mpi_record r1 ON r1.patient_id = i.patient_id "
              "LEFT JOIN mpi_record r2 ON r2.person_id = r1.person_id WHERE ")
_RECORD_SQL = ("SELECT r1.person_id, r2.patient_id FROM mpi_record r1 "
               "JOIN mpi_record r2 ON r2.person_id = r1.person_id WHERE r1.patient_id = ?")


def _results_sql(n_pids: int, n_codes: int) -> str:
    # every result of the person for any ordered item's code since the widest window, newest first,
    # and the person's active Conditions with the codes of the items' validity rules
    return ("SELECT res_type, res_id, patient, code, institution, effective_us, hidden, summary "
            f"FROM recognition_result WHERE patient IN ({_marks(n_pids)}) AND code IN ({_marks(n_codes)}) "
            "AND ((effective_us >= ? AND effective_us <= ? AND res_type <> 'Condition') OR res_type = 'Condition') "
            "ORDER BY effective_us DESC, res_type, res_id")


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


def recognisable_results(tx, patient_ids: list[str], codes: list[str], ordering_institution: str | None,
                         *, at_us: int | None = None, conditions: frozenset[str] | None = None) -> list[Offer]:
    """The recognisable results for an order of ``codes`` at ``ordering_institution``, one per item
    (the latest), for the person whose Patient records are ``patient_ids``."""
    return recognisable_for_orders(tx, patient_ids, [codes], ordering_institution, at_us=at_us,
                                   conditions=conditions)[0]


def recognisable_for_orders(tx, patient_ids: list[str], orders: list[list[str]], ordering_institution: str | None,
                            *, at_us: int | None = None, conditions: frozenset[str] | None = None,
                            fp: dict | None = None) -> list[list[Offer]]:
    """``recognisable_results`` for several orders at once (one list of offers per order, in order):
    one catalog and directory check and one query for all of them. ``conditions``: the patient's
    condition codes when the client prefetched them (else they are read from the result index)."""
    at = now_us() if at_us is None else at_us
    fp = fp or fingerprints(tx.conn)
    catalog = current_catalog(tx, fp)
    per_order = [[i for i in catalog.items_for(codes) if i.in_force(at)] for codes in orders]
    items = {i.key: i for its in per_order for i in its}
    if not items or not patient_ids:
        return [[] for _ in orders]
    directory = current_directory(tx, fp)
    orderer = directory.get(ordering_institution) or Institution(ordering_institution or "", "", None, None, frozenset())
    wanted_conditions = set() if conditions is not None else {c for i in items.values() for c, _d in i.rules}
    result_codes = {c for i in items.values() for c in i.codes}
    codes = sorted(result_codes | wanted_conditions)
    # the widest window any item could have (condition rules only shorten or lengthen it per patient)
    widest = max(max([i.validity_days, *(d for _c, d in i.rules)]) for i in items.values())
    pids = list(dict.fromkeys(patient_ids))
    rows = fetch(tx, _results_sql(len(pids), len(codes)), (*pids, *codes, at - day_us(widest), at))
    if conditions is None:
        conditions = frozenset(r[3] for r in rows if r[0] == "Condition" and r[3] in wanted_conditions)
    rows = [r for r in rows if r[0] != "Condition" and r[3] in result_codes]
    out: list[list[Offer]] = []
    for its in per_order:
        offers: list[Offer] = []
        for item in its:
            window = item.validity_for(conditions)
            since = at - day_us(window)
            item_codes = set(item.codes)
            for res_type, res_id, patient, code, inst, effective, hidden, summary in rows:
                # newest first: the first that qualifies is the one offered
                if code not in item_codes or effective < since:
                    continue
                if hidden or not inst or inst == ordering_institution:
                    continue
                source = directory.get(inst)
                if source is None or not item.qualified(source.id, source.level, effective):
                    continue
                if not same_scope(item.scope, source, orderer):
                    continue
                offers.append(Offer(item, res_type, res_id, patient, source, effective,
                                    effective + day_us(window), orjson.loads(summary)))
                break
        out.append(offers)
    return out


@dataclass(frozen=True)
class Person:
    """The platform's records of the HIS's patient: ``records`` (the one identified first) and the
    person the patient index links them to (None when not yet indexed)."""

    records: list[str]
    person: str | None


def resolve_person(tx, patient_id: str | None, patient: dict | None, institution: str | None) -> Person:
    """The platform's Patient records for the HIS's patient: from the prefetched Patient's
    identifiers, else the HIS's own id as a record number of the calling institution, else a Patient
    of that id; then every record the patient index links to them. No records when unknown."""
    found: list[str] = []
    person: str | None = None

    def add(ids):
        for i in ids:
            if i and i not in found:
                found.append(i)

    idents = [(i["system"], i["value"]) for i in (patient or {}).get("identifier") or []
              if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str)]
    if not idents and patient_id and institution:
        idents = [(f"{MRN_PREFIX}{institution}", patient_id)]
    idents = idents[:10]
    if idents:
        # the patient index's identifier table, with the person and its records, in one statement
        where = " OR ".join(["(i.system = ? AND i.value = ?)"] * len(idents))
        rows = fetch(tx, _IDENT_SQL + where, tuple(v for pair in idents for v in pair))
        for pid, pers, _other in rows:
            add([pid])
            person = person or pers
        add(sorted(r[2] for r in rows if r[2]))
        if not rows:  # records the patient index has not indexed yet: the search index
            for system, value in idents:
                add(tx.search_ids("Patient", [("identifier", f"{system}|{value}")], limit=20))
    if not found and patient_id:
        s = tx.read("Patient", patient_id) if ID_RE.fullmatch(patient_id) else None
        if s is not None and not s.deleted:
            found.append(patient_id)
    if found and person is None:
        rows = fetch(tx, _RECORD_SQL, (found[0],))
        if rows:
            person = rows[0][0]
            add(sorted(r[1] for r in rows))
    return Person(found, person)


def resolve_patient(tx, patient_id: str | None, patient: dict | None, institution: str | None) -> list[str]:
    """The platform's Patient ids for the HIS's patient (``resolve_person``'s records)."""
    return resolve_person(tx, patient_id, patient, institution).records
