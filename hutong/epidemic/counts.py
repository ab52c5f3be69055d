"""Live counts for the dashboard, kept from the change log (``hutong.stats.counters``), and the public
view's small-cell suppression.

- ``epidemic.cases`` (disease, state, county, day): each live card adds 1 to state ``reported`` on its
  diagnosis day (local date); a reviewed clinical or confirmed card adds 1 to ``confirmed``. Rejected
  cards and duplicates add nothing. The stats consumer applies new-minus-old per version, so reviews,
  corrections and deletions move the counts exactly.
- ``epidemic.fever_visits`` (county, day): Encounters at a fever clinic (a Location in the clinic index,
  or ``serviceType`` fever-clinic), counted by the clinic's county and the visit's local start day."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from sqlalchemy import select

from hutong.capability import Consumer
from hutong.china import divisions as dv
from hutong.core.clock import SHANGHAI
from hutong.epidemic import vocab
from hutong.epidemic.cards import card_field
from hutong.stats import counters

CASES_CONSUMER = "epidemic-cases"
VISITS_CONSUMER = "epidemic-fever-visits"


def _local_day(value: str | None) -> str:
    if not value:
        return ""
    if len(value) <= 10:
        return value[:10]
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(SHANGHAI).date().isoformat()
    except ValueError:
        return value[:10]


def _is_card(res: dict) -> bool:
    return any(t.get("code") == vocab.CARD_TAG["code"] and t.get("system") == vocab.CARD_TAG["system"]
               for t in (res.get("meta") or {}).get("tag") or ())


def _card_contribution(res: dict) -> Iterable[tuple[tuple[str, ...], float]]:
    if not _is_card(res):
        return
    status = card_field(res, "reviewStatus")
    if status not in ("pending", "reviewed"):
        return
    disease = next((c.get("code") for c in (res.get("code") or {}).get("coding") or ()
                    if c.get("system") == vocab.DISEASE), "")
    county = (card_field(res, "addressDivision") or "")[:6]
    day = _local_day(card_field(res, "diagnosisTime"))
    yield (disease, "reported", county, day), 1.0
    if status == "reviewed" and card_field(res, "classification") in vocab.COUNTED:
        yield (disease, "confirmed", county, day), 1.0


CASES = counters.Counter("epidemic.cases", frozenset({"Condition"}), ("disease", "state", "county", "day"),
                         _card_contribution)


def _no_contribution(res: dict):
    return ()


#: Kept by ``visits_consumer`` (it needs the clinic index to place a visit), read like any counter.
FEVER_VISITS = counters.Counter("epidemic.fever_visits", frozenset({"Encounter"}), ("county", "day"),
                                _no_contribution)


def _visit_key(conn, enc: dict | None) -> tuple[str, str] | None:
    from hutong.registry.tables import registry_clinic as RC

    if not enc or enc.get("status") in ("cancelled", "entered-in-error"):
        return None
    day = _local_day((enc.get("period") or {}).get("start"))
    if not day:
        return None
    loc_ids = [(loc.get("location") or {}).get("reference", "").removeprefix("Location/")
               for loc in enc.get("location") or ()]
    loc_ids = [i for i in loc_ids if i and "/" not in i]
    if loc_ids:
        row = conn.execute(select(RC.c.division, RC.c.city).where(RC.c.location_id.in_(loc_ids)).limit(1)).first()
        if row is not None:
            return ((row.division or row.city)[:6], day)
    fever = any(c.get("code") == "fever-clinic" for cc in ([enc.get("serviceType")] if enc.get("serviceType") else [])
                for c in cc.get("coding") or ())
    if fever:
        org = (enc.get("serviceProvider") or {}).get("reference", "").removeprefix("Organization/")
        row = conn.execute(select(RC.c.division, RC.c.city).where(RC.c.org_id == org).limit(1)).first()
        return (((row.division or row.city) if row else "")[:6], day)
    return None


def _visits(tx, events) -> None:
    deltas: dict[tuple[str, ...], float] = defaultdict(float)
    for ev in events:
        new = None if ev.op == "delete" else counters._version_content(tx.conn, ev.res_type, ev.res_id, ev.version_id)
        old = counters._version_content(tx.conn, ev.res_type, ev.res_id, ev.version_id - 1)
        k_new, k_old = _visit_key(tx.conn, new), _visit_key(tx.conn, old)
        if k_new:
            deltas[k_new] += 1
        if k_old:
            deltas[k_old] -= 1
    counters.apply_deltas(tx.conn, FEVER_VISITS.name, deltas)


CONSUMERS = [counters.consumer(CASES_CONSUMER, [CASES]),
             Consumer(VISITS_CONSUMER, _visits, frozenset({"Encounter"}))]


# ---- the dashboard ----------------------------------------------------------------------------------
def dashboard(conn, *, today: date | None = None, days: int = 7, disease: str | None = None) -> dict:
    """Counts by city, county and day: new confirmed today, cumulative confirmed, reported, the last
    ``days`` days' trend of confirmed cases and fever-clinic visits."""
    today = today or datetime.now(SHANGHAI).date()
    span = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
    where = {"disease": disease} if disease else None
    cases = counters.read(conn, CASES, where=where, by=("state", "county", "day"))
    visits = counters.read(conn, FEVER_VISITS, by=("county", "day"))
    by_city: dict[str, dict] = defaultdict(lambda: {"new": 0, "confirmed": 0, "reported": 0, "visits_today": 0})
    by_county: dict[str, dict] = defaultdict(lambda: {"new": 0, "confirmed": 0, "reported": 0, "visits_today": 0})
    for city in dv.jilin_cities():  # every city appears, with zeros (the map and the tables need all nine)
        by_city[city]
    trend = {d: 0 for d in span}
    visit_trend = {d: 0 for d in span}
    for (state, county, day), n in cases.items():
        n = int(round(n))
        for bucket in (by_city[county[:4]], by_county[county]):
            if state == "confirmed":
                bucket["confirmed"] += n
                if day == today.isoformat():
                    bucket["new"] += n
            else:
                bucket["reported"] += n
        if state == "confirmed" and day in trend:
            trend[day] += n
    for (county, day), n in visits.items():
        n = int(round(n))
        if day == today.isoformat():
            by_city[county[:4]]["visits_today"] += n
            by_county[county]["visits_today"] += n
        if day in visit_trend:
            visit_trend[day] += n
    total = {k: sum(c[k] for c in by_city.values()) for k in ("new", "confirmed", "reported", "visits_today")}
    return {"today": today.isoformat(), "total": total, "cities": dict(by_city), "counties": dict(by_county),
            "trend": trend, "visit_trend": visit_trend}


def suppress(cells: dict[str, int], threshold: int) -> dict[str, int | None]:
    """Small-cell suppression for a group of cells published with their total: a count from 1 to
    ``threshold - 1`` is hidden (None); when exactly one cell is hidden, the next smallest non-zero cell
    is hidden too, so the total minus the others cannot reveal it. Zero is shown (it identifies no one)."""
    out: dict[str, int | None] = dict(cells)
    hidden = [k for k, v in cells.items() if 0 < v < threshold]
    for k in hidden:
        out[k] = None
    if len(hidden) == 1:
        rest = sorted((v, k) for k, v in cells.items() if v > 0 and k not in hidden)
        if rest:
            out[rest[0][1]] = None
    return out


def public_view(dash: dict, threshold: int) -> dict:
    """The open dashboard: aggregates by city only, each measure suppressed with ``suppress``; a total
    below the threshold is hidden too."""
    cities = sorted(dash["cities"])
    view: dict = {"today": dash["today"], "threshold": threshold, "cities": {c: {} for c in cities}, "total": {}}
    for measure in ("new", "confirmed", "visits_today"):
        cells = {c: dash["cities"][c][measure] for c in cities}
        shown = suppress(cells, threshold)
        for c in cities:
            view["cities"][c][measure] = shown[c]
        t = dash["total"][measure]
        view["total"][measure] = None if 0 < t < threshold else t
    view["trend"] = {d: (None if 0 < n < threshold else n) for d, n in dash["trend"].items()}
    return view


def recompute_matches(store) -> bool:
    """True when the live case counts equal a full recomputation over the current cards (a check)."""
    live = {k: v for k, v in counters.stored(store, CASES).items() if abs(v) > 1e-9}
    return live == counters.recompute(store, CASES)
