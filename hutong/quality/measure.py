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

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import orjson
from sqlalchemy import and_, delete, func, or_, select, update

from hutong.capability import Consumer
from hutong.core.clock import local_day, to_us
from hutong.quality import arrivals, rules
from hutong.quality.tables import quality_arrival as QA
from hutong.quality.tables import quality_issue as QI
from hutong.stats import counters
from hutong.store import schema

NAME = "quality"
#: Every resource type counts as an arrival; rules look at some of them.
_ARRIVAL_FIELDS = ("creates", "updates", "deletes", "lat_n", "lat_sum_s", *arrivals.LATENCY_BUCKETS)


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
            seconds = max(0.0, (ev.ts_us - at) / 1e6)
            row["lat_n"] += 1
            row["lat_sum_s"] += seconds
            row[arrivals.latency_bucket(seconds)] += 1
    row["last_us"] = max(row["last_us"], ev.ts_us)


def _apply_arrivals(conn, acc: dict) -> None:
    for (org, day, res_type, iface), add in acc.items():
        where = and_(QA.c.org == org, QA.c.day == day, QA.c.res_type == res_type, QA.c.interface == iface)
        cur = conn.execute(select(*[QA.c[f] for f in _ARRIVAL_FIELDS], QA.c.last_us).where(where)).first()
        if cur is None:
            conn.execute(QA.insert().values(org=org, day=day, res_type=res_type, interface=iface, **add))
        else:
            values = {f: cur[i] + add[f] for i, f in enumerate(_ARRIVAL_FIELDS)}
            values["last_us"] = max(cur[-1], add["last_us"])
            conn.execute(update(QA).where(where).values(**values))


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
    _apply_arrivals(conn, acc)
    counters.apply_deltas(conn, RULE_COUNTS.name, rule_deltas)
    if latest:
        keys = list(latest)
        for k in range(0, len(keys), 200):
            chunk = keys[k:k + 200]
            conn.execute(delete(QI).where(or_(*[and_(QI.c.res_type == t, QI.c.res_id == i) for t, i in chunk])))
        rows = [row for (t, i), res in latest.items() for row in _issue_rows(t, i, res)]
        if rows:
            conn.execute(QI.insert(), rows)


CONSUMER = Consumer(NAME, _handle, None)


# ------------------------------------------------------------------------------------------ from scratch
def stored(store) -> dict:
    """What the consumer has kept: arrivals, rule counts and issues, as plain comparable values."""
    with store.read() as tx:
        arr = {(r.org, r.day, r.res_type, r.interface): tuple(_norm(r._mapping[f]) for f in (*_ARRIVAL_FIELDS, "last_us"))
               for r in tx.conn.execute(select(QA))}
        issues = {(r.rule, r.res_type, r.res_id): (r.org, r.day, r.detail, int(r.ts_us))
                  for r in tx.conn.execute(select(QI))}
    return {"arrivals": arr, "rules": counters.stored(store, RULE_COUNTS), "issues": issues}


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
        for res_type in sorted(rules.TYPES):
            for rid, text in tx.conn.execution_options(yield_per=2000).execute(
                    select(r.res_id, r.content).where(r.res_type == res_type, r.deleted.is_(False))):
                for row in _issue_rows(res_type, rid, orjson.loads(text)):
                    issues[(row["rule"], res_type, rid)] = (row["org"], row["day"], row["detail"], row["ts_us"])
    arr = {k: tuple(_norm(v[f]) for f in (*_ARRIVAL_FIELDS, "last_us")) for k, v in acc.items()}
    return {"arrivals": arr, "rules": counters.recompute(store, RULE_COUNTS), "issues": issues}


def rebuild(store) -> None:
    """Replace the kept figures with a recomputation (after a rule change), consumer position kept."""
    fresh = recompute(store)
    with store.write() as tx:
        conn = tx.conn
        conn.execute(delete(QA))
        conn.execute(delete(QI))
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
