"""The result index: every lab result and exam by patient and code, kept by a change-log consumer.

For each ``Observation``, ``DiagnosticReport`` and ``ImagingStudy`` written, the consumer replaces the
resource's rows in ``recognition_result`` inside the transaction that moves its position (so exactly
once, and a deleted or superseded result leaves no stale row). Only results that are final
(``final``/``amended``/``corrected``/``appended``; an ImagingStudy ``available``) are indexed: a
preliminary result is never offered for recognition.
"""

from __future__ import annotations

import orjson
from sqlalchemy import delete

from hutong.recognition.catalog import token
from hutong.recognition.tables import recognition_result
from hutong.search.values import date_range

CONSUMER = "recognition-index"
TYPES = frozenset({"Observation", "DiagnosticReport", "ImagingStudy"})
_FINAL = frozenset({"final", "amended", "corrected", "appended", "available"})
_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
_HIDDEN = frozenset({"R", "V"})
_ORG_SOURCES = ("urn:hutong:org:", "Organization/")


def _ref_id(ref: dict | None, kind: str) -> str | None:
    r = (ref or {}).get("reference") or ""
    return r.split("/", 1)[1] if r.startswith(kind + "/") and "/" in r else None


def _institution(res: dict) -> str | None:
    for p in res.get("performer") or []:
        oid = _ref_id(p, "Organization")
        if oid:
            return oid
    source = (res.get("meta") or {}).get("source") or ""
    for prefix in _ORG_SOURCES:
        if source.startswith(prefix):
            return source[len(prefix):] or None
    return None


def _effective(res: dict) -> int | None:
    for value in (res.get("effectiveDateTime"), (res.get("effectivePeriod") or {}).get("start"),
                  res.get("started"), res.get("issued")):
        if isinstance(value, str):
            r = date_range(value)
            if r:
                return r[0]
    return None


def _codes(res: dict) -> list[str]:
    concepts = res.get("procedureCode") or [] if res.get("resourceType") == "ImagingStudy" else [res.get("code") or {}]
    out: list[str] = []
    for cc in concepts:
        for c in (cc or {}).get("coding") or []:
            if c.get("code"):
                t = token(c.get("system"), c.get("code"))
                if t not in out and len(t) <= 320:
                    out.append(t)
    return out


def _text(cc: dict | None) -> str:
    cc = cc or {}
    return cc.get("text") or next((c.get("display") for c in cc.get("coding") or [] if c.get("display")), "") or ""


def summary(res: dict) -> dict:
    """What a card shows of a result: its title, value (with unit and flag) or conclusion."""
    kind = res.get("resourceType")
    if kind == "ImagingStudy":
        title = next((_text(pc) for pc in res.get("procedureCode") or []), "") or res.get("description") or ""
        return {"title": title, "conclusion": res.get("description") or "",
                "series": res.get("numberOfSeries"), "instances": res.get("numberOfInstances")}
    out = {"title": _text(res.get("code"))}
    if kind == "DiagnosticReport":
        out["conclusion"] = res.get("conclusion") or ""
        out["results"] = len(res.get("result") or [])
        return out
    if "valueQuantity" in res:
        q = res["valueQuantity"]
        out["value"] = f"{q.get('comparator', '')}{q.get('value', '')}"
        out["unit"] = q.get("unit") or q.get("code") or ""
    elif "valueCodeableConcept" in res:
        out["value"] = _text(res["valueCodeableConcept"])
    elif "valueString" in res:
        out["value"] = res["valueString"]
    flag = next((c.get("code") for i in res.get("interpretation") or [] for c in i.get("coding") or []), None)
    if flag:
        out["flag"] = flag
    return out


def rows_for(res: dict, tenant: str) -> list[dict]:
    """The index rows of one result (none when it is not final, has no patient, time or code)."""
    if res.get("status") not in _FINAL:
        return []
    patient = _ref_id(res.get("subject"), "Patient")
    effective = _effective(res)
    codes = _codes(res)
    if not patient or effective is None or not codes:
        return []
    hidden = any(s.get("system") == _CONFIDENTIALITY and s.get("code") in _HIDDEN
                 for s in (res.get("meta") or {}).get("security") or [])
    text = orjson.dumps(summary(res)).decode()
    base = {"res_type": res["resourceType"], "res_id": res["id"], "tenant": tenant, "patient": patient,
            "institution": _institution(res), "effective_us": effective, "status": res["status"],
            "hidden": hidden, "summary": text}
    return [dict(base, code=c) for c in codes]


def consume(tx, events) -> None:
    """Change-log handler: replace each changed result's index rows (runs inside the position's transaction)."""
    t = recognition_result.c
    latest: dict[tuple[str, str], object] = {}
    for ev in events:
        if ev.res_type in TYPES:
            latest[(ev.res_type, ev.res_id)] = ev
    rows: list[dict] = []
    for (kind, rid), ev in latest.items():
        tx.conn.execute(delete(recognition_result).where(t.res_type == kind, t.res_id == rid))
        s = tx.read(kind, rid)
        if s is None or s.deleted:
            continue
        rows.extend(rows_for(s.resource, s.tenant or ev.tenant))
    if rows:
        tx.conn.execute(recognition_result.insert(), rows)
