"""The shared record: one person's resources from every institution, merged for people to read.

``load_record(store, patient_id)`` reads, in one snapshot, the compartments of every Patient record the
patient index links to ``patient_id`` and returns a ``PatientRecord``: each item knows its resource, the
record (Patient id) it came from and its source institution. The same result sent twice (two
institutions forwarding one lab result: same test, same time, same value) becomes one item listing both
sources; results that only look alike (same test and day, different value or time) stay separate.
``linked=False`` reads the given record alone. The workstation and the resident portal render from this;
``Patient/$everything`` (``hutong/search/everything.py``) is the FHIR view of the same records.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy import false, func, select, tuple_

from hutong.core.clock import SHANGHAI, to_us
from hutong.core.errors import FhirError
from hutong.search.compartment import compartment_pairs
from hutong.search.tables import sp_reference
from hutong.share.identity import linked_record_ids
from hutong.store.schema import resource as R

ORG_SOURCE_PREFIX = "urn:hutong:org:"
LAB_CATEGORY = "laboratory"
#: Interpretation codes (HL7 v3 ObservationInterpretation) that mean "outside the reference range".
HIGH_CODES = frozenset({"H", "HH", "HU", ">"})
LOW_CODES = frozenset({"L", "LL", "LU", "<"})
ABNORMAL_CODES = HIGH_CODES | LOW_CODES | frozenset({"A", "AA", "POS", "DET"})


@dataclass
class Source:
    """Where one copy of a resource came from."""

    institution: str | None  # Organization id
    institution_name: str
    record: str  # Patient id
    res_id: str


@dataclass
class Item:
    """One resource of the record (after merging copies of the same result)."""

    res_type: str
    res_id: str
    resource: dict
    record: str
    institution: str | None
    institution_name: str
    when_us: int | None
    sources: list[Source] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.res_type}/{self.res_id}"


@dataclass
class PatientRecord:
    """Everything the pages show about one person."""

    patient_id: str
    records: list[dict]  # the linked Patient resources, the asked-for one first
    items: list[Item]
    institutions: dict[str, str]  # Organization id -> name
    merged_duplicates: int = 0

    def of_type(self, *types: str) -> list[Item]:
        """Items of these resource types, newest first."""
        out = [i for i in self.items if i.res_type in types]
        out.sort(key=lambda i: (i.when_us or 0, i.res_id), reverse=True)
        return out

    def by_ref(self) -> dict[str, Item]:
        out = {}
        for it in self.items:
            out[it.ref] = it
            for s in it.sources:
                out[f"{it.res_type}/{s.res_id}"] = it
        return out

    def labs(self) -> list[Item]:
        """Laboratory observations, newest first."""
        return [i for i in self.of_type("Observation") if is_lab(i.resource)]


# ---------------------------------------------------------------------------------------------- reading
_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_restore = False


@contextmanager
def paused_gc():
    """Pause the cyclic garbage collector while a page reads and renders a record.

    A record is thousands of small dicts, all alive until the page is sent: every full collection the
    allocations trigger would rescan all of them (measured: tens of milliseconds per page). Nothing in
    them is cyclic, so the collector has nothing to find. Overlapping pages share one pause (a counter):
    the collector runs again when the last of them ends (unless it was off before)."""
    global _gc_pauses, _gc_restore
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_restore = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_restore:
                gc.enable()


def load_record(store, patient_id: str, *, linked: bool = True, types: list[str] | None = None) -> PatientRecord:
    """The record of ``patient_id``'s person (or of that one Patient record with ``linked=False``)."""
    with paused_gc():
        return _load_record(store, patient_id, linked, types)


def _load_record(store, patient_id: str, linked: bool, types: list[str] | None) -> PatientRecord:
    with store.read() as tx:
        conn = tx.conn
        ids = linked_record_ids(conn, patient_id) if linked else [patient_id]
        patients = _load_patients(conn, ids)
        if patient_id not in patients:
            raise FhirError(404, "not-found", f"Patient/{patient_id} is not known")
        ids = [i for i in ids if i in patients]
        rows = _compartment_rows(conn, ids, types)
        record_org = {pid: _org_of(p, None) for pid, p in patients.items()}
        parsed = []
        org_ids = {o for o in record_org.values() if o}
        loads = orjson.loads
        for rt, rid, record, content in rows:
            res = loads(content)
            org = _org_of(res, record_org.get(record))
            parsed.append((rt, rid, record, res, org))
            if org:
                org_ids.add(org)
        orgs = _org_names(conn, org_ids)
    items = []
    for rt, rid, record, res, org in parsed:
        name = orgs.get(org, org) if org else ""
        item = Item(rt, rid, res, record, org, name, when_us(res))
        item.sources.append(Source(org, name, record, rid))
        items.append(item)
    merged, dropped = merge_duplicates(items)
    return PatientRecord(patient_id, [patients[i] for i in ids], merged, orgs, dropped)


def _load_patients(conn, ids: list[str]) -> dict[str, dict]:
    stmt = select(R.c.res_id, R.c.content).where(R.c.res_type == "Patient", R.c.res_id.in_(ids), R.c.deleted == false())
    return {rid: orjson.loads(c) for rid, c in conn.execute(stmt)}


def _compartment_rows(conn, ids: list[str], types: list[str] | None) -> list[tuple[str, str, str, str]]:
    """``(type, id, record, content)`` of every current resource in the Patient compartments of ``ids``
    (Patients excluded), in one statement: the compartment's reference rows (an index-only range of
    ``ix_sp_reference_rev``), one per resource, joined to ``resource`` by primary key."""
    t = sp_reference
    pairs = [pt for pt in compartment_pairs("Patient") if pt[0] != "Patient" and (not types or pt[0] in types)]
    if not pairs:
        return []
    keys = (select(t.c.res_type, t.c.res_id, func.min(t.c.target_id).label("record"))
            .where(t.c.target_type == "Patient", t.c.target_id.in_(ids), tuple_(t.c.res_type, t.c.param).in_(pairs))
            .group_by(t.c.res_type, t.c.res_id).subquery())
    stmt = (select(keys.c.res_type, keys.c.res_id, keys.c.record, R.c.content)
            .join_from(keys, R, (R.c.res_type == keys.c.res_type) & (R.c.res_id == keys.c.res_id))
            .where(R.c.deleted == false()))
    return conn.execute(stmt).all()


def _org_names(conn, org_ids: set[str]) -> dict[str, str]:
    if not org_ids:
        return {}
    stmt = select(R.c.res_id, R.c.content).where(R.c.res_type == "Organization", R.c.res_id.in_(sorted(org_ids)),
                                                 R.c.deleted == false())
    return {rid: (orjson.loads(c).get("name") or rid) for rid, c in conn.execute(stmt)}


def _org_of(res: dict, default: str | None) -> str | None:
    """The source institution of a resource: ``meta.source`` ``urn:hutong:org:ID``, else the record's."""
    src = (res.get("meta") or {}).get("source") or ""
    if src.startswith(ORG_SOURCE_PREFIX):
        return src[len(ORG_SOURCE_PREFIX):].split("#", 1)[0] or default
    for key in ("managingOrganization", "serviceProvider", "custodian"):
        ref = (res.get(key) or {}).get("reference") or ""
        if ref.startswith("Organization/"):
            return ref.split("/", 1)[1]
    return default


# ---------------------------------------------------------------------------------------------- times
_TIME_FIELDS = ("effectiveDateTime", "effectiveInstant", "issued", "started", "onsetDateTime", "recordedDate",
                "authoredOn", "date", "occurrenceDateTime", "recorded", "created", "dateAsserted")


def parse_time(value: str | None) -> int | None:
    """A FHIR date/dateTime/instant as µs since the epoch (dates and naive times read as Asia/Shanghai)."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        if len(text) == 4:
            dt = datetime(int(text), 1, 1)
        elif len(text) == 7:
            dt = datetime(int(text[:4]), int(text[5:7]), 1)
        else:
            dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return to_us(dt)


def when_us(res: dict) -> int | None:
    """The clinically meaningful time of a resource (effective, started, period start, …)."""
    period = res.get("period") or res.get("effectivePeriod")
    if isinstance(period, dict) and period.get("start"):
        return parse_time(period["start"])
    for key in _TIME_FIELDS:
        if res.get(key):
            return parse_time(res[key])
    content = res.get("content")
    if isinstance(content, list) and content:
        att = (content[0] or {}).get("attachment") or {}
        if att.get("creation"):
            return parse_time(att["creation"])
    return parse_time((res.get("meta") or {}).get("lastUpdated"))


# ---------------------------------------------------------------------------------------------- merging
def _code_key(cc: dict | None) -> tuple:
    """The smallest ``(system, code)`` of a CodeableConcept's codings (its text when it has none)."""
    best = None
    for c in (cc or {}).get("coding") or ():
        if isinstance(c, dict) and c.get("code"):
            key = (c.get("system") or "", c["code"])
            if best is None or key < best:
                best = key
    if best is not None:
        return (best,)
    return (("text", (cc or {}).get("text") or ""),)


def _value_key(res: dict) -> tuple | None:
    q = res.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        return ("q", float(q["value"]), q.get("code") or q.get("unit") or "")
    cc = res.get("valueCodeableConcept")
    if isinstance(cc, dict):
        return ("c",) + _code_key(cc)
    for key in ("valueString", "valueBoolean", "valueInteger"):
        if key in res:
            return ("v", key, res[key])
    return None


def result_key(item: Item) -> tuple | None:
    """What makes two copies the *same* result: resource type, code, exact time and value (None: never
    merged). Same test on the same day with another value, or at another time, is another result."""
    res = item.resource
    if item.res_type == "Observation":
        value = _value_key(res)
        if value is None or item.when_us is None:
            return None
        return ("Observation", _code_key(res.get("code")), item.when_us, value)
    if item.res_type == "DiagnosticReport":
        if item.when_us is None:
            return None
        return ("DiagnosticReport", _code_key(res.get("code")), item.when_us, res.get("conclusion") or "")
    return None


def merge_duplicates(items: list[Item]) -> tuple[list[Item], int]:
    """Merge copies of the same result from different institutions (see ``result_key``).

    Copies from the *same* institution are kept apart (an institution re-sending a result updates it, it
    does not duplicate it). A DiagnosticReport merges only when its results merged too."""
    obs_groups: dict[tuple, Item] = {}
    out: list[Item] = []
    dropped = 0
    alias: dict[str, str] = {}
    for item in sorted(items, key=lambda i: (i.res_type != "Observation", i.res_id)):
        key = result_key(item)
        if key is not None and item.res_type == "DiagnosticReport":
            results = tuple(sorted(alias.get((r or {}).get("reference", ""), (r or {}).get("reference", ""))
                                   for r in item.resource.get("result") or []))
            key = key + (results,)
        first = obs_groups.get(key) if key is not None else None
        if first is not None and item.institution not in {s.institution for s in first.sources}:
            first.sources.extend(item.sources)
            alias[item.ref] = first.ref
            dropped += 1
            continue
        if key is not None:
            obs_groups.setdefault(key, item)
        out.append(item)
    return out, dropped


# ---------------------------------------------------------------------------------------------- reading helpers
def concept_text(cc: dict | None) -> str:
    """A CodeableConcept as people read it: its text, else the first display, else the code."""
    if not isinstance(cc, dict):
        return ""
    if cc.get("text"):
        return str(cc["text"])
    for c in cc.get("coding") or []:
        if isinstance(c, dict) and c.get("display"):
            return str(c["display"])
    for c in cc.get("coding") or []:
        if isinstance(c, dict) and c.get("code"):
            return str(c["code"])
    return ""


def first_code(cc: dict | None, system_hint: str = "") -> str:
    for c in (cc or {}).get("coding") or []:
        if isinstance(c, dict) and c.get("code") and system_hint in (c.get("system") or ""):
            return str(c["code"])
    return ""


def is_lab(obs: dict) -> bool:
    for cat in obs.get("category") or []:
        for c in (cat or {}).get("coding") or []:
            if (c or {}).get("code") == LAB_CATEGORY:
                return True
    return False


def value_text(obs: dict) -> str:
    q = obs.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        v = q["value"]
        return f"{v:g}" if isinstance(v, float) else str(v)
    if isinstance(obs.get("valueCodeableConcept"), dict):
        return concept_text(obs["valueCodeableConcept"])
    for key in ("valueString", "valueInteger", "valueBoolean"):
        if key in obs:
            return str(obs[key])
    return ""


def unit_of(obs: dict) -> str:
    q = obs.get("valueQuantity")
    return (q.get("unit") or q.get("code") or "") if isinstance(q, dict) else ""


def reference_range(obs: dict) -> tuple[float | None, float | None, str]:
    """``(low, high, text)`` of the first reference range."""
    for rr in obs.get("referenceRange") or []:
        if not isinstance(rr, dict):
            continue
        low = (rr.get("low") or {}).get("value")
        high = (rr.get("high") or {}).get("value")
        text = rr.get("text") or ""
        if not text and (low is not None or high is not None):
            text = f"{'' if low is None else f'{low:g}'}–{'' if high is None else f'{high:g}'}"
        return low, high, text
    return None, None, ""


def flag(obs: dict) -> str:
    """``high``, ``low``, ``abnormal`` or ``normal`` (interpretation first, else the reference range), ``""``
    when unknown."""
    for interp in obs.get("interpretation") or []:
        for c in (interp or {}).get("coding") or []:
            code = (c or {}).get("code")
            if code in HIGH_CODES:
                return "high"
            if code in LOW_CODES:
                return "low"
            if code in ABNORMAL_CODES:
                return "abnormal"
            if code == "N":
                return "normal"
    q = obs.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
        low, high, _t = reference_range(obs)
        if high is not None and q["value"] > high:
            return "high"
        if low is not None and q["value"] < low:
            return "low"
        if low is not None or high is not None:
            return "normal"
    return ""


def lab_series(labs: list[Item]) -> dict[str, dict]:
    """Numeric lab results grouped by test: ``code -> {name, unit, low, high, points: [(µs, value, item)]}``
    (points oldest first)."""
    out: dict[str, dict] = {}
    for it in labs:
        q = it.resource.get("valueQuantity")
        if not isinstance(q, dict) or not isinstance(q.get("value"), (int, float)) or it.when_us is None:
            continue
        code = "|".join(_code_key(it.resource.get("code"))[0])
        s = out.get(code)
        if s is None:
            low, high, _t = reference_range(it.resource)
            s = out[code] = {"name": concept_text(it.resource.get("code")), "unit": unit_of(it.resource),
                             "low": low, "high": high, "points": []}
        s["points"].append((it.when_us, float(q["value"]), it))
    for s in out.values():
        s["points"].sort(key=lambda p: p[0])
    return out


__all__ = ["load_record", "PatientRecord", "Item", "Source", "merge_duplicates", "result_key", "flag",
           "concept_text", "value_text", "unit_of", "reference_range", "lab_series", "when_us", "parse_time",
           "is_lab"]
