"""Online master patient index on the store: linking through the change log, golden Person records,
review queue, merge/unmerge (audited, reversible), PIXm cross-references and ``$match``.

Golden record: a FHIR **Person** per resident whose ``link`` entries point at the institutions' Patient
records (``assurance`` level4 = confirmed by a person, level3 = certain automatic match, level2/1 = probable /
possible), each link carrying the HL7 match-grade extension. Patients stay exactly as institutions sent them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import String, bindparam, delete, insert, literal, select, update

from hutong.china import ids
from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.mpi import documents
from hutong.mpi.blocking import record_keys
from hutong.mpi.explain import describe_pair
from hutong.mpi.features import TF_FEATURES, FeatureTable, normalize_record
from hutong.mpi.model import MATCH_GRADE_URL, Model
from hutong.mpi.names import is_placeholder_name
from hutong.mpi.tables import mpi_block, mpi_freq, mpi_ident, mpi_model, mpi_record, mpi_review

log = logging.getLogger("hutong.mpi")

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
CONSUMER = "mpi-linker"
ASSURANCE = {"certain": "level3", "probable": "level2", "possible": "level1", "certainly-not": "level1"}
MAX_CANDIDATES = 200
_DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "default_model.json"
_model_cache: dict[str, tuple[float, Model]] = {}
_model_lock = threading.Lock()


# --- FHIR Patient → raw record ----------------------------------------------------------------------------


def patient_raw(patient: dict) -> dict:
    """The matcher's raw fields from a FHIR Patient."""
    raw: dict = {"record_id": patient.get("id", "")}
    names_ = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    names_.sort(key=lambda n: 0 if n.get("use") in ("official", "usual") else 1)
    if names_:
        n = names_[0]
        if n.get("text") and (is_placeholder_name(n["text"]) or any(
                str(e.get("url", "")).endswith("newborn-placeholder-name") and e.get("valueBoolean")
                for e in n.get("extension") or [] if isinstance(e, dict))):
            n = {"text": n["text"] if is_placeholder_name(n["text"]) else "新生儿"}  # not the person's own name
        family = n.get("family") or ""
        given = "".join(n.get("given") or []) if any(ord(c) > 0x2E80 for c in family + "".join(n.get("given") or [])) \
            else " ".join(n.get("given") or [])
        if family or given:
            raw["family"], raw["given"] = family, given
        elif n.get("text"):
            raw["name"] = n["text"]
    org = (patient.get("managingOrganization") or {}) if isinstance(patient.get("managingOrganization"), dict) else {}
    raw["source"] = org.get("reference") or ((patient.get("meta") or {}).get("source") or "")
    raw["gender"] = patient.get("gender") or ""
    raw["birth_date"] = patient.get("birthDate") or ""
    for ident in patient.get("identifier") or []:
        value = (ident or {}).get("value") or ""
        system = (ident or {}).get("system") or ""
        codes = {c.get("code") for c in ((ident.get("type") or {}).get("coding") or []) if isinstance(c, dict)}
        if system == RESIDENT_ID_SYSTEM or codes & {"NNCHN", "NI", "CZ"} or ids.is_valid_resident_id(value):
            raw["id_number"] = value
            break
    docs = documents.from_patient(patient)
    if "id_number" not in raw:
        first_id = next((d for d in docs if d.id_like), None)
        if first_id is not None:
            raw["id_number"] = first_id.value
    other = next((d for d in docs if not d.id_like), None)
    if other is not None:
        raw["identifier"] = other.match_key()  # kind-qualified: equal numbers of two kinds never agree
    for tel in patient.get("telecom") or []:
        if (tel or {}).get("system") == "phone" and tel.get("value"):
            raw["phone"] = tel["value"]
            break
    addrs = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    if addrs:
        a = addrs[0]
        raw["address"] = a.get("text") or "".join([a.get("state") or "", a.get("city") or "", a.get("district") or "",
                                                   *(a.get("line") or [])])
        raw["city"] = a.get("city") or ""
        raw["state"] = a.get("state") or ""
        raw["postcode"] = a.get("postalCode") or ""
        district = a.get("district") or ""
        if district.isdigit():
            raw["address_code"] = district
        for ext in a.get("extension") or []:
            if "division" in (ext.get("url") or "") or "iso21090-ADXP-district" in (ext.get("url") or ""):
                code = ext.get("valueCode") or ext.get("valueString") or ""
                if code.isdigit():
                    raw["address_code"] = code
    return raw


def _hash_keys(feats: dict) -> list[str]:
    return sorted({hashlib.sha1(f"{k}:{v}".encode()).hexdigest() for k, v in record_keys(feats).items()})


# --- term frequencies over the whole index ---------------------------------------------------------------------

TOTAL_KEY = "*:*"


def _freq_key(feature: str, value: str) -> str:
    return f"{feature}:{hashlib.sha1(value.encode()).hexdigest()}"


def freq_keys(feats: dict) -> list[str]:
    """The ``mpi_freq`` rows one record counts in: each filled TF feature's value and filled-total, and the
    record total."""
    out = [TOTAL_KEY]
    for name in TF_FEATURES:
        v = feats.get(name) or ""
        if v:
            out += [_freq_key(name, v), f"{name}:*"]
    return out


def _bump(conn, keys: list[str], delta: int) -> None:
    """Add ``delta`` to each key's count (insert at ``delta`` if new): one upsert statement."""
    if not keys:
        return
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + delta
    rows = [{"key": k, "n": n} for k, n in sorted(counts.items())]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    stmt = upsert(mpi_freq)
    stmt = stmt.on_conflict_do_update(index_elements=[mpi_freq.c.key], set_={"n": mpi_freq.c.n + stmt.excluded.n})
    conn.execute(stmt, rows)


def _freq_needed(table: FeatureTable, first_only: bool) -> list[str]:
    need: set[str] = set()
    for name in TF_FEATURES:
        for v in set(table.col(name)[:1] if first_only else table.col(name)):
            if v:
                need.add(_freq_key(name, v))
        need.add(f"{name}:*")
    return sorted(need)


def _freq_arrays(got: dict[str, int], table: FeatureTable, extra: int, first_only: bool) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in TF_FEATURES:
        col = table.col(name)
        q = col[0] if col else ""
        total = got.get(f"{name}:*", 0) + (extra if q else 0)
        arr = np.zeros(len(col))
        if total > 0:
            for k, v in enumerate(col[:1] if first_only else col):
                if v:
                    c = got.get(_freq_key(name, v), 0) + (extra if v == q else 0)
                    arr[k] = max(c, 1) / max(total, 1)
        out[name] = arr
    return out


def index_frequencies(conn, table: FeatureTable, *, extra: int = 0, first_only: bool = False) -> dict[str, np.ndarray]:
    """Per record of ``table``, each TF feature's relative frequency over the *whole index* — count of the value
    among indexed records with that feature filled, as batch computes it over its file. ``extra`` = 1 counts the
    first record of ``table`` in as well (a ``$match`` query that is not itself indexed). ``first_only``: only the
    first record's values are looked up (scoring uses the query's own frequencies; the rest are left 0)."""
    need = _freq_needed(table, first_only)
    got = dict(conn.execute(select(mpi_freq.c.key, mpi_freq.c.n).where(mpi_freq.c.key.in_(need))).all())
    return _freq_arrays(got, table, extra, first_only)


# --- model -------------------------------------------------------------------------------------------------


_MODEL_VERSION_KEY = "model:online"


def _model_for(conn, version: int | None) -> Model:
    """The model for a known ``mpi_model`` version (None = no fitted model: the shipped default), cached per
    engine and version so that scoring needs no extra query once the version is known."""
    key = f"{id(conn.engine)}:{version if version is not None else 'default'}"
    with _model_lock:
        got = _model_cache.get(key)
    if got is not None:
        return got[1]
    row = None
    if version is not None:
        row = conn.execute(select(mpi_model.c.params, mpi_model.c.updated_us).where(mpi_model.c.name == "online")).first()
        if row is not None:
            key = f"{id(conn.engine)}:{row[1]}"  # the version actually read (a retrain may have come in between)
    params = json.loads(row[0]) if row else json.loads(_DEFAULT_MODEL.read_text(encoding="utf-8"))
    got = (time.time(), Model.from_dict(params))
    with _model_lock:
        _model_cache[key] = got
    return got[1]


def get_model(conn) -> Model:
    """The online model: the one fitted on this index (``mpi_model``), else the shipped default."""
    version = conn.execute(select(mpi_model.c.updated_us).where(mpi_model.c.name == "online")).scalar()
    return _model_for(conn, version)


def retrain(store, *, sample: int = 200_000) -> dict:
    """Refit the online model on the indexed records (u from random pairs, m by EM). Returns the parameters."""
    from hutong.mpi import batch

    with store.read() as tx:
        rows = tx.conn.execute(select(mpi_record.c.features).limit(sample)).all()
    feats = [orjson.loads(r[0]) for r in rows]
    if len(feats) < 200:
        raise FhirError(422, "processing", "索引记录太少，无法估计参数 / too few indexed records to fit the model")
    table = FeatureTable.from_records(feats)
    res = batch.run_table(table)
    params = res.to_dict()
    with store.write() as tx:
        tx.conn.execute(delete(mpi_model).where(mpi_model.c.name == "online"))
        tx.conn.execute(insert(mpi_model).values(name="online", params=json.dumps(params), updated_us=now_us()))
    return params


# --- scoring against the index ----------------------------------------------------------------------------


def _candidates(conn, feats: dict, exclude: str | None) -> list[tuple[str, dict, str]]:
    """Indexed records sharing a blocking key with ``feats``: one statement (keys → ids → feature rows)."""
    keys = _hash_keys(feats)
    if not keys:
        return []
    ids_ = select(mpi_block.c.patient_id).where(mpi_block.c.key.in_(keys)).distinct().limit(MAX_CANDIDATES + 1)
    stmt = select(mpi_record.c.patient_id, mpi_record.c.features, mpi_record.c.person_id).where(
        mpi_record.c.patient_id.in_(ids_.scalar_subquery()))
    if exclude is not None:
        stmt = stmt.where(mpi_record.c.patient_id != exclude)
    return [(r[0], orjson.loads(r[1]), r[2]) for r in conn.execute(stmt)]


def _frequencies_and_model(conn, table: FeatureTable, extra: int) -> tuple[dict[str, np.ndarray], int, Model]:
    """The query's term frequencies, the number of indexed records and the online model's version, read in
    one statement (``mpi_freq`` rows UNION ALL the ``mpi_model`` version)."""
    need = _freq_needed(table, True) + [TOTAL_KEY]
    stmt = select(mpi_freq.c.key, mpi_freq.c.n).where(mpi_freq.c.key.in_(need)).union_all(
        select(literal(_MODEL_VERSION_KEY, String), mpi_model.c.updated_us).where(mpi_model.c.name == "online"))
    got = {r[0]: r[1] for r in conn.execute(stmt)}
    version = got.pop(_MODEL_VERSION_KEY, None)
    return _freq_arrays(got, table, extra, True), int(got.get(TOTAL_KEY, 0)), _model_for(conn, version)


def score_against_index(conn, feats: dict, exclude: str | None = None, *, indexed: bool = False) -> list[dict]:
    """Candidates from the index with probability, grade, person and per-field evidence, best first.

    Term frequencies come from the whole index (``mpi_freq``); ``indexed`` says the query record is already
    counted there (linking), otherwise it is counted in on the fly (``$match``). Two database round trips
    (candidates with their features; frequencies, index size and model version), whatever the index size."""
    cands = _candidates(conn, feats, exclude)
    if not cands:
        return []
    table = FeatureTable.from_records([feats] + [c[1] for c in cands])
    # the term frequency of an agreeing value is read from the query's side (as batch reads it from one side)
    freq, n_total, model = _frequencies_and_model(conn, table, 0 if indexed else 1)
    table.freq_override = freq
    n_index = n_total + (0 if indexed else 1)
    i = np.zeros(len(cands), dtype=np.int64)
    j = np.arange(1, len(cands) + 1, dtype=np.int64)
    prob, gamma, bf = model.score_pairs(table, i, j, n_index=n_index)
    out = []
    for k, (pid, _f, person) in enumerate(cands):
        p = float(prob[k])
        out.append({"patient_id": pid, "person_id": person, "score": round(p, 6),
                    "grade": model.thresholds.grade(p), "evidence": model.explain(gamma[k], bf[k])})
    out.sort(key=lambda x: -x["score"])
    return out


# --- Person records ---------------------------------------------------------------------------------------


def _sync_person(tx, person_id: str) -> None:
    """Rewrite Person/{person_id} from its members in ``mpi_record``."""
    rows = tx.conn.execute(
        select(mpi_record.c.patient_id, mpi_record.c.grade, mpi_record.c.method, mpi_record.c.updated_us)
        .where(mpi_record.c.person_id == person_id).order_by(mpi_record.c.updated_us)
    ).all()
    person: dict = {"resourceType": "Person", "id": person_id, "active": bool(rows)}
    links = []
    for pid, grade, method, _ts in rows:
        links.append({
            "extension": [{"url": MATCH_GRADE_URL, "valueCode": grade}],
            "target": {"reference": f"Patient/{pid}"},
            "assurance": "level4" if method == "manual" else ASSURANCE.get(grade, "level1"),
        })
    if links:
        person["link"] = links
        first = tx.read("Patient", rows[0][0])
        if first is not None and not first.deleted:
            pat = first.resource
            for k in ("name", "gender", "birthDate"):
                if pat.get(k):
                    person[k] = pat[k]
    current = tx.read("Person", person_id)
    if current is None and not links:
        return
    tx.update("Person", person_id, person)


def _set_record(tx, patient_id: str, *, tenant: str, person_id: str, feats: dict | None, grade: str,
                score: float, method: str) -> str | None:
    """Insert or update the patient's index row; returns its previous person id (or None)."""
    prev = tx.conn.execute(select(mpi_record.c.person_id).where(mpi_record.c.patient_id == patient_id)).scalar()
    values = {"tenant": tenant, "person_id": person_id, "grade": grade, "score": score, "method": method,
              "updated_us": now_us()}
    if feats is not None:
        values["features"] = orjson.dumps(feats).decode()
    if prev is None:
        tx.conn.execute(insert(mpi_record).values(patient_id=patient_id, **values))
    else:
        tx.conn.execute(update(mpi_record).where(mpi_record.c.patient_id == patient_id).values(**values))
    return prev


def _rejected(conn, a: str, b: str) -> bool:
    r = mpi_review.c
    return conn.execute(
        select(r.id).where(r.status == "rejected", ((r.patient_id == a) & (r.candidate_id == b))
                           | ((r.patient_id == b) & (r.candidate_id == a))).limit(1)
    ).first() is not None


# --- linking (change-log consumer) ---------------------------------------------------------------------------


def link_patient(tx, patient_id: str, patient: dict | None) -> dict:
    """Index one Patient and link it to a Person. ``patient`` None means deleted. Returns what was done."""
    conn = tx.conn
    existing = conn.execute(
        select(mpi_record.c.person_id, mpi_record.c.method, mpi_record.c.features)
        .where(mpi_record.c.patient_id == patient_id)
    ).first()
    conn.execute(delete(mpi_block).where(mpi_block.c.patient_id == patient_id))
    conn.execute(delete(mpi_ident).where(mpi_ident.c.patient_id == patient_id))
    if existing is not None:
        _bump(conn, freq_keys(orjson.loads(existing[2])), -1)
    if patient is None:
        if existing is not None:
            conn.execute(delete(mpi_record).where(mpi_record.c.patient_id == patient_id))
            _sync_person(tx, existing[0])
        return {"action": "removed"}
    feats = normalize_record(patient_raw(patient))
    _bump(conn, freq_keys(feats), +1)
    keys = _hash_keys(feats)
    if keys:
        conn.execute(insert(mpi_block), [{"key": k, "patient_id": patient_id} for k in keys])
    idents = {((i or {}).get("system") or "", (i or {}).get("value") or "") for i in patient.get("identifier") or []}
    idents = {(s[:255], v[:255]) for s, v in idents if v}
    if idents:
        conn.execute(insert(mpi_ident), [{"system": s, "value": v, "patient_id": patient_id} for s, v in idents])
    tenant = tx.tenant or ""
    if existing is not None and existing[1] == "manual":
        _set_record(tx, patient_id, tenant=tenant, person_id=existing[0], feats=feats, grade="certain",
                    score=1.0, method="manual")
        _sync_person(tx, existing[0])
        return {"action": "kept", "person_id": existing[0]}
    scored = score_against_index(conn, feats, exclude=patient_id, indexed=True)
    model = get_model(conn)
    best = next((c for c in scored if c["grade"] == "certain" and not _rejected(conn, patient_id, c["patient_id"])), None)
    if best is not None:
        person_id, grade, score = best["person_id"], "certain", best["score"]
    else:
        person_id = existing[0] if existing is not None else str(uuid.uuid4())
        if existing is not None:
            others = conn.execute(select(mpi_record.c.patient_id).where(
                mpi_record.c.person_id == person_id, mpi_record.c.patient_id != patient_id)).all()
            if others and not any(c["person_id"] == person_id and c["score"] >= model.thresholds.certain for c in scored):
                person_id = str(uuid.uuid4())  # no longer matches its person: split off
        grade, score = "certain", 1.0
    prev = _set_record(tx, patient_id, tenant=tenant, person_id=person_id, feats=feats, grade=grade, score=score,
                       method="auto")
    # probable / possible candidates in other persons go to the review queue
    queued = 0
    for c in scored:
        if c["person_id"] == person_id or c["grade"] not in ("probable", "possible") and not (
                c["grade"] == "certain" and best is not None and c["person_id"] != person_id):
            continue
        if _rejected(conn, patient_id, c["patient_id"]):
            continue
        r = mpi_review.c
        dup = conn.execute(select(r.id).where(r.status == "open", r.patient_id == patient_id,
                                              r.candidate_id == c["patient_id"])).first()
        if dup is None:
            conn.execute(insert(mpi_review).values(
                id=str(uuid.uuid4()), patient_id=patient_id, candidate_id=c["patient_id"], score=c["score"],
                grade=c["grade"], status="open", evidence=json.dumps(c["evidence"], ensure_ascii=False),
                created_us=now_us()))
            queued += 1
    _sync_person(tx, person_id)
    if prev and prev != person_id:
        _sync_person(tx, prev)
    return {"action": "linked" if best else "new-person", "person_id": person_id, "review": queued}


def consume(tx, events) -> None:
    """Change-log handler: link every created/updated Patient, unlink deleted ones."""
    latest: dict[str, object] = {}
    for e in events:
        if e.res_type == "Patient":
            latest[e.res_id] = e
    for pid in latest:
        stored = tx.read("Patient", pid)
        patient = None if stored is None or stored.deleted else stored.resource
        done = link_patient(tx, pid, patient)
        log.debug("mpi linked Patient/%s: %s", pid, done.get("action"))


# --- queries for other capabilities -------------------------------------------------------------------------


#: Built once: health-card verification asks these for every scan, and building a statement costs
#: more than running it.
_PERSON_OF = select(mpi_record.c.person_id).where(mpi_record.c.patient_id == bindparam("pid"))
_PATIENTS_OF = (select(mpi_record.c.patient_id).where(mpi_record.c.person_id == bindparam("person"))
                .order_by(mpi_record.c.patient_id))


def person_for_patient(store, patient_id: str) -> str | None:
    """The Person id the patient is linked to, or None if not (yet) indexed."""
    with store.read(snapshot=False) as tx:
        return tx.conn.execute(_PERSON_OF, {"pid": patient_id}).scalar()


def linked_patients(store, patient_id: str) -> list[dict]:
    """Patient resources linked to the same person as ``patient_id``, the given one included (first)."""
    with store.read() as tx:
        person = tx.conn.execute(_PERSON_OF, {"pid": patient_id}).scalar()
        pids = [patient_id]
        if person is not None:
            pids += [r[0] for r in tx.conn.execute(_PATIENTS_OF, {"person": person}) if r[0] != patient_id]
        out = []
        for pid in pids:
            s = tx.read("Patient", pid)
            if s is not None and not s.deleted:
                out.append(s.resource)
        return out


def pix(store, source_system: str, source_value: str, target_systems: list[str]) -> list[dict]:
    """PIXm: identifiers (and Patient ids) of every record of the same person. Raises 404 when unknown."""
    with store.read() as tx:
        i = mpi_ident.c
        stmt = select(i.patient_id).where(i.value == source_value)
        if source_system:
            stmt = stmt.where(i.system == source_system)
        pids = [r[0] for r in tx.conn.execute(stmt)]
    if not pids:
        raise FhirError(404, "not-found", "未找到该标识 / sourceIdentifier not found")
    seen: set[str] = set()
    out: list[dict] = []
    for pid in pids:
        for pat in linked_patients(store, pid):
            if pat["id"] in seen:
                continue
            seen.add(pat["id"])
            out.append({"targetId": f"Patient/{pat['id']}", "identifiers": [
                x for x in pat.get("identifier") or []
                if not target_systems or (x or {}).get("system") in target_systems]})
    return out


def match(store, patient: dict, *, count: int = 10, only_certain: bool = False) -> list[dict]:
    """ITI-119 ``$match``: indexed Patients scored against ``patient``, best first (one per record)."""
    feats = normalize_record(patient_raw(patient))
    with store.read() as tx:
        scored = score_against_index(tx.conn, feats)
        out = []
        for c in scored:
            if c["grade"] == "certainly-not" or (only_certain and c["grade"] != "certain"):
                continue
            s = tx.read("Patient", c["patient_id"])
            if s is None or s.deleted:
                continue
            out.append({**c, "resource": s.resource})
            if len(out) >= count:
                break
    if only_certain and len(out) > 1:
        out = out[:1]  # IHE: only one certain match may be returned
    return out


# --- review queue, merge, unmerge ---------------------------------------------------------------------------


def _record_view(tx, pid: str) -> dict:
    s = tx.read("Patient", pid)
    res = s.resource if s is not None and not s.deleted else None
    person = tx.conn.execute(select(mpi_record.c.person_id).where(mpi_record.c.patient_id == pid)).scalar()
    return {"patient_id": pid, "person_id": person, "resource": res}


def review_list(store, status: str = "open", limit: int = 100) -> list[dict]:
    """Review items (newest first), without the records."""
    r = mpi_review.c
    with store.read() as tx:
        rows = tx.conn.execute(select(r.id, r.patient_id, r.candidate_id, r.score, r.grade, r.status, r.created_us)
                               .where(r.status == status).order_by(r.created_us.desc()).limit(limit)).all()
    return [{"id": x[0], "patient_id": x[1], "candidate_id": x[2], "score": x[3], "grade": x[4], "status": x[5],
             "created_us": x[6]} for x in rows]


def review_get(store, review_id: str) -> dict:
    """One review item with both records side by side and the evidence per field."""
    r = mpi_review.c
    with store.read() as tx:
        row = tx.conn.execute(select(mpi_review).where(r.id == review_id)).mappings().first()
        if row is None:
            raise FhirError(404, "not-found", f"review item {review_id[:64]!r} not found")
        feats = dict(tx.conn.execute(select(mpi_record.c.patient_id, mpi_record.c.features).where(
            mpi_record.c.patient_id.in_([row["patient_id"], row["candidate_id"]]))).all())
        reasons = describe_pair(orjson.loads(feats[row["patient_id"]]), orjson.loads(feats[row["candidate_id"]])) \
            if len(feats) == 2 else []
        return {"id": row["id"], "status": row["status"], "score": row["score"], "grade": row["grade"],
                "evidence": json.loads(row["evidence"]), "reasons": reasons,
                "left": _record_view(tx, row["patient_id"]), "right": _record_view(tx, row["candidate_id"])}


def _audit(tx, action: str, moves: list[dict], who: str, refs: list[str], extra: dict | None = None) -> str:
    detail = json.dumps({"action": action, "moves": moves, **(extra or {})}, ensure_ascii=False)
    event = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": "urn:hutong:mpi", "code": action}],
        "action": "U",
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "outcome": "0",
        "agent": [{"who": {"display": who[:128]}, "requestor": True}],
        "source": {"observer": {"display": "hutong-mpi"}},
        "entity": [{"what": {"reference": ref}} for ref in refs],
    }
    event["entity"].append({"description": "mpi-change", "detail": [{"type": "mpi-change", "valueString": detail}]})
    return tx.create(event).stored.res_id


def _move(tx, patient_ids: list[str], to_person: str, grade: str = "certain") -> list[dict]:
    moves = []
    touched = {to_person}
    for pid in patient_ids:
        prev = _set_record(tx, pid, tenant=tx.tenant or "", person_id=to_person, feats=None, grade=grade, score=1.0,
                           method="manual")
        if prev is None:
            raise FhirError(404, "not-found", f"Patient/{pid} is not in the index")
        moves.append({"patient": pid, "from": prev, "to": to_person})
        touched.add(prev)
    for p in touched:
        _sync_person(tx, p)
    return moves


def _patient_id(ref: str) -> str:
    ref = (ref or "").strip()
    return ref.split("/", 1)[1] if ref.startswith("Patient/") else ref


def merge(store, source: str, target: str, *, who: str = "operator", review_id: str | None = None) -> dict:
    """Put every record of ``source``'s person into ``target``'s person. Audited; undo with :func:`unmerge`."""
    s, t = _patient_id(source), _patient_id(target)
    with store.write() as tx:
        ps = tx.conn.execute(select(mpi_record.c.person_id).where(mpi_record.c.patient_id == s)).scalar()
        pt = tx.conn.execute(select(mpi_record.c.person_id).where(mpi_record.c.patient_id == t)).scalar()
        if ps is None or pt is None:
            raise FhirError(404, "not-found", "两条记录都须已建索引 / both patients must be indexed")
        if ps == pt:
            raise FhirError(409, "conflict", "已属同一人 / already linked to the same person")
        members = [r[0] for r in tx.conn.execute(select(mpi_record.c.patient_id).where(mpi_record.c.person_id == ps))]
        moves = _move(tx, members, pt)
        # the target's records are now confirmed too
        tx.conn.execute(update(mpi_record).where(mpi_record.c.person_id == pt).values(method="manual"))
        _sync_person(tx, pt)
        if review_id:
            tx.conn.execute(update(mpi_review).where(mpi_review.c.id == review_id).values(
                status="linked", decided_us=now_us(), decided_by=who[:128]))
        tx.conn.execute(update(mpi_review).where(
            mpi_review.c.status == "open", mpi_review.c.patient_id.in_(members), mpi_review.c.candidate_id == t
        ).values(status="linked", decided_us=now_us(), decided_by=who[:128]))
        audit = _audit(tx, "merge", moves, who, [f"Patient/{s}", f"Patient/{t}", f"Person/{pt}"])
    return {"audit": audit, "person_id": pt, "moves": moves}


def unmerge(store, *, audit: str | None = None, patient: str | None = None, who: str = "operator") -> dict:
    """Undo a merge (by its AuditEvent id: every record goes back to its former person), or split one patient
    out into a new person. Audited as well."""
    with store.write() as tx:
        if audit:
            ev = tx.read("AuditEvent", audit)
            if ev is None or ev.deleted:
                raise FhirError(404, "not-found", f"AuditEvent/{audit[:64]} not found")
            detail = None
            for ent in ev.resource.get("entity") or []:
                for d in ent.get("detail") or []:
                    if d.get("type") == "mpi-change":
                        detail = json.loads(d["valueString"])
            if not detail or detail.get("action") not in ("merge", "link"):
                raise FhirError(422, "processing", "该审计事件不是合并 / that AuditEvent is not a merge")
            moves = []
            for mv in detail["moves"]:
                moves += _move(tx, [mv["patient"]], mv["from"])
            pids = [m["patient"] for m in detail["moves"]]
            refs = [f"Patient/{p}" for p in pids] + [f"AuditEvent/{audit}"]
            new_audit = _audit(tx, "unmerge", moves, who, refs, {"undoes": audit})
        elif patient:
            pid = _patient_id(patient)
            person = str(uuid.uuid4())
            moves = _move(tx, [pid], person)
            new_audit = _audit(tx, "unmerge", moves, who, [f"Patient/{pid}"])
        else:
            raise FhirError(400, "required", "需要 audit 或 patient / audit or patient is required")
        # keep the separated records apart from now on
        for mv in moves:
            others = [r[0] for r in tx.conn.execute(
                select(mpi_record.c.patient_id).where(mpi_record.c.person_id == mv["from"]))]
            for o in others:
                tx.conn.execute(insert(mpi_review).values(
                    id=str(uuid.uuid4()), patient_id=mv["patient"], candidate_id=o, score=0.0, grade="certainly-not",
                    status="rejected", evidence="[]", created_us=now_us(), decided_us=now_us(), decided_by=who[:128]))
    return {"audit": new_audit, "moves": moves}


def review_decide(store, review_id: str, decision: str, *, who: str = "operator") -> dict:
    """``link`` (merge the two persons) or ``reject`` (never propose this pair again) a review item."""
    item = review_get(store, review_id)
    if item["status"] != "open":
        raise FhirError(409, "conflict", f"review item is already {item['status']}")
    if decision == "link":
        return merge(store, item["left"]["patient_id"], item["right"]["patient_id"], who=who, review_id=review_id)
    if decision == "reject":
        with store.write() as tx:
            tx.conn.execute(update(mpi_review).where(mpi_review.c.id == review_id).values(
                status="rejected", decided_us=now_us(), decided_by=who[:128]))
            audit = _audit(tx, "reject", [], who, [f"Patient/{item['left']['patient_id']}",
                                                   f"Patient/{item['right']['patient_id']}"])
        return {"audit": audit}
    raise FhirError(400, "invalid", "decision must be link or reject")
