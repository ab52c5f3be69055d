"""Direct reporting (卫生统计直报): data entry per institution and period, validation rules,
completeness and timeliness, reminders, and approval county → city → province.

Every function takes the store's transaction (``tx``) so that values, the report's status, its
violations and the approval log change together. A report (data set × institution × period)
is ``draft`` while entered, ``submitted`` when the institution sends it (on time when on or before
the deadline: the period's end plus the data set's ``deadline_days``), and ``returned`` when an
approver unlocks it for correction. Approval levels: 1 county, 2 city, 3 province, each after the
one below; an approver unapproves their own level, or unlocks the report back to the institution.
Values of a submitted or approved report cannot change.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import orjson
from sqlalchemy import Integer, and_, delete, func, select, update

from hutong.core.clock import SHANGHAI, instant, now_us
from hutong.core.errors import FhirError, Issue, bad_request, not_found
from hutong.stats import orgunits
from hutong.stats.datasets import BUILTIN, TOTAL, DataSet
from hutong.stats.periods import Period, parse_period
from hutong.stats.tables import (
    stats_approval_log,
    stats_assignment,
    stats_dataset,
    stats_reminder,
    stats_report,
    stats_value,
    stats_violation,
)

LEVELS = {1: "county", 2: "city", 3: "province"}
LEVEL_NAMES = {0: "未审核", 1: "县级已审核", 2: "市级已审核", 3: "省级已审核"}
STATUS_NAMES = {"draft": "填报中", "submitted": "已上报", "returned": "已退回"}
MAX_VALUE = 1e12


@dataclass(frozen=True)
class CellError:
    """One value that cannot be saved, with where it was (element, COC, and a cell when from Excel)."""

    element: str
    coc: str
    message: str
    cell: str | None = None

    def as_json(self) -> dict:
        out = {"dataElement": self.element, "categoryOptionCombo": self.coc, "message": self.message}
        if self.cell:
            out["cell"] = self.cell
        return out


class EntryRejected(FhirError):
    """Values that cannot be saved: 422 with one issue per cell (nothing is saved)."""

    def __init__(self, errors: list[CellError]):
        issues = [Issue("error", "invalid",
                        f"{e.cell + ': ' if e.cell else ''}{e.element}{'.' + e.coc if e.coc else ''}: {e.message}",
                        [e.cell or f"{e.element}.{e.coc or 'total'}"]) for e in errors[:500]]
        super().__init__(422, "invalid", issues[0].diagnostics, issues=issues)
        self.errors = errors


# -- data sets and assignments ------------------------------------------------------------------

def get_dataset(conn, code: str) -> DataSet:
    """The data set ``code`` (ready-made or stored); 404 when unknown."""
    if code in BUILTIN:
        return BUILTIN[code]
    row = conn.execute(select(stats_dataset.c.definition).where(stats_dataset.c.code == code)).first()
    if row is None:
        raise not_found(f"no data set {code[:64]!r}")
    return DataSet.from_json(orjson.loads(row[0]))


def list_datasets(conn) -> list[DataSet]:
    """Ready-made and stored data sets."""
    out = list(BUILTIN.values())
    for (text,) in conn.execute(select(stats_dataset.c.definition).order_by(stats_dataset.c.code)):
        out.append(DataSet.from_json(orjson.loads(text)))
    return out


def save_dataset(conn, doc: dict) -> DataSet:
    """Check and store a data set definition (a ready-made code cannot be replaced)."""
    try:
        ds = DataSet.from_json(doc)
    except (ValueError, TypeError) as exc:
        raise bad_request(f"data set definition: {exc}") from None
    if ds.code in BUILTIN:
        raise FhirError(409, "conflict", f"data set {ds.code} is ready-made and cannot be replaced")
    text = orjson.dumps(ds.to_json()).decode()
    where = stats_dataset.c.code == ds.code
    if conn.execute(select(stats_dataset.c.code).where(where)).first():
        conn.execute(update(stats_dataset).where(where).values(definition=text, updated_us=now_us()))
    else:
        conn.execute(stats_dataset.insert().values(code=ds.code, definition=text, updated_us=now_us()))
    return ds


def assign(tx, ds: DataSet, org_ids: list[str]) -> list[orgunits.Place]:
    """Assign data set ``ds`` to institutions (their place in the hierarchy is read now)."""
    places = []
    for org in org_ids:
        place = orgunits.place_of(tx, org)
        if place is None:
            raise not_found(f"no Organization {org[:64]!r}")
        places.append(place)
    for p in places:
        where = and_(stats_assignment.c.dataset == ds.code, stats_assignment.c.org == p.org)
        tx.conn.execute(delete(stats_assignment).where(where))
        tx.conn.execute(stats_assignment.insert().values(
            dataset=ds.code, org=p.org, name=p.name[:200], province=p.province, city=p.city, county=p.county,
            assigned_us=now_us()))
    return places


def assignment(conn, ds: DataSet, org: str):
    """The assignment row of ``org`` for ``ds`` (403 when the institution does not report it)."""
    row = conn.execute(select(stats_assignment).where(
        stats_assignment.c.dataset == ds.code, stats_assignment.c.org == org)).first()
    if row is None:
        raise FhirError(403, "forbidden", f"institution {org[:64]} is not assigned data set {ds.code}")
    return row


def _unit_filter(unit: str | None):
    level = orgunits.unit_level(unit)
    c = stats_assignment.c
    if level == "province":
        return c.province == unit if unit else None
    if level == "city":
        return c.city == unit
    if level == "county":
        return c.county == unit
    return c.org == unit


# -- values -----------------------------------------------------------------------------------

def values(conn, ds: DataSet, org: str, period: str) -> dict[tuple[str, str], float]:
    """The values entered, by (element, COC)."""
    v = stats_value.c
    rows = conn.execute(select(v.element, v.coc, v.value).where(
        v.dataset == ds.code, v.org == org, v.period == period))
    return {(e, c): val for e, c, val in rows}


def report_row(conn, ds: DataSet, org: str, period: str):
    r = stats_report.c
    return conn.execute(select(stats_report).where(r.dataset == ds.code, r.org == org, r.period == period)).first()


def check_values(ds: DataSet, entries: list[dict]) -> tuple[list[tuple[str, str, float | None]], list[CellError]]:
    """Entries ``{dataElement, categoryOptionCombo?, value, cell?}`` checked against the data set:
    (the values, the errors). A value of None or "" clears the cell."""
    out, errors = [], []
    for e in entries:
        code, coc, cell = str(e.get("dataElement") or ""), str(e.get("categoryOptionCombo") or TOTAL), e.get("cell")
        element = ds.element(code)
        if element is None:
            errors.append(CellError(code, coc, f"数据元 {code} 不在报表 {ds.code} 中 (unknown data element)", cell))
            continue
        if coc not in {c for c, _ in ds.cells(element)}:
            errors.append(CellError(code, coc, f"分类组合 {coc or '合计'} 不属于 {element.name} (unknown category option combo)",
                                    cell))
            continue
        raw = e.get("value")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            out.append((code, coc, None))
            continue
        try:
            number = float(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != number:
            errors.append(CellError(code, coc, f"“{str(raw)[:20]}”不是数字 (not a number)", cell))
            continue
        if number < 0:
            errors.append(CellError(code, coc, "不能为负数 (must not be negative)", cell))
            continue
        if number > MAX_VALUE:
            errors.append(CellError(code, coc, "数值过大 (too large)", cell))
            continue
        if element.value_type == "integer" and number != int(number):
            errors.append(CellError(code, coc, f"{element.name}应为整数 (must be a whole number)", cell))
            continue
        out.append((code, coc, number))
    return out, errors


def save_values(tx, ds: DataSet, org: str, period_id: str, entries: list[dict], by: str) -> dict:
    """Save values of one report (all or nothing), then run its validation rules: the report's state."""
    period = parse_period(period_id, ds.period_type)
    assignment(tx.conn, ds, org)
    checked, errors = check_values(ds, entries)
    if errors:
        raise EntryRejected(errors)
    row = report_row(tx.conn, ds, org, period.id)
    if row is not None and (row.status == "submitted" or row.approved_level > 0):
        raise FhirError(409, "conflict", f"report {ds.code}/{org}/{period.id} is {STATUS_NAMES.get(row.status)}"
                        f"（{LEVEL_NAMES[row.approved_level]}）and locked; ask the approver to unlock it")
    ts = now_us()
    v = stats_value.c
    for element, coc, number in checked:
        where = and_(v.dataset == ds.code, v.org == org, v.period == period.id, v.element == element, v.coc == coc)
        tx.conn.execute(delete(stats_value).where(where))
        if number is not None:
            tx.conn.execute(stats_value.insert().values(dataset=ds.code, org=org, period=period.id, element=element,
                                                        coc=coc, value=number, updated_us=ts, updated_by=by[:128]))
    if row is None:
        tx.conn.execute(stats_report.insert().values(dataset=ds.code, org=org, period=period.id, status="draft",
                                                     approved_level=0, updated_us=ts, updated_by=by[:128]))
    else:
        r = stats_report.c
        tx.conn.execute(update(stats_report).where(r.dataset == ds.code, r.org == org, r.period == period.id)
                        .values(updated_us=ts, updated_by=by[:128]))
    run_validation(tx.conn, ds, org, period)
    return report_state(tx.conn, ds, org, period.id)


# -- validation -------------------------------------------------------------------------------

def evaluate_rules(ds: DataSet, vals: dict[tuple[str, str], float], period: Period) -> list[dict]:
    """The rules the values break (rules whose operands are all missing are skipped)."""
    totals: dict[str, float] = defaultdict(float)
    for (element, _coc), value in vals.items():
        totals[element] += value

    def lookup(element: str, coc: str | None):
        if coc is None:
            return totals.get(element) if any(k[0] == element for k in vals) else None
        return vals.get((element, coc))

    out = []
    for rule in ds.rules:
        if rule.left.all_missing(lookup) and rule.right.all_missing(lookup):
            continue
        left, right = rule.left.value(lookup, period.days), rule.right.value(lookup, period.days)
        if left is None or right is None:
            continue
        if not rule.holds(left, right):
            out.append({"rule": rule.code, "name": rule.name, "importance": rule.importance,
                        "left": left, "operator": rule.operator, "right": right})
    return out


def run_validation(conn, ds: DataSet, org: str, period: Period) -> list[dict]:
    """Check one report's rules and store what it breaks (for follow-up); the violations."""
    found = evaluate_rules(ds, values(conn, ds, org, period.id), period)
    c = stats_violation.c
    conn.execute(delete(stats_violation).where(c.dataset == ds.code, c.org == org, c.period == period.id))
    ts = now_us()
    for f in found:
        conn.execute(stats_violation.insert().values(dataset=ds.code, org=org, period=period.id, rule=f["rule"],
                                                     importance=f["importance"], left_value=f["left"],
                                                     right_value=f["right"], found_us=ts))
    return found


def run_batch_validation(conn, ds: DataSet, period_id: str, unit: str | None = None) -> dict:
    """Validate every report of a period (under ``unit``): reports checked and violations found."""
    period = parse_period(period_id, ds.period_type)
    r, a = stats_report.c, stats_assignment.c
    stmt = select(r.org).select_from(stats_report.join(
        stats_assignment, and_(a.dataset == r.dataset, a.org == r.org))).where(
        r.dataset == ds.code, r.period == period.id)
    f = _unit_filter(unit)
    if f is not None:
        stmt = stmt.where(f)
    orgs = [row[0] for row in conn.execute(stmt)]
    n = sum(len(run_validation(conn, ds, org, period)) for org in orgs)
    return {"reports": len(orgs), "violations": n}


def violations(conn, ds: DataSet, period_id: str, unit: str | None = None) -> list[dict]:
    """Stored violations of a period (under ``unit``), most important first."""
    v, a = stats_violation.c, stats_assignment.c
    stmt = select(v.org, a.name, v.rule, v.importance, v.left_value, v.right_value).select_from(
        stats_violation.join(stats_assignment, and_(a.dataset == v.dataset, a.org == v.org))).where(
        v.dataset == ds.code, v.period == period_id)
    f = _unit_filter(unit)
    if f is not None:
        stmt = stmt.where(f)
    rules = {r.code: r for r in ds.rules}
    order = {"high": 0, "medium": 1, "low": 2}
    out = []
    for org, name, rule, importance, left, right in conn.execute(stmt):
        rr = rules.get(rule)
        out.append({"org": org, "orgName": name, "rule": rule, "name": rr.name if rr else rule,
                    "importance": importance, "left": left, "operator": rr.operator if rr else "?", "right": right})
    return sorted(out, key=lambda x: (order.get(x["importance"], 3), x["org"], x["rule"]))


# -- submission and approval ---------------------------------------------------------------------

def deadline(ds: DataSet, period: Period) -> date:
    """The last day a report of ``period`` is on time."""
    return period.end + timedelta(days=ds.deadline_days)


def _today(ts_us: int) -> date:
    return datetime.fromtimestamp(ts_us / 1e6, SHANGHAI).date()


def _log(conn, ds, org, period, action, level, by, ts):
    conn.execute(stats_approval_log.insert().values(dataset=ds.code, org=org, period=period, action=action,
                                                    level=level, by=by[:128], ts_us=ts))


def submit(conn, ds: DataSet, org: str, period_id: str, by: str, ts_us: int | None = None) -> dict:
    """The institution sends its report (on time or late); it is then locked."""
    period = parse_period(period_id, ds.period_type)
    assignment(conn, ds, org)
    row = report_row(conn, ds, org, period.id)
    if row is None:
        raise FhirError(409, "conflict", "nothing has been entered for this report")
    if row.status == "submitted":
        raise FhirError(409, "conflict", "the report has already been submitted")
    ts = ts_us or now_us()
    on_time = _today(ts) <= deadline(ds, period)
    r = stats_report.c
    conn.execute(update(stats_report).where(r.dataset == ds.code, r.org == org, r.period == period.id).values(
        status="submitted", submitted_us=ts, on_time=on_time, updated_us=ts, updated_by=by[:128]))
    _log(conn, ds, org, period.id, "submit", 0, by, ts)
    return report_state(conn, ds, org, period.id)


def approve(conn, ds: DataSet, org: str, period_id: str, level: int, by: str) -> dict:
    """Approval at ``level`` (1 county, 2 city, 3 province), after the level below."""
    period = parse_period(period_id, ds.period_type)
    if level not in LEVELS:
        raise bad_request("level must be 1 (county), 2 (city) or 3 (province)", "level")
    row = report_row(conn, ds, org, period.id)
    if row is None or row.status != "submitted":
        raise FhirError(409, "conflict", "only a submitted report can be approved")
    if row.approved_level != level - 1:
        raise FhirError(409, "conflict", f"the report is {LEVEL_NAMES[row.approved_level]}; "
                        f"level {level} approves after level {level - 1}")
    ts = now_us()
    r = stats_report.c
    conn.execute(update(stats_report).where(r.dataset == ds.code, r.org == org, r.period == period.id).values(
        approved_level=level, updated_us=ts, updated_by=by[:128]))
    _log(conn, ds, org, period.id, "approve", level, by, ts)
    return report_state(conn, ds, org, period.id)


def unapprove(conn, ds: DataSet, org: str, period_id: str, level: int, by: str) -> dict:
    """The approver at ``level`` withdraws their approval (only the highest one can be withdrawn)."""
    row = report_row(conn, ds, org, period_id)
    if row is None or row.approved_level != level:
        raise FhirError(409, "conflict", f"level {level} has not approved this report, or a higher level has")
    ts = now_us()
    r = stats_report.c
    conn.execute(update(stats_report).where(r.dataset == ds.code, r.org == org, r.period == period_id).values(
        approved_level=level - 1, updated_us=ts, updated_by=by[:128]))
    _log(conn, ds, org, period_id, "unapprove", level, by, ts)
    return report_state(conn, ds, org, period_id)


def unlock(conn, ds: DataSet, org: str, period_id: str, level: int, by: str) -> dict:
    """An approver at ``level`` (at least the highest approval so far) returns the report to the
    institution for correction: approvals are cleared and values can change again."""
    row = report_row(conn, ds, org, period_id)
    if row is None or row.status != "submitted":
        raise FhirError(409, "conflict", "only a submitted report can be unlocked")
    if level not in LEVELS or level < row.approved_level:
        raise FhirError(409, "conflict", f"the report is {LEVEL_NAMES[row.approved_level]}; "
                        "only that level or a higher one can unlock it")
    ts = now_us()
    r = stats_report.c
    conn.execute(update(stats_report).where(r.dataset == ds.code, r.org == org, r.period == period_id).values(
        status="returned", approved_level=0, updated_us=ts, updated_by=by[:128]))
    _log(conn, ds, org, period_id, "unlock", level, by, ts)
    return report_state(conn, ds, org, period_id)


def report_state(conn, ds: DataSet, org: str, period_id: str) -> dict:
    """A report's status, approval, values and violations."""
    row = report_row(conn, ds, org, period_id)
    period = parse_period(period_id, ds.period_type)
    vals = values(conn, ds, org, period_id)
    v = stats_violation.c
    found = [{"rule": rule, "importance": imp, "left": lv, "right": rv,
              "name": next((r.name for r in ds.rules if r.code == rule), rule)}
             for rule, imp, lv, rv in conn.execute(select(v.rule, v.importance, v.left_value, v.right_value).where(
                 v.dataset == ds.code, v.org == org, v.period == period_id).order_by(v.rule))]
    log = stats_approval_log.c
    history = [{"action": a, "level": lv, "by": b, "ts_us": t} for a, lv, b, t in conn.execute(
        select(log.action, log.level, log.by, log.ts_us).where(
            log.dataset == ds.code, log.org == org, log.period == period_id).order_by(log.id))]
    return {
        "dataSet": ds.code, "orgUnit": org, "period": period_id, "periodLabel": period.label(),
        "deadline": deadline(ds, period).isoformat(),
        "status": row.status if row else "empty", "statusName": STATUS_NAMES.get(row.status, "未填报") if row else "未填报",
        "approvedLevel": row.approved_level if row else 0,
        "approvalName": LEVEL_NAMES[row.approved_level if row else 0],
        "onTime": row.on_time if row else None,
        "locked": bool(row and (row.status == "submitted" or row.approved_level > 0)),
        "dataValues": [{"dataElement": e, "categoryOptionCombo": c, "value": val} for (e, c), val in sorted(vals.items())],
        "violations": found, "history": history,
    }


# -- completeness, timeliness, reminders ---------------------------------------------------------

def completeness(conn, ds: DataSet, period_id: str, unit: str | None = None) -> dict:
    """Expected vs received reports and on-time rates, for ``unit`` and each unit one level below."""
    period = parse_period(period_id, ds.period_type)
    a, r = stats_assignment.c, stats_report.c
    level = orgunits.unit_level(unit)
    child = {"province": a.city, "city": a.county, "county": a.org, "institution": a.org}[level]
    submitted = r.status == "submitted"
    stmt = select(child, func.count(a.org),
                  func.sum(func.coalesce((r.status == "submitted").cast(Integer), 0)),
                  func.sum(func.coalesce((and_(submitted, r.on_time.is_(True))).cast(Integer), 0)),
                  func.sum(func.coalesce((r.approved_level >= 1).cast(Integer), 0))).select_from(
        stats_assignment.outerjoin(stats_report, and_(r.dataset == a.dataset, r.org == a.org,
                                                       r.period == period.id))).where(a.dataset == ds.code)
    f = _unit_filter(unit)
    if f is not None:
        stmt = stmt.where(f)
    rows = []
    totals = [0, 0, 0, 0]
    names = {}
    if level in ("county", "institution"):
        names = dict(conn.execute(select(a.org, a.name).where(a.dataset == ds.code)).all())
    for key, expected, received, on_time, approved in conn.execute(stmt.group_by(child).order_by(child)):
        received, on_time, approved = int(received or 0), int(on_time or 0), int(approved or 0)
        rows.append(_rate_row(key, names.get(key) or orgunits.unit_name(key or "") or "（未定位）",
                              expected, received, on_time, approved))
        for i, n in enumerate((expected, received, on_time, approved)):
            totals[i] += n
    return {"dataSet": ds.code, "period": period.id, "periodLabel": period.label(),
            "deadline": deadline(ds, period).isoformat(), "unit": unit or "",
            "unitName": orgunits.unit_name(unit) if unit else "全省",
            "total": _rate_row(unit or "", "合计", *totals), "children": rows}


def _rate_row(unit, name, expected, received, on_time, approved) -> dict:
    return {"unit": unit, "name": name, "expected": expected, "received": received, "onTime": on_time,
            "approved": approved,
            "completeness": round(received / expected, 4) if expected else None,
            "timeliness": round(on_time / expected, 4) if expected else None}


def due_reminders(conn, ds: DataSet, period_id: str, today: date) -> list[dict]:
    """Institutions still to report ``period`` when the reminder window before its deadline is open
    (and not yet reminded)."""
    period = parse_period(period_id, ds.period_type)
    last = deadline(ds, period)
    if not (last - timedelta(days=ds.reminder_days) <= today <= last):
        return []
    a, r, m = stats_assignment.c, stats_report.c, stats_reminder.c
    stmt = select(a.org, a.name).select_from(
        stats_assignment.outerjoin(stats_report, and_(r.dataset == a.dataset, r.org == a.org, r.period == period.id))
        .outerjoin(stats_reminder, and_(m.dataset == a.dataset, m.org == a.org, m.period == period.id))).where(
        a.dataset == ds.code, (r.status.is_(None)) | (r.status != "submitted"), m.org.is_(None)).order_by(a.org)
    return [{"org": org, "name": name, "deadline": last.isoformat()} for org, name in conn.execute(stmt)]


def send_reminders(tx, ds: DataSet, period_id: str, today: date) -> list[dict]:
    """Remind each institution still to report: a FHIR ``Communication`` to the institution (which its
    systems and the console show), recorded so that nobody is reminded twice."""
    period = parse_period(period_id, ds.period_type)
    out = []
    for due in due_reminders(tx.conn, ds, period_id, today):
        text = (f"【统计直报提醒】{due['name']}：{ds.name}（{period.label()}）尚未上报，截止日期 {due['deadline']}。"
                f" / Reminder: {ds.name_en} for {period.id} is due by {due['deadline']}.")
        comm = tx.create({
            "resourceType": "Communication", "status": "completed",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category",
                                      "code": "reminder"}]}],
            "recipient": [{"reference": f"Organization/{due['org']}"}],
            "sent": instant(now_us()),
            "payload": [{"contentString": text}],
        }).stored.res_id
        tx.conn.execute(stats_reminder.insert().values(dataset=ds.code, org=due["org"], period=period.id,
                                                       sent_us=now_us(), communication=comm))
        out.append({**due, "communication": comm})
    return out


# -- aggregates -----------------------------------------------------------------------------------

def aggregate(conn, ds: DataSet, period_id: str, unit: str | None = None, *, approved_only: bool = False) -> dict:
    """Sums of every element (and COC) over the institutions under ``unit``."""
    v, a, r = stats_value.c, stats_assignment.c, stats_report.c
    stmt = select(v.element, v.coc, func.sum(v.value)).select_from(
        stats_value.join(stats_assignment, and_(a.dataset == v.dataset, a.org == v.org))
        .join(stats_report, and_(r.dataset == v.dataset, r.org == v.org, r.period == v.period))).where(
        v.dataset == ds.code, v.period == period_id)
    if approved_only:
        stmt = stmt.where(r.approved_level >= 1)
    f = _unit_filter(unit)
    if f is not None:
        stmt = stmt.where(f)
    return {(e, c): s for e, c, s in conn.execute(stmt.group_by(v.element, v.coc))}
