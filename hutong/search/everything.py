"""``Patient/$everything``: one patient's compartment (or every patient's), paged by a keyset cursor.

With a linked-identity resolver installed (``hutong/search/linked.py``, by ``hutong/share``),
``Patient/{id}/$everything`` covers the compartments of every Patient record linked to the same person;
each entry then names the record it came from (entry extension ``SOURCE_RECORD_URL``) and the resource
keeps its source institution in ``meta.source`` (taken from that record when the resource has none).
``linked=false`` keeps the single-record answer."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import false, select, tuple_

from hutong.core.clock import instant_now
from hutong.core.errors import FhirError
from hutong.search import linked as linked_ids
from hutong.search.compartment import compartment_filter, compartment_pairs, resource_types
from hutong.search.fence import on_row
from hutong.search.index import decode_cursor, encode_cursor
from hutong.search.query import bad, parse_date
from hutong.search.tables import sp_reference
from hutong.store.schema import resource as R

#: Bundle.entry extension naming the Patient record an entry belongs to (linked-identity mode).
SOURCE_RECORD_URL = "http://hutong.org/fhir/StructureDefinition/source-record"


def _linked_mode(value: str | None) -> bool:
    if value is None or value == "":
        return linked_ids.resolver() is not None
    if value not in ("true", "false"):
        raise bad("linked must be true or false", "linked")
    return value == "true" and linked_ids.resolver() is not None


def _since(value: str | None, name: str = "_since") -> int | None:
    if not value:
        return None
    return parse_date(value, name)[0]


def everything(tx, patient_id: str | None, query: dict[str, str], base_url: str, settings, fence=None) -> dict:
    """Patient/$everything as a searchset Bundle paged by a keyset cursor over (type, id) (``fence``: the
    caller's visibility rules, ``hutong/search/fence.py``)."""
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
    sources: dict = {}
    record_source: dict[str, str] = {}
    if patient_id is not None:
        ids = linked_ids.linked_ids(tx.conn, patient_id) if _linked_mode(query.get("linked")) else [patient_id]
        rows, more, sources = _everything_one(tx.conn, ids, types, since, last, count, fence)
        if len(ids) > 1:
            record_source = _record_sources(tx.conn, ids)
    else:
        conds = [R.c.deleted == false(), compartment_filter("Patient", None, types)]
        visible = on_row(fence, None)
        if visible is not None:
            conds.append(visible)
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
        bundle["entry"] = [_entry(base_url, t, i, c, sources, record_source) for t, i, c in rows]
    return bundle


def _entry(base_url: str, t: str, i: str, content: str, sources: dict, record_source: dict) -> dict:
    resource = orjson.loads(content)
    entry: dict = {"fullUrl": f"{base_url}/{t}/{i}", "resource": resource, "search": {"mode": "match"}}
    if record_source:  # linked mode with more than one record: say where each entry came from
        record = sources.get((t, i))
        if record:
            entry["extension"] = [{"url": SOURCE_RECORD_URL, "valueReference": {"reference": f"Patient/{record}"}}]
            meta = resource.setdefault("meta", {})
            if not meta.get("source") and record_source.get(record):
                meta["source"] = record_source[record]
    return entry


def _record_sources(conn, patient_ids: list[str]) -> dict[str, str]:
    """Each Patient record's institution as a ``meta.source`` URI (its own ``meta.source``, else its
    managing organization)."""
    out: dict[str, str] = {}
    stmt = select(R.c.res_id, R.c.content).where(R.c.res_type == "Patient", R.c.res_id.in_(patient_ids),
                                                 R.c.deleted == false())
    for pid, content in conn.execute(stmt):
        pat = orjson.loads(content)
        src = (pat.get("meta") or {}).get("source")
        if not src:
            ref = (pat.get("managingOrganization") or {}).get("reference") or ""
            src = f"urn:hutong:org:{ref.split('/', 1)[1]}" if ref.startswith("Organization/") else ""
        if src:
            out[pid] = src
    return out


def _everything_one(conn, patient_ids: list[str], types, since, last, count: int, fence=None):
    """The compartments of ``patient_ids`` from the reverse reference index (one range scan each), paged by
    (type, id); also returns, per resource, the record (of ``patient_ids``) it belongs to."""
    pairs = set(compartment_pairs("Patient"))
    t = sp_reference
    stmt = select(t.c.res_type, t.c.res_id, t.c.param, t.c.target_id).where(
        t.c.target_type == "Patient", t.c.target_id.in_(patient_ids))
    sources: dict[tuple[str, str], str] = {}
    for rt, rid, p, target in conn.execute(stmt):
        if (rt, p) in pairs:
            sources.setdefault((rt, rid), target)
    for pid in patient_ids:
        sources[("Patient", pid)] = pid
    keys = set(sources)
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
            visible = on_row(fence, rt)
            if visible is not None:
                conds.append(visible)
            if since is not None:
                conds.append(R.c.ts_us >= since)
            for a, b, c in conn.execute(select(R.c.res_type, R.c.res_id, R.c.content).where(*conds)):
                found[(a, b)] = (a, b, c)
        rows.extend(found[k] for k in chunk if k in found)
        if len(rows) > count:
            break
    return rows[:count], len(rows) > count, sources
