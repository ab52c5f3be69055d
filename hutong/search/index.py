"""``SearchIndex``: the store's search engine (write-time extraction, search, bundles, paging).

The store calls ``index_rows`` on every write (rows inserted in the same transaction), ``clear`` before
re-indexing or on delete, ``search_ids`` for conditional interactions and ``search`` for FHIR searches.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import and_, case, delete, false, func, literal, or_, select, tuple_

from hutong.core.clock import instant_now
from hutong.core.errors import FhirError, Issue, operation_outcome
from hutong.search import linked, near
from hutong.search.extract import extract
from hutong.search.fence import on_row
from hutong.search.params import RESULT_PARAMS, Registry, registry
from hutong.search.query import Part, Planner, UnknownParam, bad, pcond, split_values
from hutong.search.tables import ALL_TABLES, sp_reference
from hutong.store.schema import resource as R

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
MAX_INCLUDES = 5000
ITERATE_ROUNDS = 5


def encode_cursor(values: list, backward: bool) -> str:
    raw = orjson.dumps({"v": values, "b": 1 if backward else 0})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, nkeys: int) -> tuple[list, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
        values, backward = doc["v"], bool(doc.get("b"))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise bad("invalid _cursor (paging links are opaque; follow them as given)", "_cursor") from None
    if not isinstance(values, list) or len(values) != nkeys:
        raise bad("_cursor does not belong to this search", "_cursor")
    return values, backward


def summarize(res: dict, mode: str | None, elements: list[str] | None, reg: Registry) -> dict:
    """Apply ``_summary``/``_elements`` to one resource (returns a new dict, tagged SUBSETTED)."""
    if not mode and not elements:
        return res
    rtype = res.get("resourceType", "")
    if mode == "data":
        out = {k: v for k, v in res.items() if k != "text"}
    elif mode == "false" or mode is None and not elements:
        return res
    else:
        if mode == "true":
            wanted = reg.summary.get(rtype, [])
        elif mode == "text":
            wanted = ["text", *reg.mandatory.get(rtype, [])]
        else:
            wanted = list(elements or [])
        keep = {"resourceType", "id", "meta"}
        prefixes = []
        for w in wanted:
            if w.endswith("[x]"):
                prefixes.append(w[:-3])
            else:
                keep.add(w)
        out = {
            k: v for k, v in res.items()
            if k in keep or any(k.startswith(p) and k[len(p): len(p) + 1].isupper() for p in prefixes)
        }
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), SUBSETTED]
    out["meta"] = meta
    return out


class SearchIndex:
    """Search parameters extracted at write time into ``sp_*`` tables, and FHIR search over them."""

    def __init__(self, reg: Registry | None = None, *, max_chain_depth: int = 4):
        self.reg = reg or registry()
        self.max_chain_depth = max_chain_depth

    # ------------------------------------------------------------------ write side
    def summarize(self, resource: dict, summary: str | None, elements: list[str] | None) -> dict:
        """``_summary``/``_elements`` applied to one resource (read by id uses this too)."""
        return summarize(resource, summary, elements, self.reg)

    def index_rows(self, res_type: str, res_id: str, resource: dict) -> list:
        """``(table, row)`` pairs to insert for the current version of ``resource``."""
        rows = extract(self.reg, res_type, resource)
        for _t, row in rows:
            row["res_type"] = res_type
            row["res_id"] = res_id
        return rows

    def clear(self, conn, res_type: str, res_id: str) -> None:
        """Delete every index row of one resource (before re-indexing it, or on delete)."""
        for t in ALL_TABLES:
            conn.execute(delete(t).where(t.c.res_type == res_type, t.c.res_id == res_id))

    # ------------------------------------------------------------------ parameters
    def supported_params(self) -> dict[str, list[dict]]:
        """Per resource type: name, type, definition URL and documentation of every supported parameter."""
        out = {}
        for rtype, params in self.reg.by_type.items():
            out[rtype] = [
                {"name": p.code, "type": p.type, "definition": p.url, "documentation": p.doc}
                for p in sorted(params.values(), key=lambda p: p.code)
            ]
        return out

    def unsupported_params(self) -> list[dict]:
        """Parameters of the official definitions that are not supported, with the reason."""
        return [{"name": u["code"], "base": u["base"], "reason": u["reason"]} for u in self.reg.unsupported]

    # ------------------------------------------------------------------ planning
    def _split(self, params: list[tuple[str, str]]):
        control: list[tuple[str, str]] = []
        filters: list[tuple[str, str]] = []
        for name, value in params:
            base = name.split(":", 1)[0]
            if base in RESULT_PARAMS or base in ("_include", "_revinclude"):
                control.append((name, value))
            else:
                filters.append((name, value))
        return control, filters

    @staticmethod
    def _plan(res_type: str, parts: list[Part]) -> Plan:
        """Plan a type search. The most selective filter (if selective enough) becomes the *driver*: an id-only
        sub-select on one index; the other filters are correlated ``EXISTS`` probes on the driver's id, so only
        matching ids reach the resource table. Without a selective filter every filter is an ``EXISTS`` on the
        resource row and the scan follows the sort order, stopping at the page size."""
        outer = [R.c.res_type == res_type, R.c.deleted == false()]
        exprs = [p for p in parts if p.expr is not None]
        subs = [p for p in parts if p.expr is None]
        cands = [p for p in subs if not p.negate and p.rank <= 3]
        if not cands:
            return Plan(outer + [p.in_form(R.c.res_id) for p in exprs] + [p.exists_form(fence=True) for p in subs],
                        driven=bool(exprs), probes=subs, exprs=[p.in_form(R.c.res_id) for p in exprs])
        driver = min(cands, key=lambda p: p.rank)
        dcol = list(driver.sub.selected_columns)[0]
        inner = driver.sub.where(*[p.exists_form(dcol) for p in subs if p is not driver])
        return Plan(outer + [p.in_form(R.c.res_id) for p in exprs] + [R.c.res_id.in_(inner)], driven=True,
                    inner=inner, dcol=dcol, pushdown=not exprs)

    def _conditions(self, res_type: str | None, types: list[str] | None, filters, strict: bool, base_url: str,
                    issues: list[Issue], extra=None, fence=None):
        planner = Planner(self.reg, base_url, self.max_chain_depth, fence=fence)
        if res_type is not None:
            parts = []
            for name, raw in filters:
                try:
                    parts.append(planner.part(res_type, R.c.res_id, name, raw))
                except UnknownParam as exc:
                    self._unknown(exc, strict, issues)
            if extra is not None:
                parts.append(extra)
            visible = on_row(fence, res_type)
            if visible is not None:  # the caller's fence, on the resource row itself (hutong/search/fence.py)
                parts.append(Part(None, expr=visible, rank=9))
            return self._plan(res_type, parts)
        conds = [R.c.deleted == false()]
        visible = on_row(fence, None)
        if visible is not None:
            conds.append(visible)
        if types:
            per_type = {t: [] for t in types}
            for name, raw in filters:
                built = {}
                try:
                    for t in types:
                        built[t] = planner.filter(t, R.c.res_id, name, raw)
                except UnknownParam as exc:
                    self._unknown(exc, strict, issues)
                    continue
                for t in types:
                    per_type[t].append(built[t])
            conds.append(or_(*[and_(R.c.res_type == t, *c) for t, c in per_type.items()]))
            return Plan(conds, driven=True)
        pair = tuple_(R.c.res_type, R.c.res_id)
        for name, raw in filters:
            try:
                if "." in name or name.startswith("_has"):
                    raise UnknownParam(name, f"{name}: chained and _has parameters need a resource type (_type)")
                conds.append(planner.filter(None, pair, name, raw))
            except UnknownParam as exc:
                if exc.why.startswith("unknown search parameter"):
                    exc = UnknownParam(name, f"search parameter {name!r} is not common to all types; add _type")
                self._unknown(exc, strict, issues)
        return Plan(conds, driven=True)

    @staticmethod
    def _unknown(exc: UnknownParam, strict: bool, issues: list[Issue]) -> None:
        if strict:
            raise FhirError(400, "not-supported", exc.why, exc.name)
        issues.append(Issue("warning", "not-supported", f"{exc.why}; the parameter was ignored", [exc.name]))

    def _compartment_part(self, res_type: str, compartment: tuple[str, str]) -> Part:
        ctype, cid = compartment
        comp = self.reg.compartments.get(ctype)
        if comp is None:
            raise FhirError(404, "not-found", f"{ctype} is not a compartment type")
        if res_type == ctype:
            return Part(None, expr=R.c.res_id == cid, rank=0)
        params = comp.get(res_type)
        if not params:
            return Part(None, expr=false(), rank=0)
        t = sp_reference
        codes = sorted({c for name in params for c in self.reg.store_codes(res_type, name)})
        sub = select(t.c.res_id).where(
            t.c.res_type == res_type, t.c.param.in_(codes), t.c.target_type == ctype, t.c.target_id == cid
        )
        return Part(sub, rank=1)

    # ------------------------------------------------------------------ search_ids
    def search_ids(self, conn, res_type: str, params: list[tuple[str, str]], limit: int | None = None) -> list[str]:
        """Ids of current resources of ``res_type`` matching ``params`` (unknown parameters: 400)."""
        _control, filters = self._split(linked.expand_params(conn, params))
        plan = self._conditions(res_type, None, filters, True, "", [])
        if plan.pushdown:
            stmt = plan.inner.with_only_columns(plan.dcol).distinct().order_by(plan.dcol)
        else:
            stmt = select(R.c.res_id).where(*plan.conds).order_by(R.c.res_id)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [row[0] for row in conn.execute(stmt)]

    # ------------------------------------------------------------------ search
    def search(self, tx, res_type: str | None, params: list[tuple[str, str]], *, base_url: str, strict: bool,
               compartment: tuple[str, str] | None = None, fence=None) -> dict:
        """A searchset Bundle for a type, system or compartment search (``fence``: the caller's visibility
        rules, applied inside the SQL of matches, includes, chains and ``_has``; ``hutong/search/fence.py``)."""
        conn = tx.conn
        settings = getattr(getattr(tx, "store", None), "settings", None)
        default_count = getattr(settings, "default_count", 50)
        max_count = getattr(settings, "max_count", 1000)
        base_url = base_url.rstrip("/")
        issues: list[Issue] = []
        # ``patient:linked=`` becomes the person's records (hutong/search/linked.py); links keep the original.
        control, filters = self._split(linked.expand_params(conn, params))
        opts = self._options(control, res_type, strict, issues, default_count, max_count)

        types = opts["types"]
        if res_type is None and types:
            for t in types:
                if not self.reg.is_type(t):
                    raise bad(f"_type: unknown resource type {t!r}", "_type")
        extra = None
        if compartment is not None:
            if res_type is None:
                raise bad("a compartment search needs a resource type")
            extra = self._compartment_part(res_type, compartment)
        raw_near = near.applies(res_type, filters, opts)
        if raw_near is not None:  # IHE mCSD Location Distance: sorted by distance, distance on each entry
            return near.distance_search(self, tx, res_type, params, filters, opts, raw_near, base_url=base_url,
                                        strict=strict, issues=issues, compartment=compartment, extra=extra,
                                        fence=fence)
        plan = self._conditions(res_type, types, filters, strict, base_url, issues, extra, fence)
        conds, driven = plan.conds, plan.driven

        planner = Planner(self.reg, base_url, self.max_chain_depth)
        keys = []  # (expression, descending, nullable)
        for code, desc in opts["sort"]:
            try:
                expr, default = planner.sort_expr(res_type, code, desc)
            except UnknownParam as exc:
                self._unknown(exc, strict, issues)
                continue
            if code in ("_id", "_lastUpdated"):
                keys.append((expr, desc))
            else:
                keys.append((case((expr.is_(None), 1), else_=0), False))
                keys.append((func.coalesce(expr, default), desc))
        if res_type is None:
            keys.append((R.c.res_type, False))
        if not any(k[0] is R.c.res_id for k in keys):
            # tie-break in the direction of the first key, so an index walked backwards serves both
            keys.append((R.c.res_id, bool(opts["sort"]) and opts["sort"][0][1]))

        count = opts["count"]
        total = None
        entries: list[dict] = []
        links: list[dict] = []
        path = f"/{compartment[0]}/{compartment[1]}/{res_type}" if compartment else (f"/{res_type}" if res_type else "")
        link_params = [(k, v) for k, v in params if k != "_cursor"]

        def link(cursor: str | None) -> str:
            q = link_params + ([("_cursor", cursor)] if cursor else [])
            return f"{base_url}{path}" + ("?" + urlencode(q, quote_via=quote, safe=":|,/$*") if q else "")

        if opts["summary"] == "count" or count == 0:
            total = self._count(conn, plan)
            links.append({"relation": "self", "url": link(None)})
        else:
            cursor_vals, backward = (None, False)
            window_total = None
            if opts["cursor"]:
                cursor_vals, backward = decode_cursor(opts["cursor"], len(keys))
            first = opts["sort"][0] if opts["sort"] else None
            if (res_type is not None and not driven and not backward and first
                    and first[0] not in ("_id", "_lastUpdated") and len(keys) >= 2):
                rows = self._sorted_scan(conn, planner, res_type, plan, keys, first, cursor_vals, count + 1)
            elif plan.pushdown and all(code != "_lastUpdated" for code, _d in opts["sort"]):
                rows = self._pushdown_page(conn, planner, res_type, plan, opts["sort"], cursor_vals, backward,
                                           count + 1)
                if rows:
                    window_total = rows[0][-1]
            else:
                rows = self._page(conn, conds, keys, cursor_vals, backward, count + 1)
            more = len(rows) > count
            rows = rows[:count]
            if backward:
                rows.reverse()
            page_keys = [[row[3 + i] for i in range(len(keys))] for row in rows]
            matches = []
            for row in rows:
                res = orjson.loads(row[2])
                matches.append(res)
                entries.append({
                    "fullUrl": f"{base_url}/{row[0]}/{row[1]}",
                    "resource": summarize(res, opts["summary"], opts["elements"], self.reg),
                    "search": {"mode": "match"},
                })
            links.append({"relation": "self", "url": link(opts["cursor"])})
            has_next = more if not backward else bool(opts["cursor"])
            has_prev = (more if backward else bool(opts["cursor"])) and bool(rows)
            if rows and has_next:
                links.append({"relation": "next", "url": link(encode_cursor(_jsonable(page_keys[-1]), False))})
            if rows and has_prev:
                links.append({"relation": "previous", "url": link(encode_cursor(_jsonable(page_keys[0]), True))})
            if opts["include"] or opts["revinclude"]:
                entries.extend(self._includes(conn, matches, opts, base_url, issues, fence))
            if opts["total"] == "accurate" or opts["total"] is None:
                if not opts["cursor"] and not more:
                    total = len(rows)
                elif window_total is not None:
                    total = window_total
                else:
                    total = self._count(conn, plan)
        bundle: dict = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": instant_now()},
            "type": "searchset",
        }
        if total is not None:
            bundle["total"] = total
        bundle["link"] = links
        if issues:
            entries.append({
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": operation_outcome(issues),
                "search": {"mode": "outcome"},
            })
        if entries:
            bundle["entry"] = entries
        return bundle

    def _pushdown_page(self, conn, planner, res_type, plan: Plan, sort, cursor_vals, backward: bool, limit: int):
        """Order, keyset and LIMIT on the driver's ids (index only); the resource table is read for the page."""
        dcol = plan.dcol
        row = _RowCols(res_type, dcol)
        keys = []
        for code, desc in sort:
            expr, default = planner.sort_expr(res_type, code, desc, r=row)
            if code == "_id":
                keys.append((dcol, desc))
            else:
                keys.append((case((expr.is_(None), 1), else_=0), False))
                keys.append((func.coalesce(expr, default), desc))
        if not any(k[0] is dcol for k in keys):
            keys.append((dcol, bool(sort) and sort[0][1]))
        # distinct candidate ids with their sort keys, and the total over all of them in the same pass
        ids = plan.inner.with_only_columns(dcol.label("id"), *[k[0].label(f"k{i}") for i, k in enumerate(keys)])
        ids = ids.distinct().subquery("d")
        counted = select(ids, func.count().over().label("total")).subquery("w")
        wkeys = [(counted.c[f"k{i}"], d) for i, (_e, d) in enumerate(keys)]
        inner = select(counted)
        if cursor_vals is not None:
            inner = inner.where(self._keyset(wkeys, cursor_vals, backward))
        inner = inner.order_by(*[(e.desc() if d != backward else e.asc()) for e, d in wkeys]).limit(limit)
        page = inner.subquery()
        pk = [page.c[f"k{i}"] for i in range(len(keys))]
        stmt = (
            select(R.c.res_type, R.c.res_id, R.c.content, *pk, page.c.total)
            .select_from(page.join(R, and_(R.c.res_type == res_type, R.c.res_id == page.c.id)))
            .where(R.c.deleted == false())
            .order_by(*[(c.desc() if d != backward else c.asc()) for c, (_e, d) in zip(pk, keys, strict=True)])
        )
        return list(conn.execute(stmt).all())

    def _page(self, conn, conds, keys, cursor_vals, backward: bool, limit: int, extra_where=()):
        where = list(conds) + list(extra_where)
        if cursor_vals is not None:
            where.append(self._keyset(keys, cursor_vals, backward))
        order = []
        for expr, desc in keys:
            rev = desc != backward
            order.append(expr.desc() if rev else expr.asc())
        cols = [R.c.res_type, R.c.res_id, R.c.content] + [k[0].label(f"k{i}") for i, k in enumerate(keys)]
        stmt = select(*cols).where(*where).order_by(*order).limit(limit)
        return list(conn.execute(stmt).all())

    def _sorted_scan(self, conn, planner, res_type, plan: Plan, keys, first, cursor_vals, limit: int):
        """Sort-driven plan for searches without a selective filter: walk the sort parameter's index in order
        (rows holding each resource's min/max value), check the filters per row, stop at the page size; then
        resources without a sort value (sorted last) by the generic plan. Same keys as the generic plan, so
        cursors work across both."""
        code, desc = first
        p, t, colname = planner.sort_column(res_type, code, desc)
        col = t.c[colname]
        t2 = t.alias()
        agg = (func.max(t2.c[colname]) if desc else func.min(t2.c[colname]))
        best = select(agg).where(t2.c.res_type == t.c.res_type, t2.c.res_id == t.c.res_id, pcond(t2, p)).scalar_subquery()
        rows: list = []
        if cursor_vals is None or cursor_vals[0] == 0:
            pkeys = [(col, desc)] + [((t.c.res_id if k is R.c.res_id else k), d) for k, d in keys[2:]]
            # probes on the sort row's id, so PostgreSQL checks them before it reads the resource row
            probes = [q.exists_form(t.c.res_id, fence=True) for q in plan.probes or []]
            where = [t.c.res_type == res_type, pcond(t, p), col == best, R.c.deleted == false(), *probes,
                     *(plan.exprs or [])]
            if cursor_vals is not None:
                where.append(self._keyset(pkeys, cursor_vals[1:], False))
            cols = [R.c.res_type, R.c.res_id, R.c.content, literal(0).label("k0")] + [
                k[0].label(f"k{i + 1}") for i, k in enumerate(pkeys)
            ]
            order = [e.desc() if d else e.asc() for e, d in pkeys]
            stmt = (select(*cols).select_from(t.join(R, and_(R.c.res_type == t.c.res_type, R.c.res_id == t.c.res_id)))
                    .where(*where).order_by(*order).limit(limit))
            seen = set()
            for row in conn.execute(stmt):
                if row[1] not in seen:  # two rows of one resource with the same extreme value
                    seen.add(row[1])
                    rows.append(row)
            if len(rows) >= limit:
                return rows
            cursor_vals = None
        missing = ~select(t2.c.res_id).where(t2.c.res_type == R.c.res_type, t2.c.res_id == R.c.res_id, pcond(t2, p)).exists()
        rows += self._page(conn, plan.conds, keys, cursor_vals, False, limit - len(rows), extra_where=[missing])
        return rows

    @staticmethod
    def _count(conn, plan: Plan) -> int:
        if plan.pushdown:
            ids = plan.inner.with_only_columns(plan.dcol).distinct().subquery()
            return conn.execute(select(func.count()).select_from(ids)).scalar_one()
        return conn.execute(select(func.count()).select_from(R).where(*plan.conds)).scalar_one()

    @staticmethod
    def _keyset(keys, vals, backward: bool):
        if len(keys) > 1 and len({d for _e, d in keys}) == 1:
            # one direction: a row-value comparison, which both backends use as an index range bound
            lhs, rhs = tuple_(*[e for e, _d in keys]), tuple_(*[literal(v) for v in vals])
            return lhs < rhs if (keys[0][1] != backward) else lhs > rhs
        ors = []
        for i, (expr, desc) in enumerate(keys):
            after = (expr < vals[i]) if (desc != backward) else (expr > vals[i])
            ors.append(and_(*[keys[j][0] == vals[j] for j in range(i)], after))
        return or_(*ors)

    def _options(self, control, res_type, strict, issues, default_count, max_count) -> dict:
        opts: dict = {
            "count": default_count, "sort": [], "include": [], "revinclude": [], "summary": None,
            "elements": None, "total": None, "cursor": None, "types": None,
        }
        for name, value in control:
            base, _, modifier = name.partition(":")
            if base == "_count":
                try:
                    n = int(value)
                except ValueError:
                    raise bad(f"_count must be a non-negative integer, not {value[:40]!r}", "_count") from None
                if n < 0:
                    raise bad("_count must not be negative", "_count")
                opts["count"] = min(n, max_count)
            elif base == "_sort":
                for item in value.split(","):
                    item = item.strip()
                    if item:
                        opts["sort"].append((item.lstrip("-"), item.startswith("-")))
            elif base in ("_include", "_revinclude"):
                if modifier not in ("", "iterate", "recurse"):
                    raise bad(f"unsupported modifier on {name}", name)
                opts[base[1:]].append((value, modifier in ("iterate", "recurse")))
            elif base == "_summary":
                if value not in ("true", "false", "text", "data", "count"):
                    raise bad(f"_summary must be true, false, text, data or count, not {value[:40]!r}", "_summary")
                opts["summary"] = value
            elif base == "_elements":
                opts["elements"] = [e.strip().split(".")[-1] for e in value.split(",") if e.strip()]
            elif base == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise bad(f"_total must be none, estimate or accurate, not {value[:40]!r}", "_total")
                opts["total"] = "accurate" if value == "estimate" else value
            elif base == "_cursor":
                opts["cursor"] = value
            elif base == "_type":
                if res_type is None:
                    opts["types"] = [t.strip() for t in value.split(",") if t.strip()]
                else:
                    self._unknown(UnknownParam("_type", "_type applies to system-level search only"), strict, issues)
            elif base == "_contained":
                if value != "false":
                    self._unknown(UnknownParam(name, "searching contained resources is not supported"), strict, issues)
            elif base in ("_containedType",):
                self._unknown(UnknownParam(name, "searching contained resources is not supported"), strict, issues)
            elif base == "_since":
                self._unknown(UnknownParam(name, "_since applies to history and $everything"), strict, issues)
        if opts["summary"] and opts["elements"]:
            raise bad("_summary and _elements cannot be combined", "_elements")
        return opts

    # ------------------------------------------------------------------ _include / _revinclude
    def _includes(self, conn, matches: list[dict], opts: dict, base_url: str, issues: list[Issue],
                  fence=None) -> list[dict]:
        seen = {(m["resourceType"], m["id"]) for m in matches}
        out: list[dict] = []
        frontier = matches
        for round_no in range(ITERATE_ROUNDS + 1):
            if not frontier:
                break
            found: dict[tuple[str, str], None] = {}
            for spec, iterate in opts["include"]:
                if round_no > 0 and not iterate:
                    continue
                for key in self._forward(conn, frontier, spec):
                    if key not in seen:
                        found[key] = None
            for spec, iterate in opts["revinclude"]:
                if round_no > 0 and not iterate:
                    continue
                for key in self._reverse(conn, frontier, spec):
                    if key not in seen:
                        found[key] = None
            if len(seen) + len(found) > MAX_INCLUDES:
                issues.append(Issue("warning", "too-costly", f"included resources were limited to {MAX_INCLUDES}"))
                found = dict(list(found.items())[: max(0, MAX_INCLUDES - len(seen))])
            frontier = self._load(conn, list(found), fence)
            for res in frontier:
                seen.add((res["resourceType"], res["id"]))
                out.append({
                    "fullUrl": f"{base_url}/{res['resourceType']}/{res['id']}",
                    "resource": res,
                    "search": {"mode": "include"},
                })
            if not any(it for _s, it in opts["include"] + opts["revinclude"]):
                break
        return out

    def _parse_inc(self, spec: str, name: str):
        parts = spec.split(":")
        if not parts[0] or not self.reg.is_type(parts[0]) and parts[0] != "*":
            raise bad(f"invalid {name} value {spec!r}: Type:param[:TargetType]", name)
        src = parts[0]
        code = parts[1] if len(parts) > 1 else "*"
        target = parts[2] if len(parts) > 2 else None
        if code != "*" and src != "*":
            p = self.reg.get(src, code)
            if p is None or p.type != "reference":
                raise bad(f"{name}: {src} has no reference parameter {code!r}", name)
        return src, code, target

    def _forward(self, conn, frontier: list[dict], spec: str):
        src, code, target = self._parse_inc(spec, "_include")
        ids = [r["id"] for r in frontier if src in ("*", r["resourceType"])]
        if not ids:
            return []
        t = sp_reference
        conds = [t.c.res_id.in_(ids), t.c.target_id.is_not(None)]
        if src != "*":
            conds.append(t.c.res_type == src)
        if code != "*":
            conds.append(pcond(t, self.reg.get(src, code)))
        if target:
            conds.append(t.c.target_type == target)
        stmt = select(t.c.target_type, t.c.target_id).where(*conds).distinct()
        return [(a, b) for a, b in conn.execute(stmt)]

    def _reverse(self, conn, frontier: list[dict], spec: str):
        src, code, target = self._parse_inc(spec, "_revinclude")
        by_type: dict[str, list[str]] = {}
        for r in frontier:
            if target is None or r["resourceType"] == target:
                by_type.setdefault(r["resourceType"], []).append(r["id"])
        if not by_type:
            return []
        t = sp_reference
        conds = [or_(*[and_(t.c.target_type == tt, t.c.target_id.in_(ids)) for tt, ids in by_type.items()])]
        if src != "*":
            conds.append(t.c.res_type == src)
        if code != "*":
            conds.append(pcond(t, self.reg.get(src, code)))
        stmt = select(t.c.res_type, t.c.res_id).where(*conds).distinct()
        return [(a, b) for a, b in conn.execute(stmt)]

    @staticmethod
    def _load(conn, keys: list[tuple[str, str]], fence=None) -> list[dict]:
        by_type: dict[str, list[str]] = {}
        for t, i in keys:
            by_type.setdefault(t, []).append(i)
        out = []
        for t, ids in by_type.items():
            visible = on_row(fence, t)
            for i in range(0, len(ids), 500):
                stmt = select(R.c.content).where(R.c.res_type == t, R.c.res_id.in_(ids[i : i + 500]), R.c.deleted == false())
                if visible is not None:
                    stmt = stmt.where(visible)
                out.extend(orjson.loads(row[0]) for row in conn.execute(stmt))
        return out


@dataclass
class Plan:
    """How a search reaches its ids: outer conditions on ``resource``, and for driven type searches the
    id-only inner query (driver + EXISTS probes) that can carry ordering and paging (``pushdown``)."""

    conds: list
    driven: bool = False
    inner: object = None
    dcol: object = None
    pushdown: bool = False
    #: Non-driven type searches: the filters (as parts) and ready conditions, for the sort-driven scan.
    probes: list | None = None
    exprs: list | None = None


class _RowCols:
    """Stands in for the resource table in sort expressions computed on the driver's ids."""

    def __init__(self, res_type: str, id_col):
        self.c = type("C", (), {"res_type": literal(res_type), "res_id": id_col})()


def _jsonable(vals: list) -> list:
    return [bool(v) if isinstance(v, bool) else v for v in vals]


__all__ = ["SearchIndex", "summarize", "split_values"]
