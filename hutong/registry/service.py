"""The registry's Python API: "which institution, which department, which doctor".

Plain functions on a ``Store`` (or an open transaction ``tx``) that other capabilities call::

    from hutong.registry import service as registry
    inst = registry.find_institution(store, uscc="12220000…")       # or id=, name=
    registry.departments_of(store, inst.id)                          # [Department(code="03.01", …), …]
    registry.practitioners_of(store, inst.id, department="03.01")    # [Clinician(…), …]
    registry.institutions(store, division="220102", level="3A")      # filters: division, platform, level, tier, kind
    registry.consortium_members(store, inst.id)                      # a 医联体's member institutions
    registry.role_of(store, "prr-000123")                            # doctor → institution and department

Everything is read from the FHIR resources (Organization, Location, HealthcareService,
PractitionerRole, Practitioner) through the search index, so what a hospital system sees over
mCSD and what a capability sees here are the same data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hutong.china import divisions as dv
from hutong.china.ids import is_valid_uscc
from hutong.registry import departments, hours, vocab


@dataclass
class Institution:
    """An institution (Organization) as other capabilities need it."""

    id: str
    name: str
    active: bool
    uscc: str | None
    division: str | None  # GB/T 2260 code of its seat (6, 9 or 12 digits)
    platform: str | None  # city platform code (2201 … 2290)
    level: str | None  # 3A …
    level_text: str | None  # 三级甲等 …
    tier: str | None  # tertiary | secondary | primary
    kind: str | None  # general, tcm, chc, thc, village-clinic …
    part_of: str | None  # parent Organization id (a consortium's lead, a township's county hospital)
    consortia: list[str] = field(default_factory=list)  # Organization ids of the 医联体 it belongs to
    location_id: str | None = None
    position: tuple[float, float] | None = None  # WGS-84 (lat, lon)


@dataclass
class Department:
    """A department or service (HealthcareService) of an institution."""

    id: str
    name: str
    kind: str  # department | fever-clinic | internet-hospital | …
    code: str | None  # 诊疗科目 code (03.01 …) for departments
    hours: str
    active: bool


@dataclass
class Clinician:
    """A practitioner's role at an institution (PractitionerRole)."""

    role_id: str
    practitioner_id: str | None
    name: str | None
    institution_id: str | None
    department: str | None  # 诊疗科目 code
    title: str | None  # 主任医师 …
    online: bool
    active: bool


@contextmanager
def _reading(source) -> Iterator:
    """A read transaction from a Store, or the transaction given."""
    if hasattr(source, "conn") and hasattr(source, "search_ids"):
        yield source
    else:
        with source.read() as tx:
            yield tx


def _coding(concepts, system: str) -> dict | None:
    for cc in concepts or ():
        for c in cc.get("coding") or ():
            if c.get("system") == system:
                return c
    return None


def _ext(res: dict, url: str) -> dict | None:
    return next((e for e in res.get("extension") or () if e.get("url") == url), None)


def institution_from(res: dict) -> Institution:
    """An ``Institution`` from an Organization resource."""
    uscc = next((i.get("value") for i in res.get("identifier") or () if i.get("system") == vocab.USCC), None)
    div = (_ext(res, vocab.EXT_DIVISION) or {}).get("valueCode")
    plat = ((_ext(res, vocab.EXT_PLATFORM) or {}).get("valueCoding") or {}).get("code") or (
        dv.platform_of(div) if div else None)
    level = (_coding(res.get("type"), vocab.INSTITUTION_LEVEL) or {}).get("code")
    kind = (_coding(res.get("type"), vocab.INSTITUTION_KIND) or {}).get("code")
    part = (res.get("partOf") or {}).get("reference", "")
    return Institution(
        id=res["id"], name=res.get("name", ""), active=res.get("active", True) is not False, uscc=uscc,
        division=div, platform=plat, level=level, level_text=vocab.LEVELS.get(level or ""),
        tier=vocab.TIERS.get(level[0]) if level else None, kind=kind,
        part_of=part.split("/", 1)[1] if part.startswith("Organization/") else None,
        consortia=[e["valueReference"]["reference"].split("/", 1)[1] for e in res.get("extension") or ()
                   if e.get("url") == EXT_CONSORTIUM and (e.get("valueReference") or {}).get("reference", "")
                   .startswith("Organization/")],
    )


#: Organization: membership of a medical consortium (医联体), ``valueReference`` to the consortium's Organization.
EXT_CONSORTIUM = f"{vocab.BASE}/StructureDefinition/consortium-member"


def _load(tx, rtype: str, ids) -> list[dict]:
    out = []
    for i in ids:
        s = tx.read(rtype, i)
        if s is not None and not s.deleted:
            out.append(s.resource)
    return out


def _with_location(tx, inst: Institution) -> Institution:
    ids = tx.search_ids("Location", [("organization", f"Organization/{inst.id}")], limit=1)
    for loc in _load(tx, "Location", ids):
        inst.location_id = loc["id"]
        pos = loc.get("position") or {}
        if "latitude" in pos and "longitude" in pos:
            inst.position = (pos["latitude"], pos["longitude"])
    return inst


def find_institution(source, *, id: str | None = None, uscc: str | None = None,
                     name: str | None = None) -> Institution | None:
    """One institution by id, unified social credit code, or exact name (None when none matches)."""
    with _reading(source) as tx:
        if id:
            found = _load(tx, "Organization", [id.removeprefix("Organization/")])
        elif uscc:
            found = _load(tx, "Organization", tx.search_ids("Organization", [("identifier", f"{vocab.USCC}|{uscc}")], limit=1))
        elif name:
            found = _load(tx, "Organization", tx.search_ids("Organization", [("name:exact", name)], limit=1))
        else:
            raise ValueError("give id, uscc or name")
        return _with_location(tx, institution_from(found[0])) if found else None


def institutions(source, *, division: str | None = None, platform: str | None = None, level: str | None = None,
                 tier: str | None = None, kind: str | None = None, active_only: bool = True,
                 limit: int = 5000) -> list[Institution]:
    """Institutions filtered by division prefix (a county ``220102`` includes its townships and villages),
    platform, level (``3A``), tier (``tertiary``/``secondary``/``primary``) and kind."""
    params: list[tuple[str, str]] = [("type", f"{vocab.ORG_TYPE}|prov")]
    if level:
        params.append(("type", f"{vocab.INSTITUTION_LEVEL}|{level}"))
    if kind:
        params.append(("type", f"{vocab.INSTITUTION_KIND}|{kind}"))
    if active_only:
        params.append(("active", "true"))
    with _reading(source) as tx:
        out = []
        for res in _load(tx, "Organization", tx.search_ids("Organization", params, limit=limit)):
            inst = institution_from(res)
            if division and not (inst.division or "").startswith(division):
                continue
            if platform and inst.platform != platform:
                continue
            if tier and inst.tier != tier:
                continue
            out.append(inst)
        return out


def departments_of(source, institution_id: str, *, kind: str | None = None,
                   active_only: bool = True) -> list[Department]:
    """The departments and services (HealthcareService) an institution provides, in catalogue order."""
    params = [("organization", f"Organization/{institution_id.removeprefix('Organization/')}")]
    if kind:
        params.append(("service-type", f"{vocab.SERVICE}|{kind}"))
    if active_only:
        params.append(("active", "true"))
    with _reading(source) as tx:
        out = []
        for res in _load(tx, "HealthcareService", tx.search_ids("HealthcareService", params)):
            dept = _coding(res.get("specialty"), vocab.DEPARTMENT)
            k = (_coding(res.get("type"), vocab.SERVICE) or {}).get("code") or "department"
            out.append(Department(res["id"], res.get("name") or (dept or {}).get("display", ""), k,
                                  (dept or {}).get("code"), hours.describe(res.get("availableTime")),
                                  res.get("active", True) is not False))
        out.sort(key=lambda d: (d.kind != "department", d.code or "~", d.id))
        return out


def _clinician(res: dict) -> Clinician:
    ref = lambda r: (r or {}).get("reference", "").split("/", 1)[-1] or None  # noqa: E731
    title = _coding(res.get("code"), vocab.TITLE)
    online = any(c.get("code") == "online-consultation" for cc in res.get("code") or () for c in cc.get("coding") or ()
                 if c.get("system") == vocab.ROLE)
    return Clinician(res["id"], ref(res.get("practitioner")), (res.get("practitioner") or {}).get("display"),
                     ref(res.get("organization")), (_coding(res.get("specialty"), vocab.DEPARTMENT) or {}).get("code"),
                     (title or {}).get("display"), online, res.get("active", True) is not False)


def practitioners_of(source, institution_id: str, *, department: str | None = None, online: bool | None = None,
                     active_only: bool = True, limit: int = 2000) -> list[Clinician]:
    """The practitioners (roles) of an institution, optionally of one department or only online doctors."""
    params = [("organization", f"Organization/{institution_id.removeprefix('Organization/')}")]
    if department:
        params.append(("specialty", f"{vocab.DEPARTMENT}|{department}"))
    if online:
        params.append(("role", f"{vocab.ROLE}|online-consultation"))
    if active_only:
        params.append(("active", "true"))
    with _reading(source) as tx:
        out = [_clinician(r) for r in _load(tx, "PractitionerRole", tx.search_ids("PractitionerRole", params, limit=limit))]
        if online is False:
            out = [c for c in out if not c.online]
        return out


def role_of(source, role_id: str) -> Clinician | None:
    """A practitioner role by id (the doctor, their institution and department)."""
    with _reading(source) as tx:
        found = _load(tx, "PractitionerRole", [role_id.removeprefix("PractitionerRole/")])
        return _clinician(found[0]) if found else None


def roles_of_practitioner(source, practitioner_id: str) -> list[Clinician]:
    """Every role a practitioner holds (a doctor may practise at several institutions: 多点执业)."""
    with _reading(source) as tx:
        ids = tx.search_ids("PractitionerRole", [("practitioner", f"Practitioner/{practitioner_id}")])
        return [_clinician(r) for r in _load(tx, "PractitionerRole", ids)]


def parents_of(source, institution_id: str, max_depth: int = 8) -> list[Institution]:
    """The ``partOf`` chain of an institution upward (village clinic → township centre → county hospital)."""
    out: list[Institution] = []
    with _reading(source) as tx:
        cur = institution_id
        seen = {cur}
        for _ in range(max_depth):
            found = _load(tx, "Organization", [cur])
            if not found:
                break
            inst = institution_from(found[0])
            if not inst.part_of or inst.part_of in seen:
                break
            parent = _load(tx, "Organization", [inst.part_of])
            if not parent:
                break
            out.append(institution_from(parent[0]))
            cur = inst.part_of
            seen.add(cur)
    return out


def consortium_members(source, consortium_id: str) -> list[Institution]:
    """Institutions whose ``partOf`` is the consortium's lead or that carry the consortium-member extension."""
    cid = consortium_id.removeprefix("Organization/")
    with _reading(source) as tx:
        ids = set(tx.search_ids("Organization", [("partof", f"Organization/{cid}")]))
        insts = [institution_from(r) for r in _load(tx, "Organization", sorted(ids))]
        return sorted(insts, key=lambda i: i.id)


def check_organization(res: dict) -> list[str]:
    """Registry rules an Organization must meet beyond FHIR's (Chinese messages, English after '/'):
    a valid 统一社会信用代码, a known GB/T 2260 division code, a known level code, a name."""
    problems: list[str] = []
    if not (res.get("name") or "").strip():
        problems.append("机构名称必填 / name is required")
    for ident in res.get("identifier") or ():
        if ident.get("system") == vocab.USCC and not is_valid_uscc(ident.get("value", "")):
            problems.append(f"统一社会信用代码校验失败 / invalid unified social credit code {ident.get('value')!r}")
    div = (_ext(res, vocab.EXT_DIVISION) or {}).get("valueCode")
    if div is not None and not dv.is_known_division(div):
        problems.append(f"行政区划代码不存在 / unknown GB/T 2260 division code {div!r}")
    level = _coding(res.get("type"), vocab.INSTITUTION_LEVEL)
    if level is not None and level.get("code") not in vocab.LEVELS:
        problems.append(f"机构等级代码无效 / unknown institution level {level.get('code')!r}")
    return problems


def department_name(code: str) -> str | None:
    """The national list's name for a department code (``03.01`` → 呼吸内科专业)."""
    return departments.department_name(code)
