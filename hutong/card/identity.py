"""Who a card belongs to: the person of the patient index (``hutong.mpi``), which links the Patient
records of one resident across institutions; a Patient the index has not linked yet is its own person."""

from __future__ import annotations

import re

from hutong.china.ids import is_valid_resident_id, normalize_resident_id
from hutong.mpi import service as mpi_service

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
MRN_PREFIX = "urn:hutong:mrn:"
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def read_patient(store, patient_id: str) -> dict | None:
    """The current Patient resource, or None when unknown or deleted."""
    with store.read() as tx:
        found = tx.read("Patient", patient_id)
    if found is None or found.deleted:
        return None
    return found.resource


def linked_patients(store, patient_id: str) -> list[dict]:
    """Patient dicts of the same person (the given one included; first in the list)."""
    linked = list(mpi_service.linked_patients(store, patient_id) or [])
    linked.sort(key=lambda p: p.get("id") != patient_id)
    if linked:
        return linked
    patient = read_patient(store, patient_id)
    return [patient] if patient is not None else []


def person_for_patient(store, patient_id: str) -> str | None:
    """The index's Person id for a Patient, or None before the index has linked it."""
    return mpi_service.person_for_patient(store, patient_id)


def subject_for_patient(store, patient_id: str) -> str:
    """The key "one live card per person" is enforced on: ``Person/{id}``, else ``Patient/{id}``."""
    person = person_for_patient(store, patient_id)
    if person:
        return person if person.startswith("Person/") else f"Person/{person}"
    return f"Patient/{patient_id}"


def resident_ids(patient: dict) -> list[str]:
    """Resident ID numbers on a Patient (normalised)."""
    out = []
    for ident in patient.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == RESIDENT_ID_SYSTEM and isinstance(ident.get("value"), str):
            out.append(normalize_resident_id(ident["value"]))
    return out


def best_resident_id(patients: list[dict]) -> str | None:
    """A valid 18-digit resident ID from the first record that has one."""
    fallback = None
    for p in patients:
        for rid in resident_ids(p):
            if is_valid_resident_id(rid):
                return rid
            fallback = fallback or rid
    return fallback


def display_name(patient: dict) -> str:
    """The official (or first) name as written in Chinese: family name then given names, no space."""
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    if not names:
        return ""
    official = next((n for n in names if n.get("use") == "official"), names[0])
    if official.get("text"):
        return str(official["text"])
    given = "".join(g for g in official.get("given") or [] if isinstance(g, str))
    return f"{official.get('family') or ''}{given}"


def _norm_name(value: str) -> str:
    return re.sub(r"[\s·•.]", "", value or "")


def name_matches(patient: dict, name: str) -> bool:
    """True when ``name`` equals one of the Patient's names (spaces and middle dots ignored)."""
    want = _norm_name(name)
    if not want:
        return False
    for n in patient.get("name") or []:
        if not isinstance(n, dict):
            continue
        given = "".join(g for g in n.get("given") or [] if isinstance(g, str))
        for candidate in (n.get("text") or "", f"{n.get('family') or ''}{given}"):
            if candidate and _norm_name(candidate) == want:
                return True
    return False


def phones(patient: dict) -> list[str]:
    """Phone numbers (digits only) on a Patient and its contacts."""
    out = []
    telecoms = list(patient.get("telecom") or [])
    for contact in patient.get("contact") or []:
        if isinstance(contact, dict):
            telecoms.extend(contact.get("telecom") or [])
    for t in telecoms:
        if isinstance(t, dict) and t.get("system") in (None, "phone", "sms") and isinstance(t.get("value"), str):
            digits = re.sub(r"\D", "", t["value"])
            if digits.startswith("86") and len(digits) == 13:
                digits = digits[2:]
            if digits:
                out.append(digits)
    return out


def institution_record(patients: list[dict], institution: str) -> dict | None:
    """That institution's own record number for the person: ``{"patient", "system", "value"}`` or None.

    An identifier belongs to the institution when its system is ``urn:hutong:mrn:{institution}``, its
    ``assigner`` is the Organization, or it is a medical-record-number (``MR``) identifier of a Patient whose
    ``managingOrganization`` is the institution.
    """
    org_ref = f"Organization/{institution}"
    mrn_system = MRN_PREFIX + institution
    best = None
    for p in patients:
        managed = ((p.get("managingOrganization") or {}).get("reference") or "") == org_ref
        for ident in p.get("identifier") or []:
            if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
                continue
            system = ident.get("system") or ""
            assigner = ((ident.get("assigner") or {}).get("reference") or "") if isinstance(ident.get("assigner"), dict) else ""
            codes = {
                c.get("code")
                for c in ((ident.get("type") or {}).get("coding") or [])
                if isinstance(c, dict) and c.get("system") in (None, _V2_0203)
            }
            if system == mrn_system or assigner == org_ref:
                return {"patient": f"Patient/{p.get('id')}", "system": system or None, "value": ident["value"]}
            if managed and "MR" in codes and best is None:
                best = {"patient": f"Patient/{p.get('id')}", "system": system or None, "value": ident["value"]}
    return best


def find_patients_by_resident_id(store, resident_id: str) -> list[str]:
    """Ids of Patients carrying this resident ID (18-digit, or the old 15-digit form of it).

    Uses the search index when the node has one; without it, scans Patients (correct, but linear).
    """
    rid = normalize_resident_id(resident_id)
    wanted = {rid}
    if len(rid) == 18 and rid[6:8] == "19":
        wanted.add(rid[:6] + rid[8:17])  # the pre-1999 15-digit form
    from hutong.core.errors import FhirError

    try:
        with store.read() as tx:
            ids: list[str] = []
            for value in sorted(wanted):
                for pid in tx.search_ids("Patient", [("identifier", f"{RESIDENT_ID_SYSTEM}|{value}")]):
                    if pid not in ids:
                        ids.append(pid)
            return ids
    except FhirError as exc:
        if exc.status != 501:
            raise
    return _scan_patients(store, wanted)


def _scan_patients(store, wanted: set[str]) -> list[str]:
    from sqlalchemy import select

    from hutong.store import schema

    r = schema.resource.c
    out = []
    with store.read() as tx:
        rows = tx.conn.execute(
            select(r.res_id, r.content).where(r.res_type == "Patient", r.deleted.is_(False))
        )
        for res_id, content in rows:
            if content and any(w in content for w in wanted):
                import orjson

                if set(resident_ids(orjson.loads(content))) & wanted:
                    out.append(res_id)
    return out
