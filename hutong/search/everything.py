"""``Patient/$everything``: one patient's compartment (or every patient's), paged by a keyset cursor."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import false, select, tuple_

from hutong.core.clock import instant_now
from hutong.core.errors import FhirError
from hutong.search.compartment import compartment_filter, compartment_pairs, resource_types
from hutong.search.index import decode_cursor, encode_cursor
from hutong.search.query import bad, parse_date
from hutong.search.tables import sp_reference
from hutong.store.schema import resource as R


def _since(value: str | None, name: str = "_since") -> int | None:
    if not value:
        return None
    return parse_date(value, name)[0]


def everything(tx, patient_id: str | None, query: dict[str, str], base_url: str, settings) -> dict:
    """Patient/$everything as a searchset Bundle paged by a keyset cursor over (type, id)."""
    if patient_id is not None and tx.read("Patient", patient_id) is None:
        raise FhirError(404, "not-found", f"Patient/{patient_id} is not known")
    try:
        count = min(int(query.get("_count") or getattr(settings, "default_count", 50)), getattr(settings, "max_count", 1000))
    except ValueError:
        raise bad("_count must be an integer", "_count") from None
    since = _since(query.get("_since"))
    types = resource_types(query.get("_type"))
    cursor = query.get("_cursor")
    last = None
    if cursor:
        (last_type, last_id), _b = decode_cursor(cursor, 2)
        last = (last_type, last_id)
    if patient_id is not None:
        rows, more = _everything_one(tx.conn, patient_id, types, since, last, count)
    else:
        conds = [R.c.deleted == false(), compartment_filter("Patient", None, types)]
        if since is not None:
            conds.append(R.c.ts_us >= since)
        if last:
            conds.append(tuple_(R.c.res_type, R.c.res_id) > tuple_(*last))
        stmt = (select(R.c.res_type, R.c.res_id, R.c.content).where(*conds)
                .order_by(R.c.res_type, R.c.res_id).limit(count + 1))
        rows = tx.conn.execute(stmt).all()
        more = len(rows) > count
        rows = rows[:count]
    path = f"/Patient/{patient_id}/$everything" if patient_id else "/Patient/$everything"
    keep = [(k, v) for k, v in query.items() if k != "_cursor"]

    def link(c: str | None) -> str:
        q = keep + ([("_cursor", c)] if c else [])
        return base_url + path + ("?" + urlencode(q, quote_via=quote, safe=":|,/$") if q else "")

    bundle: dict = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant_now()},
        "type": "searchset",
    }
    if not cursor and not more:
        bundle["total"] = len(rows)
    links = [{"relation": "self", "url": link(cursor)}]
    if more and rows:
        links.append({"relation": "next", "url": link(encode_cursor([rows[-1][0], rows[-1][1]], False))})
    bundle["link"] = links
    if rows:
        bundle["entry"] = [
            {"fullUrl": f"{base_url}/{t}/{i}", "resource": orjson.loads(c), "search": {"mode": "match"}}
            for t, i, c in rows
        ]
    return bundle


def _everything_one(conn, patient_id: str, types, since, last, count: int):
    """One patient's compartment from the reverse reference index (one range scan), paged by (type, id)."""
    pairs = set(compartment_pairs("Patient"))
    t = sp_reference
    stmt = select(t.c.res_type, t.c.res_id, t.c.param).where(t.c.target_type == "Patient", t.c.target_id == patient_id)
    keys = {(rt, rid) for rt, rid, p in conn.execute(stmt) if (rt, p) in pairs}
    keys.add(("Patient", patient_id))
    ordered = sorted(k for k in keys if (types is None or k[0] in types) and (last is None or k > last))
    rows: list = []
    step = max(1, min(count + 1, 500))
    for i in range(0, len(ordered), step):
        chunk = ordered[i : i + step]
        by_type: dict[str, list[str]] = {}
        for rt, rid in chunk:
            by_type.setdefault(rt, []).append(rid)
        found = {}
        for rt, ids in by_type.items():
            conds = [R.c.res_type == rt, R.c.res_id.in_(ids), R.c.deleted == false()]
            if since is not None:
                conds.append(R.c.ts_us >= since)
            for a, b, c in conn.execute(select(R.c.res_type, R.c.res_id, R.c.content).where(*conds)):
                found[(a, b)] = (a, b, c)
        rows.extend(found[k] for k in chunk if k in found)
        if len(rows) > count:
            break
    return rows[:count], len(rows) > count
