"""The audit trail: an AuditEvent in the IHE BALP (Basic Audit Log Patterns) shape for every access
to a person's data, kept as a hash chain that can be verified and never rewritten.

Each row's ``hash`` is SHA-256 over its sequence number, the previous row's hash and the canonical
JSON of its AuditEvent (keys sorted, no whitespace: RFC 8785 for the values written here, which hold
no floating-point numbers). ``verify`` walks the chain and names the first row that was changed,
removed or reordered; the one-row head (``audit_head``) and the anchors catch a cut at the end.

Writes are audited inside their own transaction (the event commits with the data or not at all).
Reads and searches are queued and appended by a background thread in small batches, so that a read
never waits for a write lock: a crash loses at most the queued events (at most ``FLUSH_EVERY`` s,
``MAX_BATCH`` events per flush, bounded by ``MAX_QUEUE``).
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

import orjson
from sqlalchemy import and_, func, insert, select, update

from hutong.core.caller import Caller
from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.security.tables import audit_anchor, audit_cut, audit_event, audit_head

log = logging.getLogger("hutong.security.audit")

GENESIS = "0" * 64
FLUSH_EVERY = 0.5
MAX_BATCH = 2000
MAX_QUEUE = 100_000
#: An anchor (the head hash at that moment) is recorded every this many events.
ANCHOR_EVERY = 10_000

#: The request's client address, set by the security middleware (read by the audit and events).
client_address: contextvars.ContextVar[str] = contextvars.ContextVar("hutong_client_address", default="")

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"
_PROFILE = {  # (action, patient known) → BALP profile
    ("C", True): "IHE.BasicAudit.PatientCreate", ("C", False): "IHE.BasicAudit.Create",
    ("R", True): "IHE.BasicAudit.PatientRead", ("R", False): "IHE.BasicAudit.Read",
    ("U", True): "IHE.BasicAudit.PatientUpdate", ("U", False): "IHE.BasicAudit.Update",
    ("D", True): "IHE.BasicAudit.PatientDelete", ("D", False): "IHE.BasicAudit.Delete",
    ("E", True): "IHE.BasicAudit.PatientQuery", ("E", False): "IHE.BasicAudit.Query",
}
_ACTION = {"read": "R", "vread": "R", "history-instance": "R", "create": "C", "update": "U", "patch": "U",
           "delete": "D", "search-type": "E", "search-system": "E", "history-type": "E", "history-system": "E",
           "operation": "E", "transaction": "E", "batch": "E"}
PURPOSES = {"TREAT", "ETREAT", "HPAYMT", "HOPERAT", "PUBHLTH", "HRESCH", "PATRQT", "HSYSADMIN", "PATADMIN"}
_OUTCOME = {2: "0", 4: "4", 5: "8"}
#: The break-the-glass request header (``hutong.security.scoping.BREAK_GLASS_HEADER``).
_BREAK_GLASS_HEADER = "x-hutong-break-glass"
_LONG_DIGITS = re.compile(r"\d{6,}[\dXx]?")


def canonical(value) -> bytes:
    """Canonical JSON (sorted keys, no whitespace)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def chain_hash(seq: int, prev_hash: str, event_json: bytes) -> str:
    return hashlib.sha256(f"{seq}|{prev_hash}|".encode() + event_json).hexdigest()


def mask_query(text: str) -> str:
    """A query string with long digit runs (resident IDs, phones) masked."""
    return _LONG_DIGITS.sub(lambda m: m.group(0)[:2] + "*" * (len(m.group(0)) - 4) + m.group(0)[-2:], text)


@dataclass
class Entry:
    """What one audited access was, before it becomes one AuditEvent per patient."""

    ts_us: int
    action: str
    subtype: str
    caller: Caller
    address: str
    purpose: str
    outcome: str
    patients: list[str]
    what: list[str]
    query: str = ""
    break_glass: bool = False
    reason: str = ""
    description: str = ""


# Parts of every AuditEvent that do not vary, built once and shared by the events of a batch (orjson
# serialises shared objects as often as they occur; nothing below ever mutates them).
_ROLE_REQUESTOR = {"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type"}
_HUMAN = {"coding": [{**_ROLE_REQUESTOR, "code": "humanuser"}]}
_MACHINE = {"coding": [{**_ROLE_REQUESTOR, "code": "datacollector"}]}
_SERVER = {"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152",
                                "display": "Destination Role ID"}]},
           "who": {"display": "hutong"}, "requestor": False}
_SOURCE = {"observer": {"display": "hutong"},
           "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]}
_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
         "display": "RESTful Operation"}
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_ENTITY_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_PERSON = {"system": _ENTITY_TYPE, "code": "1"}
_OBJECT = {"system": _ENTITY_TYPE, "code": "2"}
_PATIENT_ROLE = {"system": _ENTITY_ROLE, "code": "1"}
_DOMAIN_ROLE = {"system": _ENTITY_ROLE, "code": "4"}
_QUERY_ROLE = {"system": _ENTITY_ROLE, "code": "24"}
_BREAK_GLASS = [{"url": "urn:hutong:break-the-glass", "valueBoolean": True}]
_META = {key: {"profile": [BALP + name]} for key, name in _PROFILE.items()}
_META_QUERY = {"profile": [BALP + "IHE.BasicAudit.Query"]}
_SUBTYPES: dict[str, list] = {}
_PURPOSES: dict[str, dict] = {}
_REQUESTORS: dict[tuple, dict] = {}


def _requestor(caller: Caller, address: str) -> dict:
    """The requesting agent of ``caller`` at ``address`` (cached: one caller sends many requests)."""
    key = (caller, address)
    got = _REQUESTORS.get(key)
    if got is not None:
        return got
    human = caller.auth in ("session", "gateway") and "system" not in caller.roles
    requestor = {
        "type": _HUMAN if human else _MACHINE,
        "who": {"identifier": {"system": "urn:hutong:client" if not human else "urn:hutong:user",
                               "value": caller.client_id}},
        "requestor": True,
        "role": [{"coding": [{"system": "urn:hutong:role", "code": r}]} for r in sorted(caller.roles)],
    }
    if caller.institution:
        requestor["who"]["display"] = caller.institution
        requestor["location"] = {"reference": f"Organization/{caller.institution}"}
    if address:
        requestor["network"] = {"address": address, "type": "2"}
    if len(_REQUESTORS) > 10_000:
        _REQUESTORS.clear()
    _REQUESTORS[key] = requestor
    return requestor


def _subtype(code: str) -> list:
    got = _SUBTYPES.get(code)
    if got is None:
        got = _SUBTYPES.setdefault(code, [{"system": "http://hl7.org/fhir/restful-interaction", "code": code}])
    return got


def _purpose(code: str) -> dict:
    got = _PURPOSES.get(code)
    if got is None:
        got = _PURPOSES.setdefault(code, {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                      "code": code}]})
    return got


_SECOND: list = [-1, ""]  # the last whole second formatted, and its text (instants of a batch share it)


def _instant(ts_us: int) -> str:
    """``hutong.core.clock.instant`` with the date and time of the second formatted once per second."""
    second = ts_us // 1_000_000
    cached = _SECOND
    if cached[0] != second:
        cached = [second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))]
        _SECOND[:] = cached
    return f"{cached[1]}{ts_us % 1_000_000:06d}+00:00"


def balp_event(entry: Entry, patient: str | None) -> dict:
    """The AuditEvent resource (BALP shape) of ``entry`` about ``patient``."""
    entities = []
    patient_ref = None
    if patient:
        patient_ref = f"Patient/{patient}"
        entities.append({"what": {"reference": patient_ref}, "type": _PERSON, "role": _PATIENT_ROLE})
    for ref in entry.what[:50]:
        if ref != patient_ref:
            entities.append({"what": {"reference": ref}, "type": _OBJECT, "role": _DOMAIN_ROLE})
    if entry.query:
        entities.append({"type": _OBJECT, "role": _QUERY_ROLE,
                         "query": base64.b64encode(entry.query.encode()).decode()})
    event = {
        "resourceType": "AuditEvent",
        "meta": _META.get((entry.action, bool(patient)), _META_QUERY),
        "type": _TYPE,
        "subtype": _subtype(entry.subtype),
        "action": entry.action,
        "recorded": _instant(entry.ts_us),
        "outcome": entry.outcome,
        "purposeOfEvent": [_purpose(entry.purpose)],
        "agent": [_requestor(entry.caller, entry.address), _SERVER],
        "source": _SOURCE,
        "entity": entities,
    }
    if entry.description:
        event["outcomeDesc"] = entry.description[:300]
    if entry.break_glass:
        event["purposeOfEvent"].append({"text": entry.reason[:300]})
        event["extension"] = _BREAK_GLASS
    return event


_EVENT_COLUMNS = ("seq", "ts_us", "action", "subtype", "agent", "institution", "patient", "purpose", "outcome",
                  "break_glass", "event", "prev_hash", "hash")
_INSERT_SQLITE = f"INSERT INTO audit_event ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * 13)})"
_INSERT_PG = f"INSERT INTO audit_event ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join(['%s'] * 13)})"
_COPY_PG = f"COPY audit_event ({', '.join(_EVENT_COLUMNS)}) FROM STDIN"


def _insert_events(conn, rows: list[tuple]) -> None:
    """Insert audit rows (tuples in ``_EVENT_COLUMNS`` order) straight through the driver: SQLAlchemy's
    per-row parameter handling cost more than building the event itself (measured)."""
    dbapi = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite":
        dbapi.executemany(_INSERT_SQLITE, rows)
        return
    with dbapi.cursor() as cur:
        if len(rows) > 8:
            with cur.copy(_COPY_PG) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(_INSERT_PG, rows)


def append(conn, entries: list[Entry]) -> int:
    """Append ``entries`` to the chain in the transaction of ``conn`` (one AuditEvent per patient)."""
    rows = []
    for entry in entries:
        for patient in entry.patients or [None]:
            rows.append((entry, patient))
    if not rows:
        return 0
    head = conn.execute(select(audit_head).where(audit_head.c.id == 1).with_for_update()).first()
    if head is None:
        conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
        seq, prev = 0, GENESIS
    else:
        seq, prev = head.seq, head.hash
    values = []
    anchors = []
    sha256 = hashlib.sha256
    for entry, patient in rows:
        seq += 1
        event = balp_event(entry, patient)
        event["id"] = str(seq)
        body = canonical(event)
        digest = sha256(b"%d|%s|%s" % (seq, prev.encode(), body)).hexdigest()
        caller = entry.caller
        values.append((seq, entry.ts_us, entry.action, entry.subtype, caller.client_id[:200], caller.institution,
                       patient, entry.purpose, entry.outcome, entry.break_glass, body.decode(), prev, digest))
        if seq % ANCHOR_EVERY == 0:
            anchors.append({"seq": seq, "hash": digest, "ts_us": entry.ts_us})
        prev = digest
    _insert_events(conn, values)
    if anchors:
        conn.execute(insert(audit_anchor), anchors)
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return len(values)


# ---------------------------------------------------------------------------------------------- recording
def patients_of(resource: dict) -> set[str]:
    """The Patients a resource is about (itself, ``subject``, ``patient``, ``beneficiary``…)."""
    if not isinstance(resource, dict):
        return set()
    if resource.get("resourceType") == "Patient" and resource.get("id"):
        return {resource["id"]}
    out = set()
    for key in ("subject", "patient", "beneficiary", "individual"):
        ref = resource.get(key)
        if isinstance(ref, dict):
            text = ref.get("reference")
            if isinstance(text, str) and text.startswith("Patient/"):
                out.add(text[len("Patient/"):].split("/")[0])
    return out


def _what(resource: dict) -> str | None:
    if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
        return f"{resource['resourceType']}/{resource['id']}"
    return None


def describe(body) -> tuple[list[str], list[str]]:
    """(patients, resource references) an answer's body shows."""
    if body is None:
        return [], []
    if isinstance(body, (str, bytes)):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return [], []
    if not isinstance(body, dict):
        return [], []
    patients: set[str] = set()
    what: list[str] = []
    if body.get("resourceType") == "Bundle":
        for item in body.get("entry") or ():
            res = item.get("resource") if isinstance(item, dict) else None
            if isinstance(res, dict):
                patients |= patients_of(res)
                ref = _what(res)
                if ref:
                    what.append(ref)
    else:
        patients = patients_of(body)
        ref = _what(body)
        if ref:
            what.append(ref)
    return sorted(patients), what


class AuditTrail:
    """Recording for one node: write events appended in the write's transaction, read events queued."""

    def __init__(self, store, settings):
        self.store = store
        self.settings = settings
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self.dropped = 0
        #: ``on_patients(caller_id, patients, address)`` hears who was shown which patients (scraping detection).
        self.on_patients = None

    def entry(self, call, status: int, body, description: str = "") -> Entry:
        caller = call.caller
        interaction = call.interaction
        name = interaction.name
        subtype = "$" + interaction.operation if interaction.operation else name
        req = call.req
        purpose = req.header("x-purpose-of-use")
        purpose = purpose.strip().upper() if purpose else ""
        if purpose not in PURPOSES:
            roles = caller.roles
            purpose = "TREAT" if "clinician" in roles else ("PATRQT" if "resident" in roles else "HOPERAT")
        query = req.query
        if query or name.startswith(("search", "history", "operation")):
            text = "&".join(f"{k}={v}" for k, v in query)
            shown = mask_query(f"{req.method} {req.path}?{text}"[:2000])
        else:
            shown = ""
        entry = Entry(now_us(), _ACTION.get(name, "E"), subtype, caller, client_address.get(), purpose,
                      _OUTCOME.get(status // 100, "4"), [], [], shown, description=description)
        if req.header(_BREAK_GLASS_HEADER) is not None and "clinician" in caller.roles:
            from hutong.security.scoping import break_glass_reason

            reason = break_glass_reason(call)
            if reason:
                entry.break_glass, entry.reason, entry.purpose = True, reason[:300], "ETREAT"
        return entry

    def record_call(self, call, result, error: FhirError | None = None) -> None:
        """Audit one FHIR interaction: in its own write transaction for writes, queued for reads."""
        if call.caller.auth == "internal":
            return
        if error is not None:
            entry = self.entry(call, error.status, None, error.diagnostics)
            if call.res_type == "Patient" and call.res_id:
                entry.patients = [call.res_id]
            self.enqueue(entry, None)
            return
        entry = self.entry(call, result.status, None)
        if entry.action == "U" and result.status == 201:  # update as create
            entry.action = "C"
        body = result.body
        if call.tx is not None and call.interaction.tx == "write" and entry.action in ("C", "U", "D"):
            if result.stored is not None and result.stored.deleted is False and body is None:
                body = result.stored.content
            patients, what = describe(body)
            if entry.action == "D" and call.res_type == "Patient" and call.res_id:
                patients = [call.res_id]
            if call.res_type and call.res_id and not what:
                what = [f"{call.res_type}/{call.res_id}"]
            entry.patients, entry.what = patients, what
            if patients:
                append(call.tx.conn, [entry])
            return
        if call.res_type == "Patient" and call.res_id and entry.action == "R" and call.interaction.operation is None:
            # a Patient read: who it is about is known without parsing the answer
            entry.patients, entry.what = [call.res_id], [f"Patient/{call.res_id}"]
            body = None
        elif entry.action == "E" and call.interaction.operation is None and call.req.query:
            from hutong.security.scoping import _named_patients

            named = _named_patients(call, call.res_type)
            if named:  # a search about named patients (BALP PatientQuery): no need to parse the answer
                entry.patients, body = sorted(named), None
        self.enqueue(entry, body)

    def record(self, entry: Entry) -> None:
        """Audit a non-FHIR access (card verification, MPI decision, login, page view): queued."""
        self.enqueue(entry, None)

    def enqueue(self, entry: Entry, body) -> None:
        if len(self._queue) >= MAX_QUEUE:
            self.dropped += 1
            log.error("audit queue full: an audit event was dropped (%d so far)", self.dropped)
            return
        self._queue.append((entry, body))
        if self._thread is None:
            self._start()
        if len(self._queue) >= MAX_BATCH:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hutong-audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_EVERY)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - kept queued and retried next time
                log.exception("audit flush failed; retrying")

    def flush(self) -> int:
        """Append everything queued now (also called by tests and at shutdown)."""
        with self._lock:
            batch = []
            while self._queue and len(batch) < MAX_BATCH:
                batch.append(self._queue.popleft())
            if not batch:
                return 0
            entries = []
            for entry, body in batch:
                if body is not None:
                    patients, what = describe(body)
                    entry.patients = sorted(set(entry.patients) | set(patients))
                    entry.what = what
                if entry.patients or entry.subtype in _ALWAYS or entry.break_glass:
                    entries.append(entry)
                    if entry.patients and self.on_patients is not None and entry.outcome == "0":
                        self.on_patients(entry.caller.client_id, entry.patients, entry.address)
            try:
                with self.store.write() as tx:
                    n = append(tx.conn, entries)
            except Exception:
                self._queue.extendleft(reversed(batch))
                raise
        if self._queue:
            self._wake.set()
        return n

    def drain(self) -> None:
        """Append everything queued, including a batch the background thread is writing now."""
        while True:
            self.flush()
            with self._lock:  # waits for a flush in progress in the background thread
                if not self._queue:
                    return

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.drain()
        except Exception:  # noqa: BLE001 - the store may be closed already
            log.exception("audit events could not be written at shutdown")


#: Events kept even when they name no patient (sign-ins, exports).
_ALWAYS = frozenset({"login", "logout", "$export", "break-glass"})


# ---------------------------------------------------------------------------------------------- verify
@dataclass
class Verification:
    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str = ""

    def text(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.checked} events verified"
        return f"audit chain broken at event {self.first_bad}: {self.problem} ({self.checked} verified before it)"


_COLUMNS = ("action", "agent", "institution", "patient", "purpose", "outcome")


def verify(store, batch: int = 5000) -> Verification:
    """Walk the chain in order: the first row edited, removed or reordered is named."""
    checked = 0
    with store.read() as tx:
        head = tx.conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        first = tx.conn.execute(select(func.min(audit_event.c.seq))).scalar()
        if head is None or first is None:
            return Verification(True, 0)
        expected_seq = first
        prev = None
        if first > 1:  # older events were purged: the chain continues from the signed cut (retention.py)
            from hutong.security.retention import check_cut

            cut = tx.conn.execute(select(audit_cut).where(audit_cut.c.seq == first - 1)).first()
            if cut is None:
                return Verification(False, 0, first, "events before it are missing and no signed cut marks a purge")
            problem = check_cut(tx.conn, cut)
            if problem:
                return Verification(False, 0, first, problem)
            prev = cut.hash
        else:
            prev = GENESIS
        last = first - 1
        while True:
            rows = tx.conn.execute(select(audit_event).where(audit_event.c.seq > last)
                                   .order_by(audit_event.c.seq).limit(batch)).all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    return Verification(False, checked, expected_seq, f"event {expected_seq} is missing (removed)")
                if row.prev_hash != prev:
                    return Verification(False, checked, row.seq, "its previous-hash does not match (reordered or "
                                        "a preceding event was replaced)")
                body = row.event.encode()
                if chain_hash(row.seq, row.prev_hash, body) != row.hash:
                    return Verification(False, checked, row.seq, "its content does not match its hash (edited)")
                try:
                    event = orjson.loads(body)
                except orjson.JSONDecodeError:
                    return Verification(False, checked, row.seq, "its content is not JSON (edited)")
                if event.get("id") != str(row.seq) or _columns_of(event) != tuple(
                        getattr(row, c) for c in _COLUMNS):
                    return Verification(False, checked, row.seq, "its columns differ from its AuditEvent (edited)")
                prev = row.hash
                expected_seq += 1
                checked += 1
            last = rows[-1].seq
        if head.seq != expected_seq - 1 or head.hash != prev:
            return Verification(False, checked, expected_seq, f"the chain ends at {expected_seq - 1} but its head says "
                                f"{head.seq} (events removed from the end)")
    return Verification(True, checked)


def _columns_of(event: dict) -> tuple:
    requestor = next((a for a in event.get("agent", []) if a.get("requestor")), {})
    who = requestor.get("who", {})
    inst = (requestor.get("location") or {}).get("reference", "")
    patient = next((e["what"]["reference"][len("Patient/"):] for e in event.get("entity", [])
                    if e.get("type", {}).get("code") == "1" and "what" in e), None)
    purpose = event.get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code")
    return (event.get("action"), who.get("identifier", {}).get("value"),
            inst[len("Organization/"):] if inst else None, patient, purpose, event.get("outcome"))


# ---------------------------------------------------------------------------------------------- search
def search(store, *, patient: str | None = None, agent: str | None = None, institution: str | None = None,
           action: str | None = None, since_us: int | None = None, until_us: int | None = None,
           break_glass: bool | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    """AuditEvents matching every given criterion, newest first."""
    conds = []
    t = audit_event.c
    if patient:
        conds.append(t.patient == patient)
    if agent:
        conds.append(t.agent == agent)
    if institution:
        conds.append(t.institution == institution)
    if action:
        conds.append(t.action == action)
    if since_us is not None:
        conds.append(t.ts_us >= since_us)
    if until_us is not None:
        conds.append(t.ts_us < until_us)
    if break_glass is not None:
        conds.append(t.break_glass == break_glass)
    q = select(t.event).order_by(t.seq.desc()).limit(min(limit, 1000)).offset(offset)
    if conds:
        q = q.where(and_(*conds))
    with store.read() as tx:
        return [orjson.loads(e) for e in tx.conn.execute(q).scalars()]


def access_log(store, patient: str, limit: int = 200) -> list[dict]:
    """Who opened ``patient``'s record and when (institution, role, purpose): the resident's view."""
    out = []
    for event in search(store, patient=patient, limit=limit):
        requestor = next((a for a in event.get("agent", []) if a.get("requestor")), {})
        out.append({
            "time": event.get("recorded"), "action": event.get("action"),
            "what": event.get("subtype", [{}])[0].get("code"),
            "institution": (requestor.get("location") or {}).get("reference", "").replace("Organization/", "") or None,
            "roles": [r["coding"][0]["code"] for r in requestor.get("role", [])],
            "purpose": event.get("purposeOfEvent", [{}])[0].get("coding", [{}])[0].get("code"),
            "break_glass": any(x.get("url") == "urn:hutong:break-the-glass" for x in event.get("extension", [])),
        })
    return out
