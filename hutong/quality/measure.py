"""Measuring from the change log: one consumer keeps arrivals, rule counts and the issue list.

``CONSUMER`` (named ``quality``) runs inside the write transaction that moves its position, so every
effect happens exactly once per event. Per event it reads the version the event made and the one it
replaced (once per batch for all events), then:

- arrivals: one more create/update/delete for (institution, day of arrival, type, interface), and
  for a create with a clinical event time, the delay into the latency sum and buckets;
- rule counts: the new version's outcomes minus the replaced version's (``hutong.stats.counters``),
  keyed (institution, day of the version's arrival, rule, ``applicable``/``failed``): sums always
  equal those of the current resources, through corrections, moves and deletes;
- issues: the resource's rows in ``quality_issue`` replaced by its current failures.

``recompute(store)`` rebuilds all three from scratch (replaying the change log for arrivals, scanning
current resources for the rest); ``stored(store)`` reads what the consumer kept. They are equal
(tested on both backends), which is how an operator checks the live figures.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import orjson
from sqlalchemy import bindparam, delete, func, select, tuple_, update

from hutong.capability import Consumer
from hutong.core.clock import local_day, to_us
from hutong.quality import arrivals, rules
from hutong.quality.tables import quality_arrival as QA
from hutong.quality.tables import quality_issue as QI
from hutong.quality.tables import quality_patient as QP
from hutong.search.tables import sp_reference as SPR
from hutong.stats import counters
from hutong.store import schema
from hutong.store.references import reference_objects

NAME = "quality"
#: Every resource type counts as an arrival; rules look at some of them.
_ARRIVAL_FIELDS = ("creates", "updates", "deletes", "lat_n", "lat_sum_ms", *arrivals.LATENCY_BUCKETS)
UNRESOLVED = "ref-unresolved"
_REF = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(/_history/[^/]+)?$")


def _updated_us(resource: dict) -> int:
    """The version's ``meta.lastUpdated`` (stamped by the store) in µs UTC (0 if unreadable)."""
    updated = (resource.get("meta") or {}).get("lastUpdated") or ""
    try:
        return to_us(datetime.fromisoformat(str(updated).replace("Z", "+00:00")))
    except ValueError:
        return 0


def _version_day(resource: dict) -> str:
    """The Asia/Shanghai day the version arrived."""
    ts = _updated_us(resource)
    return local_day(ts) if ts else ""


def _rule_contributions(resource: dict) -> Iterable[tuple[tuple, float]]:
    org = arrivals.institution_of(resource)
    day = _version_day(resource)
    for o in rules.evaluate(resource):
        yield (org, day, o.rule, "applicable"), 1.0
        if not o.ok:
            yield (org, day, o.rule, "failed"), 1.0


RULE_COUNTS = counters.Counter("quality-rules", rules.TYPES, ("institution", "day", "rule", "outcome"),
                               _rule_contributions)


# ------------------------------------------------------------------------------------------ reading versions
def _contents(conn, wanted: set[tuple[str, str, int]]) -> dict[tuple[str, str, int], dict | None]:
    """The content of each wanted version (None for deletions and versions that do not exist)."""
    out: dict[tuple[str, str, int], dict | None] = {k: None for k in wanted}
    by_type: dict[str, set[str]] = defaultdict(set)
    for t, i, v in wanted:
        if v >= 1:
            by_type[t].add(i)
    v_, r_ = schema.resource_version.c, schema.resource.c
    joined = schema.resource_version.outerjoin(
        schema.resource, (r_.res_type == v_.res_type) & (r_.res_id == v_.res_id) & (r_.version_id == v_.version_id))
    for t, ids in by_type.items():
        ids_list = sorted(ids)
        for k in range(0, len(ids_list), 500):
            chunk = ids_list[k:k + 500]
            stmt = (select(v_.res_id, v_.version_id, v_.deleted, func.coalesce(v_.content, r_.content))
                    .select_from(joined).where(v_.res_type == t, v_.res_id.in_(chunk)))
            for rid, ver, deleted, text in conn.execute(stmt):
                key = (t, rid, int(ver))
                if key in out and not deleted and text is not None:
                    out[key] = orjson.loads(text)
    return out


# ------------------------------------------------------------------------------------------ arrivals
def _arrival_deltas(ev, new: dict | None, old: dict | None, acc: dict) -> None:
    sender = new if new is not None else old
    key = (arrivals.institution_of(sender), local_day(ev.ts_us), ev.res_type,
           arrivals.interface_of(ev.res_type, sender))
    row = acc.get(key)
    if row is None:
        row = acc[key] = dict.fromkeys(_ARRIVAL_FIELDS, 0) | {"last_us": 0}
    row[{"create": "creates", "update": "updates", "delete": "deletes"}.get(ev.op, "updates")] += 1
    if ev.op == "create" and new is not None:
        at = arrivals.event_time_us(new)
        if at is not None:
            ms = max(0, (ev.ts_us - at) // 1000)
            row["lat_n"] += 1
            row["lat_sum_ms"] += ms
            row[arrivals.latency_bucket(ms / 1000)] += 1
    row["last_us"] = max(row["last_us"], ev.ts_us)


def _apply_arrivals(conn, acc: dict) -> None:
    """Add a batch's arrivals: one read of the rows it touches (by primary key, in chunks), then one
    executemany for the new rows and one for the changed ones."""
    if not acc:
        return
    keys = list(acc)
    cols = (QA.c.org, QA.c.day, QA.c.res_type, QA.c.interface)
    current: dict[tuple, tuple] = {}
    for k in range(0, len(keys), 200):
        for row in conn.execute(select(*cols, *[QA.c[f] for f in _ARRIVAL_FIELDS], QA.c.last_us)
                                .where(tuple_(*cols).in_(keys[k:k + 200]))):
            current[tuple(row[:4])] = tuple(row[4:])
    inserts, updates = [], []
    for key, add in acc.items():
        cur = current.get(key)
        if cur is None:
            inserts.append(dict(zip(("org", "day", "res_type", "interface"), key, strict=True)) | add)
        else:
            values = {f"v_{f}": cur[i] + add[f] for i, f in enumerate(_ARRIVAL_FIELDS)}
            values["v_last_us"] = max(cur[-1], add["last_us"])
            updates.append(values | dict(zip(("b_org", "b_day", "b_res_type", "b_interface"), key, strict=True)))
    if inserts:
        conn.execute(QA.insert(), inserts)
    if updates:
        stmt = (update(QA).where(*[c == bindparam(f"b_{c.name}") for c in cols])
                .values(**{f: bindparam(f"v_{f}") for f in (*_ARRIVAL_FIELDS, "last_us")}))
        conn.execute(stmt, updates)


def _delete_issues(conn, keys: list[tuple[str, str]], *, unresolved: bool) -> None:
    """Remove the issue rows of these resources: the rule rows, or the ``ref-unresolved`` ones."""
    rule = QI.c.rule == UNRESOLVED if unresolved else QI.c.rule != UNRESOLVED
    for k in range(0, len(keys), 200):
        conn.execute(delete(QI).where(rule, tuple_(QI.c.res_type, QI.c.res_id).in_(keys[k:k + 200])))


# ------------------------------------------------------------------------------------------ issues
def _issue_rows(res_type: str, res_id: str, resource: dict | None) -> list[dict]:
    if resource is None:
        return []
    org = arrivals.institution_of(resource)
    day = _version_day(resource)
    ts = _updated_us(resource)
    rows: dict[str, dict] = {}
    for o in rules.evaluate(resource):
        if not o.ok and o.rule not in rows:
            rows[o.rule] = {"rule": o.rule, "res_type": res_type, "res_id": res_id, "org": org, "day": day,
                            "detail": o.detail[:64], "ts_us": ts}
    return list(rows.values())


# ------------------------------------------------------------------------------------------ references
def _targets(resource: dict) -> list[tuple[str, str]]:
    """The local resources ``resource`` references (relative references, in document order)."""
    out = []
    for obj in reference_objects(resource):
        m = _REF.match(obj.get("reference") or "")
        if m and (m.group(1), m.group(2)) not in out:
            out.append((m.group(1), m.group(2)))
    return out


def _existing(conn, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    by_type: dict[str, list[str]] = defaultdict(list)
    for t, i in keys:
        by_type[t].append(i)
    r = schema.resource.c
    found = set()
    for t, ids in by_type.items():
        for k in range(0, len(ids), 500):
            for (rid,) in conn.execute(select(r.res_id).where(r.res_type == t, r.res_id.in_(ids[k:k + 500]),
                                                              r.deleted.is_(False))):
                found.add((t, rid))
    return found


def _unresolved_row(res_type: str, res_id: str, resource: dict, missing: list[tuple[str, str]]) -> dict:
    t, i = missing[0]
    return {"rule": UNRESOLVED, "res_type": res_type, "res_id": res_id, "org": arrivals.institution_of(resource),
            "day": _version_day(resource), "detail": f"{t}/{i}"[:64], "ts_us": _updated_us(resource)}


def _referrers(conn, targets: set[tuple[str, str]], *, unresolved_only: bool) -> set[tuple[str, str]]:
    """Resources referencing any of ``targets`` (the search index's reverse lookup); with
    ``unresolved_only`` just those that have a ``ref-unresolved`` row."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for t, i in targets:
        by_type[t].append(i)
    stmt = select(SPR.c.res_type, SPR.c.res_id).distinct()
    if unresolved_only:
        stmt = stmt.join(QI, (QI.c.rule == UNRESOLVED) & (QI.c.res_type == SPR.c.res_type)
                         & (QI.c.res_id == SPR.c.res_id))
    found: set[tuple[str, str]] = set()
    for t, ids in by_type.items():
        ids = sorted(ids)
        for k in range(0, len(ids), 500):
            found.update(tuple(row) for row in conn.execute(
                stmt.where(SPR.c.target_type == t, SPR.c.target_id.in_(ids[k:k + 500]))))
    return found


def _recheck_references(conn, latest: dict[tuple[str, str], dict | None], written: set[tuple[str, str]],
                        deleted: set[tuple[str, str]]) -> None:
    """Replace the ``ref-unresolved`` rows of the resources changed in this batch and of the resources
    whose answer the batch may change, found through the search index's reverse lookup: every
    referrer of a deleted resource (it may now point at nothing), and the referrers of a written one
    that were unresolved (a new or restored target can only resolve references, so the others'
    answer stands; checking them would re-read every Observation of a Patient at its creation)."""
    check = dict(latest)
    referrers = _referrers(conn, deleted, unresolved_only=False) if deleted else set()
    if written:
        referrers |= _referrers(conn, written, unresolved_only=True)
    r = schema.resource.c
    others = sorted(referrers - set(check))
    for t, i in others:
        check[(t, i)] = None
    for k in range(0, len(others), 200):
        for t, i, text in conn.execute(select(r.res_type, r.res_id, r.content).where(
                tuple_(r.res_type, r.res_id).in_(others[k:k + 200]), r.deleted.is_(False))):
            check[(t, i)] = orjson.loads(text) if text else None
    targets = {k: _targets(res) for k, res in check.items() if res is not None}
    present = _existing(conn, {x for ts in targets.values() for x in ts})
    _delete_issues(conn, list(check), unresolved=True)
    rows = []
    for (t, i), ts in targets.items():
        missing = [x for x in ts if x not in present]
        if missing:
            rows.append(_unresolved_row(t, i, check[(t, i)], missing))
    if rows:
        conn.execute(QI.insert(), rows)


def _handle(tx, events) -> None:
    conn = tx.conn
    wanted = set()
    for ev in events:
        wanted.add((ev.res_type, ev.res_id, ev.version_id))
        wanted.add((ev.res_type, ev.res_id, ev.version_id - 1))
    content = _contents(conn, wanted)
    acc: dict = {}
    rule_deltas: dict[tuple, float] = defaultdict(float)
    latest: dict[tuple[str, str], dict | None] = {}
    every: dict[tuple[str, str], dict | None] = {}
    written: set[tuple[str, str]] = set()
    deleted: set[tuple[str, str]] = set()
    for ev in events:
        new = None if ev.op == "delete" else content.get((ev.res_type, ev.res_id, ev.version_id))
        old = content.get((ev.res_type, ev.res_id, ev.version_id - 1))
        _arrival_deltas(ev, new, old, acc)
        if ev.res_type in rules.TYPES:
            for key, amount in RULE_COUNTS.contributions(new).items():
                rule_deltas[key] += amount
            for key, amount in RULE_COUNTS.contributions(old).items():
                rule_deltas[key] -= amount
            latest[(ev.res_type, ev.res_id)] = new
        every[(ev.res_type, ev.res_id)] = new
        key = (ev.res_type, ev.res_id)
        if ev.op == "delete":
            deleted.add(key)
            written.discard(key)
        else:
            written.add(key)
            deleted.discard(key)
    _apply_arrivals(conn, acc)
    counters.apply_deltas(conn, RULE_COUNTS.name, rule_deltas)
    if latest:
        _delete_issues(conn, list(latest), unresolved=False)
        rows = [row for (t, i), res in latest.items() for row in _issue_rows(t, i, res)]
        if rows:
            conn.execute(QI.insert(), rows)
    _recheck_references(conn, every, written, deleted)
    patients = {i: res for (t, i), res in every.items() if t == "Patient"}
    if patients:
        ids = sorted(patients)
        for k in range(0, len(ids), 500):
            conn.execute(delete(QP).where(QP.c.patient_id.in_(ids[k:k + 500])))
        rows = [{"patient_id": i, "org": arrivals.institution_of(res)} for i, res in patients.items() if res is not None]
        if rows:
            conn.execute(QP.insert(), rows)


CONSUMER = Consumer(NAME, _handle, None)


# ------------------------------------------------------------------------------------------ from scratch
def stored(store) -> dict:
    """What the consumer has kept: arrivals, rule counts and issues, as plain comparable values."""
    with store.read() as tx:
        arr = {(r.org, r.day, r.res_type, r.interface): tuple(_norm(r._mapping[f]) for f in (*_ARRIVAL_FIELDS, "last_us"))
               for r in tx.conn.execute(select(QA))}
        issues = {(r.rule, r.res_type, r.res_id): (r.org, r.day, r.detail, int(r.ts_us))
                  for r in tx.conn.execute(select(QI))}
        patients = dict(tx.conn.execute(select(QP.c.patient_id, QP.c.org)).all())
    return {"arrivals": arr, "rules": counters.stored(store, RULE_COUNTS), "issues": issues, "patients": patients}


def _norm(v):
    return round(float(v), 3) if isinstance(v, float) else int(v)


def recompute(store, batch: int = 5000) -> dict:
    """The same figures from scratch: the change log replayed for arrivals, the current resources
    scanned for rule counts and issues."""
    acc: dict = {}
    outbox = store.outbox
    after = 0
    with store.read() as tx:
        while True:
            page = outbox.read_versions(after, batch, conn=tx.conn)
            if not page:
                break
            deletes = {(ev.res_type, ev.res_id, ev.version_id - 1) for ev, _t in page if ev.op == "delete"}
            previous = _contents(tx.conn, deletes) if deletes else {}
            for ev, text in page:
                new = orjson.loads(text) if text is not None and ev.op != "delete" else None
                old = previous.get((ev.res_type, ev.res_id, ev.version_id - 1)) if ev.op == "delete" else None
                _arrival_deltas(ev, new, old, acc)
            after = page[-1][0].seq
        issues = {}
        r = schema.resource.c
        present = {(t, i) for t, i in tx.conn.execution_options(yield_per=20000).execute(
            select(r.res_type, r.res_id).where(r.deleted.is_(False)))}
        patients = {}
        for res_type, rid, text in tx.conn.execution_options(yield_per=2000).execute(
                select(r.res_type, r.res_id, r.content).where(r.deleted.is_(False))):
            resource = orjson.loads(text)
            if res_type == "Patient":
                patients[rid] = arrivals.institution_of(resource)
            found = []
            if res_type in rules.TYPES:
                found = _issue_rows(res_type, rid, resource)
            missing = [x for x in _targets(resource) if x not in present]
            if missing:
                found.append(_unresolved_row(res_type, rid, resource, missing))
            for row in found:
                issues[(row["rule"], res_type, rid)] = (row["org"], row["day"], row["detail"], row["ts_us"])
    arr = {k: tuple(_norm(v[f]) for f in (*_ARRIVAL_FIELDS, "last_us")) for k, v in acc.items()}
    return {"arrivals": arr, "rules": counters.recompute(store, RULE_COUNTS), "issues": issues, "patients": patients}


def rebuild(store) -> None:
    """Replace the kept figures with a recomputation (after a rule change), consumer position kept."""
    fresh = recompute(store)
    with store.write() as tx:
        conn = tx.conn
        conn.execute(delete(QA))
        conn.execute(delete(QI))
        conn.execute(delete(QP))
        if fresh["patients"]:
            conn.execute(QP.insert(), [{"patient_id": i, "org": o} for i, o in fresh["patients"].items()])
        conn.execute(delete(counters.stats_counter).where(counters.stats_counter.c.counter == RULE_COUNTS.name))
        names = (*_ARRIVAL_FIELDS, "last_us")
        rows = [dict(zip(("org", "day", "res_type", "interface"), k, strict=True)) | dict(zip(names, v, strict=True))
                for k, v in fresh["arrivals"].items()]
        if rows:
            conn.execute(QA.insert(), rows)
        irows = [{"rule": k[0], "res_type": k[1], "res_id": k[2], "org": v[0], "day": v[1], "detail": v[2], "ts_us": v[3]}
                 for k, v in fresh["issues"].items()]
        if irows:
            conn.execute(QI.insert(), irows)
        counters.apply_deltas(conn, RULE_COUNTS.name, fresh["rules"])
