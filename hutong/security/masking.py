"""Masking of personal data by role in FHIR answers: resident ID numbers, phones and names are shown
as the card's kiosk shows them (``220112********3126``, ``138****5678``, ``王**``) to roles that do not
need them. Masked resources carry the ``MASKED`` security label (v3 ObservationValue)."""

from __future__ import annotations

import orjson

from hutong.china.ids import mask_name, mask_phone, mask_resident_id
from hutong.core.caller import Caller

#: Roles that see personal data masked (they run, count or audit the platform; they do not treat).
MASKED_ROLES = frozenset({"operator", "statistician", "auditor", "terminal"})
#: Roles that need the data in clear (their own record, their patients, institution systems).
CLEAR_ROLES = frozenset({"clinician", "resident", "system"})
PERSON_TYPES = frozenset({"Patient", "RelatedPerson", "Person"})
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
MASKED_LABEL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "MASKED"}


def masks(caller: Caller) -> bool:
    """Whether ``caller`` sees personal data masked."""
    return (caller.auth in ("session", "gateway") and bool(caller.roles & MASKED_ROLES)
            and not caller.roles & CLEAR_ROLES)


def mask_person(resource: dict) -> dict:
    """``resource`` (a Patient, RelatedPerson or Person) with IDs, phones and names masked."""
    out = dict(resource)
    if isinstance(out.get("identifier"), list):
        out["identifier"] = [
            {**i, "value": mask_resident_id(i["value"])} if isinstance(i, dict) and isinstance(i.get("value"), str)
            and (i.get("system") == RESIDENT_ID_SYSTEM or len(i["value"]) == 18) else i
            for i in out["identifier"]]
    out["telecom"] = [_telecom(t) for t in out["telecom"]] if isinstance(out.get("telecom"), list) else out.get(
        "telecom")
    if out.get("telecom") is None:
        out.pop("telecom", None)
    if isinstance(out.get("name"), list):
        out["name"] = [_name(n) for n in out["name"]]
    if isinstance(out.get("contact"), list):
        out["contact"] = [{**c, **({"telecom": [_telecom(t) for t in c["telecom"]]}
                                   if isinstance(c.get("telecom"), list) else {}),
                           **({"name": _name(c["name"])} if isinstance(c.get("name"), dict) else {})}
                          if isinstance(c, dict) else c for c in out["contact"]]
    meta = dict(out.get("meta") or {})
    meta["security"] = [*(meta.get("security") or []), MASKED_LABEL]
    out["meta"] = meta
    return out


def _telecom(t):
    if isinstance(t, dict) and t.get("system") in ("phone", "sms") and isinstance(t.get("value"), str):
        return {**t, "value": mask_phone(t["value"])}
    return t


def _name(n):
    if not isinstance(n, dict):
        return n
    out = dict(n)
    if isinstance(out.get("text"), str):
        out["text"] = mask_name(out["text"])
    if isinstance(out.get("family"), str):
        full = out["family"] + "".join(g for g in out.get("given") or [] if isinstance(g, str))
        out["family"] = mask_name(full)
        out.pop("given", None)
    elif isinstance(out.get("given"), list):
        out["given"] = ["*" for _ in out["given"]]
    return out


def mask_body(body):
    """A FHIR answer's body (dict or JSON text) with every person resource in it masked; None: unchanged."""
    if body is None:
        return None
    doc = orjson.loads(body) if isinstance(body, (str, bytes)) else body
    if not isinstance(doc, dict):
        return None
    changed = False
    if doc.get("resourceType") in PERSON_TYPES:
        return mask_person(doc)
    if doc.get("resourceType") == "Bundle":
        entries = []
        for entry in doc.get("entry") or []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType") in PERSON_TYPES:
                entry = {**entry, "resource": mask_person(res)}
                changed = True
            entries.append(entry)
        if changed:
            return {**doc, "entry": entries}
    return None
