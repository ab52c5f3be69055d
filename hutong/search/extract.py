"""Write-time extraction: resource -> index rows, one plain-Python pass per parameter.

Rows are dicts keyed by the index table's column names (without ``res_type``/``res_id``, which the caller
adds). Values the parameter type cannot use (an ``onsetString`` for a date parameter) are skipped.
"""

from __future__ import annotations

import re

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
from hutong.search.values import BIG, EXACT_MAX, date_range, norm, period_range, timing_range, to_float

#: Code systems whose codes are case-insensitive: indexed and searched upper-cased.
CASE_INSENSITIVE_SYSTEMS = frozenset({
    "http://loinc.org",
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-9-cm",
    "urn:oid:2.16.840.1.113883.6.3",
})
_TAGS = re.compile(r"<[^>]+>")
_ENTITY = re.compile(r"&[a-zA-Z#0-9]+;")
_STRING_PARTS = {
    "HumanName": ("family", "given", "prefix", "suffix", "text"),
    "Address": ("line", "city", "district", "state", "postalCode", "country", "text"),
}


def code_key(system: str | None, code: str) -> str:
    """The stored form of a code (upper-cased in case-insensitive systems)."""
    if system in CASE_INSENSITIVE_SYSTEMS:
        return code.upper()
    return code


def _txt(s) -> str | None:
    return norm(s) if isinstance(s, str) and s else None


def token_rows(param: str, v, t, leaf: frozenset, out: list) -> None:
    if isinstance(v, str):
        out.append((sp_token, {"param": param, "system": None, "code": v[:EXACT_MAX], "text": None}))
    elif isinstance(v, bool):
        out.append((sp_token, {"param": param, "system": None, "code": "true" if v else "false", "text": None}))
    elif isinstance(v, dict):
        if "coding" in v or ("text" in v and "value" not in v and "code" not in v):
            texts = set()
            for c in v.get("coding") or ():
                if isinstance(c, dict):
                    code, system = c.get("code"), c.get("system")
                    text = _txt(c.get("display"))
                    if text:
                        texts.add(text)
                    if code is not None or system is not None:
                        out.append((sp_token, {
                            "param": param, "system": system,
                            "code": code_key(system, code) if code else None, "text": text,
                        }))
            text = _txt(v.get("text"))
            if text and text not in texts:
                out.append((sp_token, {"param": param, "system": None, "code": None, "text": text}))
        elif "ContactPoint" in leaf:
            if v.get("value") is not None:
                out.append((sp_token, {"param": param, "system": v.get("system"), "code": v["value"][:EXACT_MAX], "text": None}))
        elif "Identifier" in leaf or ("value" in v and "code" not in v):
            value, system = v.get("value"), v.get("system")
            if value is None and system is None:
                return
            text = _txt((v.get("type") or {}).get("text"))
            out.append((sp_token, {"param": param, "system": system, "code": value, "text": text}))
            for c in (v.get("type") or {}).get("coding") or ():
                if isinstance(c, dict) and c.get("code") and value is not None:
                    out.append((sp_token, {
                        "param": param + ":of-type", "system": c.get("system"),
                        "code": f"{c['code']}|{value}"[:EXACT_MAX], "text": None,
                    }))
        else:  # Coding
            code, system = v.get("code"), v.get("system")
            if code is not None or system is not None:
                out.append((sp_token, {
                    "param": param, "system": system, "code": code_key(system, code) if code else None,
                    "text": _txt(v.get("display")),
                }))


def string_rows(param: str, v, t, leaf, out: list) -> None:
    if isinstance(v, str):
        if "xhtml" in leaf:
            v = _ENTITY.sub(" ", _TAGS.sub(" ", v))
            out.append((sp_string, {"param": param, "norm": norm(v)[:255], "exact": None}))
            return
        out.append((sp_string, {"param": param, "norm": norm(v), "exact": v[:EXACT_MAX]}))
    elif isinstance(v, dict):
        parts = _STRING_PARTS["HumanName"] if ("family" in v or "given" in v or "HumanName" in leaf) else _STRING_PARTS["Address"]
        for key in parts:
            x = v.get(key)
            if x is None:
                continue
            for s in x if isinstance(x, list) else (x,):
                if isinstance(s, str) and s:
                    out.append((sp_string, {"param": param, "norm": norm(s), "exact": s[:EXACT_MAX]}))


def date_value(v) -> tuple[int, int] | None:
    if isinstance(v, str):
        return date_range(v)
    if isinstance(v, dict):
        if "start" in v or "end" in v:
            return period_range(v)
        if "event" in v or "repeat" in v:
            return timing_range(v)
    return None


def date_rows(param: str, v, t, leaf, out: list) -> None:
    r = date_value(v)
    if r:
        out.append((sp_date, {"param": param, "low_us": r[0], "high_us": r[1]}))


def quantity_value(v) -> tuple[float, float, str | None, str | None, str | None] | None:
    """``(low, high, system, code, unit)`` of a Quantity/Money/Range."""
    if not isinstance(v, dict):
        return None
    if "low" in v or "high" in v:  # Range
        lo, hi = v.get("low") or {}, v.get("high") or {}
        a, b = to_float(lo.get("value")), to_float(hi.get("value"))
        if a is None and b is None:
            return None
        q = lo if a is not None else hi
        return (a if a is not None else -BIG, b if b is not None else BIG, q.get("system"), q.get("code"), q.get("unit"))
    x = to_float(v.get("value"))
    if x is None:
        return None
    if "currency" in v:  # Money
        return (x, x, "urn:iso:std:iso:4217", v["currency"], v["currency"])
    return (x, x, v.get("system"), v.get("code"), v.get("unit"))


def quantity_rows(param: str, v, t, leaf, out: list) -> None:
    q = quantity_value(v)
    if q:
        out.append((sp_quantity, {"param": param, "low": q[0], "high": q[1], "system": q[2], "code": q[3], "unit": q[4]}))


def number_rows(param: str, v, t, leaf, out: list) -> None:
    x = to_float(v)
    if x is not None:
        out.append((sp_number, {"param": param, "low": x, "high": x}))
    elif isinstance(v, dict):
        q = quantity_value(v)
        if q:
            out.append((sp_number, {"param": param, "low": q[0], "high": q[1]}))


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """``(type, id, url)`` for a reference string: relative ``Type/id`` or an absolute/urn/canonical url."""
    if "://" in ref or ref.startswith("urn:"):
        return None, None, ref.split("|", 1)[0]
    if ref.startswith("#"):
        return None, None, None
    if "/_history/" in ref:
        ref = ref.split("/_history/", 1)[0]
    parts = ref.split("/")
    if len(parts) == 2 and parts[0][:1].isupper():
        return parts[0], parts[1], None
    return None, None, ref.split("|", 1)[0]


def reference_rows(param: str, v, t, leaf, out: list) -> None:
    if isinstance(v, str):  # canonical / uri
        out.append((sp_reference, {"param": param, "target_type": None, "target_id": None, "url": v.split("|", 1)[0][:EXACT_MAX]}))
    elif isinstance(v, dict):
        if "resourceType" in v:  # Bundle.entry[0].resource
            if v.get("id"):
                out.append((sp_reference, {"param": param, "target_type": v["resourceType"], "target_id": v["id"], "url": None}))
            return
        ref = v.get("reference")
        if isinstance(ref, str):
            ttype, tid, url = parse_reference(ref)
            if tid or url:
                out.append((sp_reference, {"param": param, "target_type": ttype, "target_id": tid, "url": url[:EXACT_MAX] if url else None}))
        ident = v.get("identifier")
        if isinstance(ident, dict):
            token_rows(param + ":identifier", ident, None, frozenset({"Identifier"}), out)
        if "url" in v and isinstance(v["url"], str):  # Attachment (Consent.source)
            out.append((sp_reference, {"param": param, "target_type": None, "target_id": None, "url": v["url"][:EXACT_MAX]}))


def uri_rows(param: str, v, t, leaf, out: list) -> None:
    if isinstance(v, str):
        out.append((sp_uri, {"param": param, "value": v[:EXACT_MAX]}))


ROWS = {
    "token": token_rows,
    "string": string_rows,
    "date": date_rows,
    "quantity": quantity_rows,
    "number": number_rows,
    "reference": reference_rows,
    "uri": uri_rows,
}


def _component_values(comp_type: str, vals: list, leaf) -> list[dict]:
    """Composite component values as partial sp_composite columns for slot 2."""
    out = []
    for v, _t in vals:
        if comp_type in ("token", "string"):
            rows: list = []
            (token_rows if comp_type == "token" else string_rows)("x", v, None, leaf, rows)
            for _tbl, r in rows:
                if comp_type == "token":
                    if r["code"] is not None:
                        out.append({"c2_s": r["system"], "c2_c": r["code"]})
                else:
                    out.append({"c2_s": None, "c2_c": r["norm"]})
        elif comp_type in ("quantity", "number"):
            if comp_type == "number" and to_float(v) is not None:
                x = to_float(v)
                out.append({"c2_lo": x, "c2_hi": x})
            else:
                q = quantity_value(v)
                if q:
                    out.append({"c2_lo": q[0], "c2_hi": q[1], "c2_s": q[2], "c2_c": q[3] or q[4]})
        elif comp_type == "date":
            r = date_value(v)
            if r:
                out.append({"c2_dlo": r[0], "c2_dhi": r[1]})
    return out


EMPTY_COMPOSITE = {
    "c1_s": None, "c1_c": None, "c2_s": None, "c2_c": None, "c2_lo": None, "c2_hi": None,
    "c2_dlo": None, "c2_dhi": None, "c3_lo": None, "c3_hi": None,
}


def composite_rows(p: Param, resource: dict, out: list) -> None:
    """Rows of a composite (or Location.near) parameter: components of one element stay together."""
    for getter, _leaf in p.getters:
        for elem, _t in getter(resource):
            if p.type == "special":  # near: position latitude/longitude
                lat, lon = to_float(elem.get("latitude")), to_float(elem.get("longitude"))
                if lat is not None and lon is not None:
                    row = dict(EMPTY_COMPOSITE, param=p.code, c2_lo=lat, c2_hi=lat, c3_lo=lon, c3_hi=lon)
                    out.append((sp_composite, row))
                continue
            comp_vals = []
            for comp in p.components:
                vals = []
                for g, leaf, from_root in comp.getters:
                    vals.append((g(resource) if from_root else g(elem), leaf))
                comp_vals.append((comp, vals))
            if len(comp_vals) < 2:
                continue
            (c1, v1), (c2, v2) = comp_vals[0], comp_vals[1]
            firsts = []
            for vs, leaf in v1:
                for v, _t in vs:
                    if c1.type == "reference":
                        rows: list = []
                        reference_rows("x", v, None, leaf, rows)
                        for _tbl, r in rows:
                            if r.get("target_id"):
                                firsts.append((None, f"{r['target_type']}/{r['target_id']}"))
                            elif r.get("url"):
                                firsts.append((None, r["url"]))
                    else:
                        rows = []
                        token_rows("x", v, None, leaf, rows)
                        firsts.extend((r["system"], r["code"]) for _tbl, r in rows if r["code"] is not None)
            seconds = []
            for vs, leaf in v2:
                seconds.extend(_component_values(c2.type, vs, leaf))
            thirds: list = [None]
            if len(comp_vals) > 2:
                thirds = [to_float(v) for vs, _leaf in comp_vals[2][1] for v, _t in vs if to_float(v) is not None] or [None]
            for s1, c1v in firsts:
                for sec in seconds:
                    for third in thirds:
                        row = dict(EMPTY_COMPOSITE, param=p.code, c1_s=s1, c1_c=c1v, **sec)
                        if third is not None:
                            row["c3_lo"] = row["c3_hi"] = third
                        out.append((sp_composite, row))


def deceased_rows(p: Param, resource: dict, out: list) -> None:
    """Patient-deceased: ``deceased.exists() and deceased != false`` as a boolean token."""
    if "deceasedDateTime" in resource:
        val = True
    else:
        val = resource.get("deceasedBoolean") is True
    out.append((sp_token, {"param": p.code, "system": None, "code": "true" if val else "false", "text": None}))


def extract(reg: Registry, res_type: str, resource: dict) -> list:
    """All ``(table, row)`` pairs for ``resource`` (rows lack res_type/res_id)."""
    out: list = []
    for p in reg.indexed.get(res_type, ()):
        if p.components or p.type == "special":
            composite_rows(p, resource, out)
            continue
        if p.special == "deceased":
            deceased_rows(p, resource, out)
            continue
        conv = ROWS.get(p.type)
        if conv is None:
            continue
        code = p.code
        for getter, leaf in p.getters:
            for v, t in getter(resource):
                conv(code, v, t, leaf, out)
    return out
