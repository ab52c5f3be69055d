"""Search parameter parsing and SQL generation (SQLAlchemy Core, identical on SQLite and PostgreSQL).

Every filter becomes ``<id column> IN (SELECT res_id FROM sp_<type> WHERE res_type=:t AND param=:p AND
<value condition>)`` (``NOT IN`` for ``:not``/``:missing=true``). Comma-separated values are OR-ed inside one
sub-select; repeated parameters AND-ed as separate sub-selects. Chains nest the sub-selects through
``sp_reference.target_id``; ``_has`` does the reverse. Each sub-select is a range scan of one composite
index ``(res_type, param, value...)``.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from sqlalchemy import and_, false, func, literal, literal_column, not_, or_, select, true, tuple_, union_all

from hutong.core.errors import FhirError
from hutong.search.extract import CASE_INSENSITIVE_SYSTEMS, code_key, parse_reference
from hutong.search.fence import visible_ids
from hutong.search.params import Param, Registry
from hutong.search.tables import (
    sp_composite,
    sp_date,
    sp_number,
    sp_quantity,
    sp_reference,
    sp_string,
    sp_token,
    sp_uri,
)
from hutong.search.values import date_range, norm, number_query_range
from hutong.store.schema import resource as R

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
PREFIXED_TYPES = ("date", "number", "quantity")
TOP = "\U0010ffff"
MODIFIERS = {
    "string": {"", "exact", "contains", "missing"},
    "token": {"", "not", "text", "of-type", "missing"},
    "date": {"", "missing"},
    "number": {"", "missing"},
    "quantity": {"", "missing"},
    "reference": {"", "identifier", "missing"},
    "uri": {"", "below", "above", "missing"},
    "composite": {"", "missing"},
    "special": {""},
}
TABLE_OF = {
    "token": sp_token, "string": sp_string, "date": sp_date, "number": sp_number, "quantity": sp_quantity,
    "reference": sp_reference, "uri": sp_uri, "composite": sp_composite, "special": sp_composite,
}


def bad(msg: str, expr: str | None = None) -> FhirError:
    return FhirError(400, "invalid", msg, expr)


class UnknownParam(Exception):
    """A parameter this server does not know (strict: 400; lenient: ignored and reported)."""

    def __init__(self, name: str, why: str):
        super().__init__(why)
        self.name = name
        self.why = why


# --------------------------------------------------------------------------- escaping
def split_escaped(s: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash (the backslashes stay for later unescaping)."""
    out, cur, i = [], [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            cur.append(s[i : i + 2])
            i += 2
            continue
        if ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def unescape(s: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", s)


def split_values(raw: str) -> list[str]:
    """Comma-separated OR values, escape-aware (escapes kept for the type parsers)."""
    return split_escaped(raw, ",")


# --------------------------------------------------------------------------- value conditions
def _prefix(v: str, ptype: str, name: str) -> tuple[str, str]:
    if len(v) >= 2 and v[:2].isalpha():
        p = v[:2]
        if p not in PREFIXES:
            raise bad(f"invalid prefix {p!r} in {name}={v}", name)
        return p, v[2:]
    return "eq", v


def parse_date(v: str, name: str) -> tuple[int, int]:
    r = date_range(v)
    if r is None:
        raise bad(f"invalid date {v!r} for parameter {name}", name)
    return r


def date_cond(lo_col, hi_col, prefix: str, ql: int, qh: int):
    eq = and_(lo_col >= ql, hi_col <= qh)
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return not_(eq)
    if prefix == "gt":
        return hi_col > qh
    if prefix == "lt":
        return lo_col < ql
    if prefix == "ge":
        return or_(hi_col > qh, eq)
    if prefix == "le":
        return or_(lo_col < ql, eq)
    if prefix == "sa":
        return lo_col > qh
    if prefix == "eb":
        return hi_col < ql
    # ap: within 10% of the distance from now (at least a day) on either side
    now = int(time.time() * 1_000_000)
    d = max(abs(now - ql) // 10, 86_400_000_000)
    return and_(lo_col <= qh + d, hi_col >= ql - d)


def num_cond(lo_col, hi_col, prefix: str, q: float, ql: float, qh: float):
    if prefix == "eq":
        return and_(lo_col >= ql, hi_col < qh)
    if prefix == "ne":
        return not_(and_(lo_col >= ql, hi_col < qh))
    if prefix == "gt":
        return hi_col > q
    if prefix == "lt":
        return lo_col < q
    if prefix == "ge":
        return hi_col >= q
    if prefix == "le":
        return lo_col <= q
    if prefix == "sa":
        return lo_col > q
    if prefix == "eb":
        return hi_col < q
    d = abs(q) * 0.1
    return and_(lo_col <= q + d, hi_col >= q - d)


def parse_number(v: str, name: str) -> tuple[float, float, float]:
    try:
        return number_query_range(v)
    except ValueError:
        raise bad(f"invalid number {v!r} for parameter {name}", name) from None


def token_cond(t, raw: str, modifier: str, name: str):
    """Condition on sp_token-like columns ``system``/``code``/``text``."""
    if modifier == "text":
        q = norm(unescape(raw))
        return and_(t.c.text >= q, t.c.text < q + TOP)
    parts = split_escaped(raw, "|")
    if len(parts) == 1:
        code = unescape(parts[0])
        if code.upper() != code:
            return or_(t.c.code == code, and_(t.c.code == code.upper(), t.c.system.in_(CASE_INSENSITIVE_SYSTEMS)))
        return t.c.code == code
    if len(parts) == 2:
        system, code = unescape(parts[0]), unescape(parts[1])
        if system == "":
            return and_(t.c.system.is_(None), t.c.code == code)
        if code == "":
            return t.c.system == system
        return and_(t.c.system == system, t.c.code == code_key(system, code))
    raise bad(f"invalid token {raw!r} for parameter {name}", name)


def tokens_cond(t, values: list[str], modifier: str, name: str):
    """OR of token values; many codes of one system collapse into ``system = s AND code IN (...)``."""
    if modifier == "text" or len(values) < 4:
        return or_(*[token_cond(t, v, modifier, name) for v in values])
    by_system: dict[str | None, list[str]] = {}
    rest = []
    for v in values:
        parts = split_escaped(v, "|")
        if len(parts) == 2 and parts[0] and parts[1]:
            s = unescape(parts[0])
            by_system.setdefault(s, []).append(code_key(s, unescape(parts[1])))
        elif len(parts) == 1 and unescape(parts[0]) == unescape(parts[0]).upper():
            by_system.setdefault(None, []).append(unescape(parts[0]))
        else:
            rest.append(token_cond(t, v, modifier, name))
    conds = rest
    for s, codes in by_system.items():
        conds.append(t.c.code.in_(codes) if s is None else and_(t.c.system == s, t.c.code.in_(codes)))
    return or_(*conds)


def quantity_cond(t, raw: str, name: str, lo="low", hi="high", sys_col="system", code_col="code", unit_col="unit"):
    parts = split_escaped(raw, "|")
    if len(parts) not in (1, 3):
        raise bad(f"invalid quantity {raw!r} for parameter {name}", name)
    prefix, num = _prefix(unescape(parts[0]), "quantity", name)
    q, ql, qh = parse_number(num, name)
    conds = [num_cond(t.c[lo], t.c[hi], prefix, q, ql, qh)]
    if len(parts) == 3:
        system, code = unescape(parts[1]), unescape(parts[2])
        if system and code:
            conds += [t.c[sys_col] == system, t.c[code_col] == code]
        elif code:
            conds.append(or_(t.c[code_col] == code, t.c[unit_col] == code) if unit_col else t.c[code_col] == code)
        elif system:
            conds.append(t.c[sys_col] == system)
    return and_(*conds)


def string_cond(t, raw: str, modifier: str):
    v = unescape(raw)
    if modifier == "exact":
        return t.c.exact == v
    q = norm(v)
    if modifier == "contains":
        esc = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return t.c.norm.like(f"%{esc}%", escape="\\")
    return and_(t.c.norm >= q, t.c.norm < q + TOP)


def uri_cond(t, raw: str, modifier: str):
    v = unescape(raw)
    if modifier == "below":
        return and_(t.c.value >= v, t.c.value < v + TOP)
    if modifier == "above":
        prefixes = set()
        parts = v.split("/")
        for i in range(3, len(parts) + 1):
            prefixes.add("/".join(parts[:i]))
        prefixes.add(v)
        return t.c.value.in_(sorted(prefixes))
    return t.c.value == v


# --------------------------------------------------------------------------- the planner
@dataclass
class Planner:
    """Builds SQL for the filters of one search against one resource type (or all, for system search)."""

    reg: Registry
    base_url: str = ""
    #: Chains (``subject.organization.name``) and ``_has`` deeper than this are refused with 400: each
    #: level is a nested sub-select, and SQLite's parser overflows its stack on deep nesting.
    max_depth: int = 4
    #: The caller's visibility rules (``hutong/search/fence.py``): a chain's targets and a ``_has``'s
    #: sources must be visible too, or a hidden resource could be probed through them.
    fence: object = None

    # public -----------------------------------------------------------------------------------------
    def filter(self, res_type: str, id_col, name: str, raw: str):
        """SQL condition on ``id_col`` (res ids of ``res_type``) for one query parameter ``name=raw``."""
        return self.part(res_type, id_col, name, raw).in_form(id_col)

    def part(self, res_type: str | None, id_col, name: str, raw: str) -> Part:
        """One filter as a sub-select (usable as ``IN`` or correlated ``EXISTS``) with a selectivity rank."""
        depth = name.count(".") + name.count("_has:")
        if depth > self.max_depth:
            raise bad(f"{name[:120]}: chains and _has may be at most {self.max_depth} levels deep, this one is "
                      f"{depth}", name[:120])
        if name.startswith("_has:"):
            return Part(self.has_ids(res_type, name, raw), rank=2)
        base, _, chain = name.partition(".")
        code, _, modifier = base.partition(":")
        param = self._param(res_type, code, name)
        values = split_values(raw)
        if any(v == "" for v in values) and not chain:
            raise bad(f"empty value for parameter {name}", name)
        if chain:
            if param.type != "reference":
                raise bad(f"parameter {code} of {res_type} is not a reference and cannot be chained", name)
            return Part(self.chain_ids(res_type, param, modifier, chain, raw, name), rank=2)
        if modifier == "missing":
            if raw not in ("true", "false"):
                raise bad(f"{name} must be true or false", name)
            present = self.present_ids(res_type, param)
            return Part(present, negate=raw == "true", rank=9)
        if param.table_only:
            return Part(None, expr=self.table_filter(res_type, id_col, param, modifier, values, name),
                        rank=0 if param.code == "_id" else 9)
        if modifier == "not" and param.type == "token":
            return Part(self.value_ids(res_type, param, "", values, name), negate=True, rank=9)
        return Part(self.value_ids(res_type, param, modifier, values, name), rank=_rank(param, modifier, len(values)))

    # helpers ----------------------------------------------------------------------------------------
    def _param(self, res_type: str | None, code: str, name: str) -> Param:
        p = self.reg.get(res_type, code) if res_type else self.reg.common.get(code)
        if p is None:
            if any(u["code"] == code for u in self.reg.unsupported):
                raise UnknownParam(name, f"search parameter {code!r} is not supported")
            raise UnknownParam(name, f"unknown search parameter {code!r} for {res_type}")
        return p

    def present_ids(self, res_type: str, param: Param):
        if param.table_only:
            return select(R.c.res_id).where(R.c.res_type == res_type, false())
        t = TABLE_OF[param.type].alias()
        return _sel(t, res_type, pcond(t, param))

    def table_filter(self, res_type, id_col, param: Param, modifier, values, name):
        if modifier not in ("", "not") or (modifier == "not" and param.code != "_id"):
            raise bad(f"modifier :{modifier} is not supported on {param.code}", name)
        if param.code == "_id":
            ids = [unescape(v) for v in values]
            if res_type is None:  # system search: id_col is (res_type, res_id)
                return R.c.res_id.not_in(ids) if modifier == "not" else R.c.res_id.in_(ids)
            return id_col.not_in(ids) if modifier == "not" else id_col.in_(ids)
        if param.code == "_lastUpdated":
            conds = []
            for v in values:
                prefix, rest = _prefix(unescape(v), "date", name)
                ql, qh = parse_date(rest, name)
                conds.append(date_cond(R.c.ts_us, R.c.ts_us, prefix, ql, qh))
            if res_type is None or id_col is R.c.res_id:  # top level: straight on the resource row
                return or_(*conds)
            sub = select(R.c.res_id).where(R.c.res_type == res_type, R.c.deleted == false(), or_(*conds))
            return id_col.in_(sub)
        if param.code == "_content":
            conds = []
            for v in values:
                q = unescape(v).lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                conds.append(func.lower(R.c.content).like(f"%{q}%", escape="\\"))
            if res_type is None or id_col is R.c.res_id:  # top level: straight on the resource row
                return or_(*conds)
            sub = select(R.c.res_id).where(R.c.res_type == res_type, R.c.deleted == false(), or_(*conds))
            return id_col.in_(sub)
        raise bad(f"parameter {param.code} cannot be searched", name)

    def value_ids(self, res_type: str, param: Param, modifier: str, values: list[str], name: str):
        """``SELECT res_id`` of resources of ``res_type`` with a value of ``param`` matching any of ``values``."""
        ptype = param.type
        allowed = MODIFIERS.get(ptype, {""})
        if modifier not in allowed:
            if ptype == "reference" and self.reg.is_type(modifier):
                return self.reference_ids(res_type, param, values, name, only_type=modifier)
            raise bad(f"modifier :{modifier} is not supported on {ptype} parameter {param.code}", name)
        t = TABLE_OF[ptype].alias()
        suffix = ""
        if ptype == "token":
            if modifier == "of-type":
                suffix = ":of-type"
                conds = []
                for v in values:
                    parts = split_escaped(v, "|")
                    if len(parts) != 3:
                        raise bad(f"{name} needs system|code|value", name)
                    s, c, val = (unescape(x) for x in parts)
                    conds.append(and_(t.c.system == s, t.c.code == f"{c}|{val}"))
                cond = or_(*conds)
            else:
                cond = tokens_cond(t, values, modifier, name)
        elif ptype == "string":
            cond = or_(*[string_cond(t, v, modifier) for v in values])
        elif ptype == "date":
            conds = []
            for v in values:
                prefix, rest = _prefix(unescape(v), ptype, name)
                ql, qh = parse_date(rest, name)
                conds.append(date_cond(t.c.low_us, t.c.high_us, prefix, ql, qh))
            cond = or_(*conds)
        elif ptype == "number":
            conds = []
            for v in values:
                prefix, rest = _prefix(unescape(v), ptype, name)
                q, ql, qh = parse_number(rest, name)
                conds.append(num_cond(t.c.low, t.c.high, prefix, q, ql, qh))
            cond = or_(*conds)
        elif ptype == "quantity":
            cond = or_(*[quantity_cond(t, v, name) for v in values])
        elif ptype == "reference":
            if modifier == "identifier":
                t = sp_token.alias()
                suffix = ":identifier"
                cond = tokens_cond(t, values, "", name)
            else:
                return self.reference_ids(res_type, param, values, name)
        elif ptype == "uri":
            cond = or_(*[uri_cond(t, v, modifier) for v in values])
        elif ptype == "composite":
            cond = or_(*[self.composite_cond(param, v, name, t) for v in values])
        elif ptype == "special":
            cond = or_(*[self.near_cond(v, name, t) for v in values])
        else:  # pragma: no cover
            raise bad(f"parameter type {ptype} is not searchable", name)
        return _sel(t, res_type, pcond(t, param, suffix), cond)

    def reference_ids(self, res_type, param: Param, values, name, only_type: str | None = None):
        t = sp_reference.alias()
        conds = []
        for raw in values:
            v = unescape(raw)
            ttype, tid, url = None, None, None
            if "://" in v and self.base_url and v.startswith(self.base_url.rstrip("/") + "/"):
                v = v[len(self.base_url.rstrip("/")) + 1 :]
            if "://" in v or v.startswith("urn:"):
                url = v.split("|", 1)[0]
            elif "/" in v:
                ttype, tid, url = parse_reference(v)
                if ttype is None and url:
                    tid, url = None, url
            else:
                tid = v
            if only_type:
                if ttype and ttype != only_type:
                    raise bad(f"{name}: {v} is not a {only_type}", name)
                ttype = only_type
            if url is not None:
                conds.append(t.c.url == url)
            elif ttype:
                conds.append(and_(t.c.target_id == tid, t.c.target_type == ttype))
            else:
                conds.append(t.c.target_id == tid)
        return _sel(t, res_type, pcond(t, param), or_(*conds))

    def chain_targets(self, param: Param, modifier: str, name: str) -> list[str]:
        if modifier:
            if not self.reg.is_type(modifier):
                raise bad(f"{name}: {modifier} is not a resource type", name)
            return [modifier]
        if param.store_type:
            return [param.store_type]
        targets = [x for x in param.targets if self.reg.is_type(x)]
        if not targets:
            raise bad(f"{name}: reference parameter {param.code} has no target types to chain into", name)
        return targets

    def chain_ids(self, res_type, param: Param, modifier: str, chain: str, raw: str, name: str):
        targets = self.chain_targets(param, modifier, name)
        inner_code = chain.partition(".")[0].partition(":")[0]
        t = sp_reference.alias()
        sels = []
        for tt in targets:
            if inner_code.startswith("_has") or self.reg.get(tt, inner_code) is not None:
                inner = self.filter(tt, t.c.target_id, chain, raw)
                visible = visible_ids(self.fence, tt, t.c.target_id)
                sels.append(select(t.c.res_id).where(t.c.res_type == res_type, pcond(t, param), t.c.target_type == tt, inner,
                                                     *([visible] if visible is not None else [])))
        if not sels:
            raise UnknownParam(name, f"none of {', '.join(targets)} has a search parameter {inner_code!r}")
        if len(sels) == 1:
            return sels[0]
        u = union_all(*sels).subquery()
        return select(u.c.res_id)

    def has_ids(self, res_type: str, name: str, raw: str):
        """``_has:Type:refparam:rest=value``: targets of ``Type.refparam`` for ``Type`` matching ``rest``."""
        parts = name.split(":", 3)
        if len(parts) < 4 or not parts[3]:
            raise bad(f"invalid _has parameter {name!r}", name)
        _, src_type, ref_code, rest = parts
        if not self.reg.is_type(src_type):
            raise bad(f"{name}: unknown resource type {src_type}", name)
        ref = self.reg.get(src_type, ref_code)
        if ref is None or ref.type != "reference":
            raise bad(f"{name}: {src_type} has no reference parameter {ref_code}", name)
        t = sp_reference.alias()
        inner = self.filter(src_type, t.c.res_id, rest, raw)
        visible = visible_ids(self.fence, src_type, t.c.res_id)
        return select(t.c.target_id).where(
            t.c.res_type == src_type, pcond(t, ref), t.c.target_type == res_type, inner,
            *([visible] if visible is not None else [])
        )

    def composite_cond(self, param: Param, raw: str, name: str, t=sp_composite):
        parts = split_escaped(raw, "$")
        comps = param.components
        if len(parts) != len(comps):
            raise bad(f"{name} needs {len(comps)} components separated by $", name)
        conds = []
        c1 = comps[0]
        if c1.type == "reference":
            v = unescape(parts[0])
            conds.append(t.c.c1_c == v)
        else:
            conds.append(token_cond(_Cols(t, system="c1_s", code="c1_c"), parts[0], "", name))
        for i, comp in enumerate(comps[1:], start=2):
            v = parts[i - 1]
            if i == 2:
                if comp.type == "token":
                    conds.append(token_cond(_Cols(t, system="c2_s", code="c2_c"), v, "", name))
                elif comp.type == "string":
                    q = norm(unescape(v))
                    conds.append(and_(t.c.c2_c >= q, t.c.c2_c < q + TOP))
                elif comp.type == "quantity":
                    conds.append(quantity_cond(t, v, name, "c2_lo", "c2_hi", "c2_s", "c2_c", None))
                elif comp.type == "number":
                    prefix, rest = _prefix(unescape(v), "number", name)
                    q, ql, qh = parse_number(rest, name)
                    conds.append(num_cond(t.c.c2_lo, t.c.c2_hi, prefix, q, ql, qh))
                elif comp.type == "date":
                    prefix, rest = _prefix(unescape(v), "date", name)
                    ql, qh = parse_date(rest, name)
                    conds.append(date_cond(t.c.c2_dlo, t.c.c2_dhi, prefix, ql, qh))
                else:
                    raise bad(f"{name}: component type {comp.type} not searchable", name)
            else:
                prefix, rest = _prefix(unescape(v), "number", name)
                q, ql, qh = parse_number(rest, name)
                conds.append(num_cond(t.c.c3_lo, t.c.c3_hi, prefix, q, ql, qh))
        return and_(*conds)

    def near_cond(self, raw: str, name: str, t=sp_composite, widen: float = 1.0):
        """``near=lat|long|distance|units`` (km default; equirectangular approximation). ``widen`` > 1
        makes it a slightly larger prefilter for an exact great-circle check afterwards (``near.py``)."""
        lat, lon, km, _value, _units = parse_near(raw, name)
        deg = km * widen / 111.195
        coslat = max(math.cos(math.radians(min(89.9, abs(lat) + deg))), 1e-6) if widen > 1 else max(
            math.cos(math.radians(lat)), 1e-6)
        dy = t.c.c2_lo - lat
        dx = (t.c.c3_lo - lon) * coslat
        return and_(
            t.c.c2_lo.between(lat - deg, lat + deg),
            t.c.c3_lo.between(lon - deg / coslat, lon + deg / coslat),
            dy * dy + dx * dx <= deg * deg,
        )

    # sorting ----------------------------------------------------------------------------------------
    def sort_column(self, res_type: str | None, code: str, desc: bool):
        """``(param, table, column)`` holding the sort value of parameter ``code``."""
        p = self.reg.get(res_type, code) if res_type else self.reg.common.get(code)
        if p is None:
            raise UnknownParam("_sort", f"unknown sort parameter {code!r}")
        if p.type in ("composite", "special") or p.table_only:
            raise bad(f"cannot sort by {code}", "_sort")
        t = TABLE_OF[p.type]
        ptype = p.type
        if ptype == "date":
            col = "high_us" if desc else "low_us"
        elif ptype in ("number", "quantity"):
            col = "high" if desc else "low"
        else:
            col = {"string": "norm", "token": "code", "reference": "target_id", "uri": "value"}[ptype]
        return p, t, col

    def sort_expr(self, res_type: str | None, code: str, desc: bool, r=R):
        if code == "_id":
            return r.c.res_id, ""
        if code == "_lastUpdated":
            return r.c.ts_us, 0
        p, t, col = self.sort_column(res_type, code, desc)
        t = t.alias()
        default = 0 if col.endswith("_us") else 0.0 if col in ("low", "high") else ""
        agg = func.max(t.c[col]) if desc else func.min(t.c[col])
        sub = select(agg).where(t.c.res_type == r.c.res_type, t.c.res_id == r.c.res_id, pcond(t, p))
        return sub.scalar_subquery(), default


#: ``near`` distance units (UCUM codes, plus ``mi``) in kilometres.
NEAR_UNITS = {"km": 1.0, "m": 0.001, "[mi_i]": 1.609344, "mi": 1.609344}


def parse_near(raw: str, name: str = "near") -> tuple[float, float, float, float, str]:
    """``lat|long|distance|units`` → (lat, lon, distance in km, distance as given, units); the distance
    defaults to 10 and the units to ``km`` (R4 Location ``near``)."""
    parts = [unescape(p) for p in split_escaped(raw, "|")]
    try:
        lat, lon = float(parts[0]), float(parts[1])
        dist = float(parts[2]) if len(parts) > 2 and parts[2] else 10.0
    except (ValueError, IndexError):
        raise bad(f"invalid near value {raw!r}: latitude|longitude|distance|units", name) from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not math.isfinite(dist) or dist < 0:
        raise bad(f"invalid near value {raw!r}: latitude −90…90, longitude −180…180, distance ≥ 0", name)
    units = parts[3] if len(parts) > 3 and parts[3] else "km"
    km = NEAR_UNITS.get(units)
    if km is None:
        raise bad(f"unsupported distance unit {units!r} for near", name)
    return lat, lon, dist * km, dist, units


@dataclass
class Part:
    """A filter: ``sub`` selects matching ids (``negate`` for NOT), or ``expr`` is a ready condition."""

    sub: object
    negate: bool = False
    rank: int = 5
    expr: object = None

    def in_form(self, id_col):
        if self.expr is not None:
            return self.expr
        return id_col.not_in(self.sub) if self.negate else id_col.in_(self.sub)

    def exists_form(self, id_col=None, type_col=None, fence: bool = False):
        """Correlated ``EXISTS`` on a candidate id (the resource row's, or the driving sub-select's).

        ``fence`` keeps it a per-row probe: PostgreSQL would otherwise turn a top-level ``EXISTS`` into a
        semi-join and hash the whole (non-selective) value set instead of stopping at the page size."""
        if self.expr is not None:
            return self.expr
        id_col = R.c.res_id if id_col is None else id_col
        cols = list(self.sub.selected_columns)
        if len(cols) == 2:
            corr = self.sub.where(cols[0] == (R.c.res_type if type_col is None else type_col), cols[1] == id_col)
        else:
            corr = self.sub.where(cols[0] == id_col)
        if fence:  # OFFSET 0 also stops PostgreSQL from turning the probe into a hashed sub-plan
            corr = corr.limit(1).offset(literal_column("0"))
        ex = corr.exists()
        ex = not_(ex) if self.negate else ex
        return ex.is_(true()) if fence else ex


def _rank(p: Param, modifier: str, nvalues: int = 1) -> int:
    """How selective a filter usually is (lower drives the query): ids and references to one resource first."""
    if p.type == "reference":
        return 1
    if p.type == "token":
        if modifier == "text" or nvalues > 5:
            return 5
        if "identifier" in p.code or modifier == "of-type":
            return 1
        leaves = set().union(*[leaf for _g, leaf in p.getters]) if p.getters else set()
        if leaves <= {"code", "boolean", "id"} or p.code in ("category", "class", "type", "_tag", "_security"):
            return 4  # small value sets: many resources share each value
        return 3
    if p.type == "string":
        return 5 if modifier == "contains" else 2
    if p.type in ("uri", "composite", "special"):
        return 3
    return 4


def pcond(t, p: Param, suffix: str = ""):
    """``param`` condition for ``p``'s rows (aliases read the rows of the parameters they stand for)."""
    codes = [c + suffix for c in (p.store_codes or [p.code])]
    cond = t.c.param == codes[0] if len(codes) == 1 else t.c.param.in_(codes)
    if p.store_type and not suffix and "target_type" in t.c:
        cond = and_(cond, t.c.target_type == p.store_type)
    return cond


def _sel(t, res_type: str | None, *conds):
    """``SELECT res_id`` of one type, or ``SELECT res_type, res_id`` across types (system search)."""
    if res_type is None:
        return select(t.c.res_type, t.c.res_id).where(*conds)
    return select(t.c.res_id).where(t.c.res_type == res_type, *conds)


class _Cols:
    """Adapter giving ``token_cond`` ``.c.system``/``.c.code`` over other column names."""

    def __init__(self, t, system: str, code: str):
        self.c = _NS(system=t.c[system], code=t.c[code], text=None)


class _NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def type_in(col, types: list[str]):
    return col.in_(types) if len(types) > 1 else col == types[0]


def pair_in(r, sub):
    return tuple_(r.c.res_type, r.c.res_id).in_(sub)


__all__ = ["Planner", "UnknownParam", "split_values", "unescape", "bad", "literal", "true"]
