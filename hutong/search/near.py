"""Location search by distance (IHE mCSD "Location Distance" option, R4 ``near``).

A Location search with one ``near=lat|long|distance|units`` value and no ``_sort`` is answered here:
the other filters run as usual with a slightly widened bounding box on the ``near`` index rows
(``sp_composite``: latitude in ``c2_lo``, longitude in ``c3_lo``), then every candidate's great-circle
distance (haversine, mean Earth radius) is computed, those beyond the distance dropped, and the rest
sorted nearest first (ties by id). Each entry carries its distance in the ``location-distance``
extension of ``Bundle.entry.search`` (``valueDistance`` in the units asked for). Paging links carry
the last (distance, id) as a keyset cursor. With ``_sort`` the generic plan runs instead (``near``
then only filters)."""

from __future__ import annotations

import math
import uuid
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import and_, select

from hutong.core.clock import instant_now
from hutong.core.errors import operation_outcome
from hutong.search.query import NEAR_UNITS, Part, Planner, parse_near, pcond, split_values
from hutong.search.tables import sp_composite
from hutong.store.schema import resource as R

EXT_LOCATION_DISTANCE = "http://hl7.org/fhir/StructureDefinition/location-distance"
EARTH_RADIUS_KM = 6371.0088
UCUM = "http://unitsofmeasure.org"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def applies(res_type: str | None, filters: list[tuple[str, str]], opts: dict) -> str | None:
    """The ``near`` value when this search is a distance search (else None)."""
    if res_type != "Location" or opts["sort"]:
        return None
    values = [v for n, v in filters if n == "near"]
    if len(values) != 1 or len(split_values(values[0])) != 1:
        return None
    return values[0]


def distance_search(index, tx, res_type: str, params, filters, opts, raw_near: str, *, base_url: str,
                    strict: bool, issues: list, compartment=None, extra=None, fence=None) -> dict:
    """The searchset Bundle of a distance search (see the module docstring)."""
    from hutong.search.index import decode_cursor, encode_cursor, summarize

    conn = tx.conn
    lat, lon, km, _value, units = parse_near(raw_near, "near")
    per_km = 1.0 / NEAR_UNITS[units]
    p = index.reg.get("Location", "near")
    planner = Planner(index.reg, base_url, index.max_chain_depth)
    t = sp_composite.alias()
    box = select(t.c.res_id).where(t.c.res_type == "Location", pcond(t, p), planner.near_cond(raw_near, "near", t, 1.02))
    others = [(n, v) for n, v in filters if n != "near"]
    plan = index._conditions(res_type, None, others, strict, base_url, issues, extra, fence)
    conds = list(plan.conds) + [Part(box, rank=2).in_form(R.c.res_id)]
    t2 = sp_composite.alias()
    stmt = (select(R.c.res_id, t2.c.c2_lo, t2.c.c3_lo)
            .select_from(R.join(t2, and_(t2.c.res_type == R.c.res_type, t2.c.res_id == R.c.res_id, pcond(t2, p))))
            .where(*conds))
    best: dict[str, float] = {}
    for rid, plat, plon in conn.execute(stmt):
        if plat is None or plon is None:
            continue
        d = haversine_km(lat, lon, plat, plon)
        if d <= km * (1 + 1e-12) and (rid not in best or d < best[rid]):
            best[rid] = d
    ranked = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
    total = len(ranked)
    count = opts["count"]
    start = 0
    if opts["cursor"]:
        (cd, cid), _backward = decode_cursor(opts["cursor"], 2)
        start = next((i for i, (rid, d) in enumerate(ranked) if (d, rid) > (float(cd), str(cid))), len(ranked))
    path = (f"/{compartment[0]}/{compartment[1]}/{res_type}" if compartment else f"/{res_type}")
    link_params = [(k, v) for k, v in params if k != "_cursor"]

    def link(cursor: str | None) -> str:
        q = link_params + ([("_cursor", cursor)] if cursor else [])
        return f"{base_url}{path}?" + urlencode(q, quote_via=quote, safe=":|,/$*")

    links = [{"relation": "self", "url": link(opts["cursor"])}]
    entries: list[dict] = []
    if opts["summary"] != "count" and count > 0:
        page = ranked[start:start + count]
        contents = {}
        if page:
            rows = conn.execute(select(R.c.res_id, R.c.content).where(
                R.c.res_type == "Location", R.c.res_id.in_([rid for rid, _d in page])))
            contents = {rid: text for rid, text in rows}
        matches = []
        for rid, d in page:
            if rid not in contents:
                continue
            res = orjson.loads(contents[rid])
            matches.append(res)
            entries.append({
                "fullUrl": f"{base_url}/Location/{rid}",
                "resource": summarize(res, opts["summary"], opts["elements"], index.reg),
                "search": {"extension": [{"url": EXT_LOCATION_DISTANCE, "valueDistance": {
                    "value": round(d * per_km, 6), "unit": units, "system": UCUM, "code": units}}],
                    "mode": "match"},
            })
        if start + count < total and page:
            last_id, last_d = page[-1]
            links.append({"relation": "next", "url": link(encode_cursor([last_d, last_id], False))})
        if opts["include"] or opts["revinclude"]:
            entries.extend(index._includes(conn, matches, opts, base_url, issues, fence))
    bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant_now()},
                    "type": "searchset", "total": total, "link": links}
    if issues:
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": operation_outcome(issues),
                        "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle
