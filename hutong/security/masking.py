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


#: Keys of capability API answers (``/api/mpi``, ``/api/card``, ``/api/consult``, ``/api/share``) that hold a
#: resident ID number, a phone or a name, and how each is masked.
_ANSWER_KEYS = {
    "id_number": mask_resident_id, "resident_id": mask_resident_id, "idcard": mask_resident_id,
    "phone": mask_phone, "mobile": mask_phone, "telephone": mask_phone,
    "name": mask_name, "patient_name": mask_name, "full_name": mask_name, "resident_name": mask_name,
}


def mask_answer(caller: Caller, answer):
    """A capability API answer (dicts, lists, FHIR resources inside) with resident ID numbers, phones and
    names masked when ``caller``'s role does not need them (``masks``); unchanged otherwise. Only the keys
    of ``_ANSWER_KEYS`` holding strings, and person resources, are touched; the answer is not modified
    in place."""
    if not masks(caller):
        return answer
    return _mask_any(answer)


def _mask_any(value):
    if isinstance(value, list):
        return [_mask_any(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("resourceType") in PERSON_TYPES:
        return mask_person(value)
    out = {}
    for key, item in value.items():
        fn = _ANSWER_KEYS.get(key)
        if fn is not None and isinstance(item, str) and item:
            out[key] = fn(item)
        else:
            out[key] = _mask_any(item)
    return out
