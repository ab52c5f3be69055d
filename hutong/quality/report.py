"""The assessment as figures: per institution and day, from the kept tables (no scan of resources).

``institution_report(store, org)`` gathers one institution's connectivity and volume, rule
outcomes with examples, unresolved references, shared documents by WS/T type, card scans, the
indicator values, group scores and the estimated level; ``province_overview(store)`` does the
same for every institution at once (a few grouped queries) and ranks them.

The assessment window is the ``days`` complete days ending ``day`` (yesterday by default: today
is still arriving, and is shown live beside it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from sqlalchemy import and_, false, func, select

from hutong.card.tables import card_scan as CS
from hutong.core.clock import local_day, now_us
from hutong.quality import arrivals, baseline, levels, rules
from hutong.quality.measure import RULE_COUNTS, UNRESOLVED
from hutong.quality.tables import quality_arrival as QA
from hutong.quality.tables import quality_issue as QI
from hutong.quality.tables import quality_patient as QP
from hutong.share.tables import share_document as SD
from hutong.stats.counters import stats_counter as SC
from hutong.store.schema import resource as R

DAY_US = 86_400_000_000
WINDOW_DAYS = 30
EXAMPLES = 10
PLATFORM_EXT = "https://hutong.example/fhir/StructureDefinition/city-platform"
LEVEL_SYSTEM = "https://hutong.example/fhir/CodeSystem/institution-level"
GROUPS = ("connectivity", "conformance", "completeness", "timeliness", "documents")


@dataclass
class Institution:
    org_id: str
    name: str
    city: str = ""
    platform: str = ""
    grade: str = ""  # 3A 三级甲等 …, from the registry


@dataclass
class InstitutionReport:
    institution: Institution
    day: str  # last day of the window
    days: list[str]
    today: str
    per_day: dict[str, int]  # arrivals per day (window + baseline weeks + today)
    by_type: dict[str, int]  # arrivals in the window by resource type
    by_interface: dict[str, int]
    last_by_interface: dict[str, int]  # µs of the last arrival ever, per interface
    latency: dict[str, int]  # n, sum_ms, le_1h … gt_7d (counts) in the window
    checks: list[baseline.DayCheck]  # one per window day
    rules: dict[str, tuple[int, int]]  # rule -> (applicable, failed) in the window
    examples: dict[str, list[dict]] = field(default_factory=dict)
    unresolved: int = 0
    unresolved_examples: list[dict] = field(default_factory=list)
    documents: dict[str, tuple[int, int]] = field(default_factory=dict)  # WS/T type code -> (documents, with problems)
    card_scans: tuple[int, int] = (0, 0)  # (accepted, all) in the window
    patients: tuple[int, int] = (0, 0)  # (current Patients linked by the patient index, duplicate records)
    indicators: dict[str, float | None] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    estimate: levels.Estimate | None = None

    @property
    def gap_days(self) -> list[str]:
        return [c.day for c in self.checks if c.gap]

    @property
    def last_us(self) -> int | None:
        return max(self.last_by_interface.values(), default=None)



def default_day() -> str:
    """Yesterday in Asia/Shanghai: the last complete day."""
    return local_day(now_us() - DAY_US)


# ------------------------------------------------------------------------------------------ queries
def institutions(conn) -> dict[str, Institution]:
    """Every registered Organization with a name (the registry's view of who should send)."""
    out = {}
    for rid, content in conn.execute(select(R.c.res_id, R.c.content).where(
            R.c.res_type == "Organization", R.c.deleted == false())):
        o = orjson.loads(content)
        city = next((a.get("city") for a in o.get("address") or [] if isinstance(a, dict) and a.get("city")), "")
        platform = ""
        for ext in o.get("extension") or []:
            if isinstance(ext, dict) and ext.get("url") == PLATFORM_EXT:
                platform = (ext.get("valueCoding") or {}).get("code") or ext.get("valueCode") or ""
        grade = ""
        for t in o.get("type") or []:
            for c in (t or {}).get("coding") or []:
                if (c or {}).get("system") == LEVEL_SYSTEM:
                    grade = c.get("display") or c.get("code") or ""
        out[rid] = Institution(rid, o.get("name") or rid, city or "", platform, grade)
    return out


def _arrival_rows(conn, first: str, last: str, org: str | None):
    stmt = select(QA).where(QA.c.day >= first, QA.c.day <= last)
    if org is not None:
        stmt = stmt.where(QA.c.org == org)
    return conn.execute(stmt)


def _last_by_interface(conn, org: str | None) -> dict[str, dict[str, int]]:
    stmt = select(QA.c.org, QA.c.interface, func.max(QA.c.last_us)).group_by(QA.c.org, QA.c.interface)
    if org is not None:
        stmt = stmt.where(QA.c.org == org)
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for o, iface, ts in conn.execute(stmt):
        out[o][iface] = int(ts)
    return out


def _rule_counts(conn, first: str, last: str, org: str | None) -> dict[str, dict[str, list[int]]]:
    stmt = (select(SC.c.k1, SC.c.k3, SC.c.k4, func.sum(SC.c.value))
            .where(SC.c.counter == RULE_COUNTS.name, SC.c.k2 >= first, SC.c.k2 <= last)
            .group_by(SC.c.k1, SC.c.k3, SC.c.k4))
    if org is not None:
        stmt = stmt.where(SC.c.k1 == org)
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for o, rule, outcome, n in conn.execute(stmt):
        out[o][rule][0 if outcome == "applicable" else 1] += int(round(n or 0))
    return out


def _unresolved(conn, org: str | None, limit: int = 0):
    """Resources whose references do not resolve, per sender (kept by the consumer), or up to ``limit``
    examples for ``org``."""
    if limit:
        rows = conn.execute(select(QI.c.res_type, QI.c.res_id, QI.c.detail).where(
            QI.c.org == org, QI.c.rule == UNRESOLVED).order_by(QI.c.ts_us.desc(), QI.c.res_id).limit(limit))
        return [{"res_type": t, "res_id": i, "target": d} for t, i, d in rows]
    stmt = select(QI.c.org, func.count()).where(QI.c.rule == UNRESOLVED).group_by(QI.c.org)
    if org is not None:
        stmt = stmt.where(QI.c.org == org)
    return {o: int(n) for o, n in conn.execute(stmt)}


def _documents(conn, org: str | None) -> dict[str, dict[str, list[int]]]:
    stmt = (select(R.c.source, SD.c.type_code, SD.c.problems)
            .select_from(SD.join(R, and_(R.c.res_type == "DocumentReference", R.c.res_id == SD.c.doc_id)))
            .where(SD.c.format == "cda", R.c.deleted == false()))
    if org is not None:
        stmt = stmt.where(R.c.source.like(arrivals.ORG_PREFIX + org + "%"))
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for source, code, problems in conn.execute(stmt):
        row = out[arrivals.institution_of({"meta": {"source": source}})][code or ""]
        row[0] += 1
        if problems and orjson.loads(problems):
            row[1] += 1
    return out


def _card_scans(conn, first: str, last: str, org: str | None) -> dict[str, list[int]]:
    stmt = (select(CS.c.institution, CS.c.result, func.count())
            .where(CS.c.day >= first, CS.c.day <= last).group_by(CS.c.institution, CS.c.result))
    if org is not None:
        stmt = stmt.where(CS.c.institution == org)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for inst, result, n in conn.execute(stmt):
        out[inst][1] += int(n)
        if result == "accepted":
            out[inst][0] += int(n)
    return out


def _card_last(conn, org: str | None) -> dict[str, int]:
    stmt = select(CS.c.institution, func.max(CS.c.ts_us)).group_by(CS.c.institution)
    if org is not None:
        stmt = stmt.where(CS.c.institution == org)
    return {i: int(t) for i, t in conn.execute(stmt)}


def _examples(conn, org: str, limit: int = EXAMPLES) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rule in rules.RULES:
        rows = conn.execute(select(QI.c.res_type, QI.c.res_id, QI.c.day, QI.c.detail)
                            .where(QI.c.org == org, QI.c.rule == rule.id)
                            .order_by(QI.c.ts_us.desc(), QI.c.res_id).limit(limit)).all()
        if rows:
            out[rule.id] = [dict(r._mapping) for r in rows]
    return out


def _duplicates(conn, org: str | None) -> dict[str, tuple[int, int]]:
    """Per institution: its current Patients that the patient index has linked, and how many of them
    are duplicate records (more than one of the institution's Patients for one person)."""
    from hutong.mpi.tables import mpi_record as M

    stmt = (select(QP.c.org, func.count(), func.count(func.distinct(M.c.person_id)))
            .select_from(QP.join(M, M.c.patient_id == QP.c.patient_id)).group_by(QP.c.org))
    if org is not None:
        stmt = stmt.where(QP.c.org == org)
    return {o: (int(n), int(n) - int(persons)) for o, n, persons in conn.execute(stmt)}


# ------------------------------------------------------------------------------------------ indicators
def _rate(pairs: list[tuple[int, int]]) -> float | None:
    applicable = sum(a for a, _f in pairs)
    if applicable <= 0:
        return None
    return 1.0 - sum(f for _a, f in pairs) / applicable


def indicators_of(rep: InstitutionReport) -> dict[str, float | None]:
    """The indicator values the level rules read (see ``levels.LEVELS``)."""
    ind: dict[str, float | None] = {"volume": float(sum(rep.per_day.get(d, 0) for d in rep.days)),
                                    "gap_days": float(len(rep.gap_days))}
    for t, n in rep.by_type.items():
        ind[f"sends:{t}"] = float(n)
    for rule in rules.RULES:
        a, f = rep.rules.get(rule.id, (0, 0))
        ind[f"rate:{rule.id}"] = (1.0 - f / a) if a else None
    for group in ("conformance", "completeness"):
        ind[group] = _rate([rep.rules[r.id] for r in rules.RULES if r.group == group and r.id in rep.rules])
    n = rep.latency.get("n", 0)
    ind["within_1h"] = rep.latency["le_1h"] / n if n else None
    ind["within_1d"] = (rep.latency["le_1h"] + rep.latency["le_1d"]) / n if n else None
    ind["unresolved_refs"] = float(rep.unresolved)
    docs = sum(d for d, _p in rep.documents.values())
    ind["doc_header_valid"] = (1.0 - sum(p for _d, p in rep.documents.values()) / docs) if docs else None
    ind["card_scans"] = float(rep.card_scans[0])
    used = {i for i, c in rep.by_interface.items() if c} | ({"card"} if rep.card_scans[0] else set())
    ind["interfaces"] = float(len(used))
    linked, dups = rep.patients
    ind["duplicate_patients"] = float(dups)
    ind["duplicate_rate"] = dups / linked if linked else None
    return ind


def scores_of(rep: InstitutionReport) -> dict[str, float | None]:
    """Indicator-group scores (0–100; None when there is nothing to score)."""
    ind = rep.indicators
    expected = [c for c in rep.checks if c.expected]
    connectivity = (100.0 * sum(1 for c in expected if not c.gap) / len(expected)) if expected else (
        100.0 if ind.get("volume") else 0.0)

    def pct(v):
        return None if v is None else round(100.0 * v, 1)

    return {"connectivity": round(connectivity, 1), "conformance": pct(ind.get("conformance")),
            "completeness": pct(ind.get("completeness")), "timeliness": pct(ind.get("within_1d")),
            "documents": pct(ind.get("doc_header_valid"))}


def _finish(rep: InstitutionReport) -> InstitutionReport:
    rep.checks = baseline.check_days(rep.per_day, rep.days)
    rep.indicators = indicators_of(rep)
    rep.scores = scores_of(rep)
    rep.estimate = levels.estimate(rep.indicators)
    return rep


def _window(day: str | None, days: int) -> tuple[str, list[str], str, str]:
    last = day or default_day()
    window = baseline.days_back(last, days)
    first_needed = baseline.days_back(window[0], 7 * baseline.WEEKS + 1)[0]
    return last, window, first_needed, local_day(now_us())


def _empty(inst: Institution, last: str, window: list[str], today: str) -> InstitutionReport:
    return InstitutionReport(inst, last, window, today, {}, defaultdict(int), defaultdict(int), {},
                             dict.fromkeys(("n", "sum_ms", *arrivals.LATENCY_BUCKETS), 0), [], {})


def _add_arrival(rep: InstitutionReport, row) -> None:
    n = row.creates + row.updates + row.deletes
    rep.per_day[row.day] = rep.per_day.get(row.day, 0) + n
    if row.day in rep._window_set:  # type: ignore[attr-defined]
        rep.by_type[row.res_type] += n
        rep.by_interface[row.interface] += n
        rep.latency["n"] += row.lat_n
        rep.latency["sum_ms"] += row.lat_sum_ms
        for b in arrivals.LATENCY_BUCKETS:
            rep.latency[b] += row._mapping[b]


def institution_report(store, org: str, *, day: str | None = None, days: int = WINDOW_DAYS) -> InstitutionReport | None:
    """One institution's report (None if it is neither registered nor ever sent anything)."""
    last, window, first_needed, today = _window(day, days)
    with store.read() as tx:
        conn = tx.conn
        inst = institutions(conn).get(org)
        lasts = _last_by_interface(conn, org).get(org, {})
        card_last = _card_last(conn, org).get(org)
        if inst is None and not lasts and card_last is None:
            return None
        rep = _empty(inst or Institution(org, org), last, window, today)
        rep._window_set = set(window)  # type: ignore[attr-defined]
        for row in _arrival_rows(conn, first_needed, today, org):
            _add_arrival(rep, row)
        rep.last_by_interface = dict(lasts)
        if card_last is not None:
            rep.last_by_interface["card"] = card_last
        counts = _rule_counts(conn, window[0], last, org).get(org, {})
        rep.rules = {r: (a, f) for r, (a, f) in counts.items()}
        rep.examples = _examples(conn, org)
        rep.unresolved = _unresolved(conn, org).get(org, 0)
        rep.unresolved_examples = _unresolved(conn, org, limit=EXAMPLES) if rep.unresolved else []
        rep.documents = {k: (d, p) for k, (d, p) in _documents(conn, org).get(org, {}).items()}
        a, n = _card_scans(conn, window[0], last, org).get(org, (0, 0))
        rep.card_scans = (a, n)
        rep.patients = _duplicates(conn, org).get(org, (0, 0))
    return _finish(rep)


def province_overview(store, *, day: str | None = None, days: int = WINDOW_DAYS,
                      platform: str | None = None, city: str | None = None) -> list[InstitutionReport]:
    """Every institution's report (examples left out), best estimated level first."""
    last, window, first_needed, today = _window(day, days)
    with store.read() as tx:
        conn = tx.conn
        insts = institutions(conn)
        lasts = _last_by_interface(conn, None)
        card_last = _card_last(conn, None)
        reps: dict[str, InstitutionReport] = {}

        def rep_for(org: str) -> InstitutionReport:
            r = reps.get(org)
            if r is None:
                r = reps[org] = _empty(insts.get(org) or Institution(org, org), last, window, today)
                r._window_set = set(window)  # type: ignore[attr-defined]
            return r

        for org in insts:
            rep_for(org)
        for row in _arrival_rows(conn, first_needed, today, None):
            if row.org:
                _add_arrival(rep_for(row.org), row)
        for org, per in lasts.items():
            if org:
                rep_for(org).last_by_interface = dict(per)
        for org, ts in card_last.items():
            rep_for(org).last_by_interface["card"] = ts
        for org, counts in _rule_counts(conn, window[0], last, None).items():
            if org:
                rep_for(org).rules = {r: (a, f) for r, (a, f) in counts.items()}
        for org, n in _unresolved(conn, None).items():
            if org:
                rep_for(org).unresolved = n
        for org, docs in _documents(conn, None).items():
            if org:
                rep_for(org).documents = {k: (d, p) for k, (d, p) in docs.items()}
        for org, (a, n) in _card_scans(conn, window[0], last, None).items():
            if org in reps or org in insts:
                rep_for(org).card_scans = (a, n)
        for org, pair in _duplicates(conn, None).items():
            if org in reps or org in insts:
                rep_for(org).patients = pair
    out = [_finish(r) for r in reps.values()
           if (not platform or r.institution.platform == platform) and (not city or r.institution.city == city)]
    out.sort(key=lambda r: (-r.estimate.rank, -_mean_score(r), r.institution.org_id))
    return out


def _mean_score(rep: InstitutionReport) -> float:
    vals = [v for v in rep.scores.values() if v is not None]
    return sum(vals) / len(vals) if vals else 0.0


def mean_score(rep: InstitutionReport) -> float | None:
    """The mean of the group scores that have data (None when none has)."""
    vals = [v for v in rep.scores.values() if v is not None]
    return round(sum(vals) / len(vals), 1) if vals else None
