"""Doctors and institutions, from the registry (``hutong.registry.service``: ``find_institution``,
``practitioners_of``) and the PractitionerRole resources it keeps.

A doctor is identified by the ``PractitionerRole`` id: the role carries the institution, the
department (``specialty`` in the national department list) and whether the doctor takes online
consultations (code ``online-consultation``). Pharmacists carry the code ``pharmacist``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hutong.consult import vocab
from hutong.core.clock import SHANGHAI
from hutong.core.errors import FhirError
from hutong.registry import hours as registry_hours
from hutong.registry import service as registry


@dataclass(frozen=True)
class Doctor:
    """One PractitionerRole as the consult capability sees it."""

    role: str            # PractitionerRole/…
    practitioner: str    # Practitioner/… ("" when the role names none)
    name: str
    org: str             # Organization/…
    org_name: str
    departments: tuple[str, ...]
    online: bool
    pharmacist: bool


def _codes(concepts: list | None) -> set[str]:
    return {c.get("code", "") for cc in concepts or () for c in cc.get("coding", ())}


def _ref_id(ref: str, res_type: str) -> str:
    if not isinstance(ref, str) or not ref.startswith(res_type + "/"):
        raise FhirError(400, "invalid", f"expected a {res_type} reference, got {str(ref)[:80]!r}")
    return ref.split("/", 1)[1]


def doctor(tx, role_ref: str) -> Doctor:
    """The doctor of ``PractitionerRole/…`` (404 when unknown or inactive)."""
    rid = _ref_id(role_ref, "PractitionerRole")
    found = tx.read("PractitionerRole", rid)
    if found is None or found.deleted or found.resource.get("active") is False:
        raise FhirError(404, "not-found", f"医生不存在或已停用 (unknown doctor {role_ref})")
    role = found.resource
    return _doctor(tx, role)


def _doctor(tx, role: dict) -> Doctor:
    org_ref = (role.get("organization") or {}).get("reference", "")
    pra_ref = (role.get("practitioner") or {}).get("reference", "")
    name = (role.get("practitioner") or {}).get("display", "")
    if not name and pra_ref.startswith("Practitioner/"):
        pra = tx.read("Practitioner", pra_ref.split("/", 1)[1])
        if pra is not None and not pra.deleted:
            names = pra.resource.get("name") or [{}]
            name = names[0].get("text") or "".join([names[0].get("family", "")] + names[0].get("given", []))
    org_name = (role.get("organization") or {}).get("display", "")
    if not org_name and org_ref.startswith("Organization/"):
        org = tx.read("Organization", org_ref.split("/", 1)[1])
        org_name = org.resource.get("name", "") if org is not None and not org.deleted else ""
    depts = tuple(c.get("code", "") for cc in role.get("specialty") or () for c in cc.get("coding", ())
                  if c.get("code"))
    codes = _codes(role.get("code"))
    return Doctor(f"PractitionerRole/{role['id']}", pra_ref, name, org_ref, org_name, depts,
                  "online-consultation" in codes, "pharmacist" in codes)


def organization(tx, org_ref: str) -> dict:
    """The Organization resource (404 when unknown)."""
    oid = _ref_id(org_ref, "Organization")
    if registry.find_institution(tx, id=oid) is None:
        raise FhirError(404, "not-found", f"机构不存在 (unknown institution {org_ref})")
    return tx.read("Organization", oid).resource


def org_level(org: dict) -> str:
    """Which of the five telemedicine levels an institution is at (省, 市, 县, 乡, 村).

    An explicit ``Organization.type`` coding in ``vocab.LEVEL`` terms wins; otherwise the level
    follows from the kind and grade the simulator and registry record: village clinics (村卫生室),
    township and community health centres (乡镇卫生院, 社区卫生服务中心), secondary hospitals
    (county level), tertiary hospitals (city level; provincial when they have no parent
    organisation and sit in the provincial capital's platform, 2201)."""
    codes = {c.get("system"): c.get("code") for t in org.get("type") or () for c in t.get("coding", ())}
    explicit = codes.get(f"{vocab.BASE}/CodeSystem/telemedicine-level")
    if explicit in vocab.LEVELS:
        return explicit
    kind = codes.get(vocab.INSTITUTION_KIND, "")
    level = codes.get(vocab.INSTITUTION_LEVEL, "") or ""
    if kind == "village-clinic":
        return "village"
    if kind in ("thc", "chc"):
        return "township"
    if level.startswith("3"):
        platforms = [e.get("valueCoding", {}).get("code") for e in org.get("extension") or ()
                     if e.get("url", "").endswith("/city-platform")]
        return "province" if "2201" in platforms and not org.get("partOf") else "city"
    if level.startswith("2"):
        return "county"
    return "township" if level.startswith("1") else "county"


def level_rank(level: str) -> int:
    """0 for the province, 4 for a village: a smaller rank is a higher level."""
    return vocab.LEVELS.index(level)


def on_duty(role: dict, at: datetime | None = None) -> bool:
    """Whether a doctor is on duty at ``at`` (default now): the role's ``availableTime`` and
    ``notAvailable`` in the registry when it has them; a role without hours follows the platform's
    consultation hours (checked by the service levels) and counts as on duty here."""
    if not role.get("availableTime"):
        return True
    when = at or datetime.now(SHANGHAI)
    return registry_hours.open_at(role.get("availableTime"), when, role.get("notAvailable"))


def online_doctors(tx, org_ref: str, department: str | None, at: datetime | None = None) -> list[Doctor]:
    """Doctors of ``org_ref`` who take online consultations and are on duty at ``at`` (default now), in
    ``department`` (or any), by id; the institution's roles come from the registry."""
    _ref_id(org_ref, "Organization")
    out = []
    for c in sorted(registry.practitioners_of(tx, org_ref, department=department, online=True),
                    key=lambda c: c.role_id):
        found = tx.read("PractitionerRole", c.role_id)
        if found is None or found.deleted or not on_duty(found.resource, at):
            continue
        d = _doctor(tx, found.resource)
        if d.online:
            out.append(d)
    return out


def offered_departments(tx, org_ref: str) -> list[str]:
    """Department codes an institution's online doctors cover."""
    return sorted({c for d in online_doctors(tx, org_ref, None) for c in d.departments})
