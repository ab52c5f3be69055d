"""The registry's rules for Organization, Location and Practitioner writes through the FHIR API.

Registered as the capability's ``write_checks``: every create, update or patch of these types runs
them after R4's own validation, and an error refuses the write with 422 and an OperationOutcome whose
``expression`` names the element (``Organization.identifier[0].value``). Messages: Chinese first,
English after " / " (the API's clients are hospital systems; operators read the Chinese).

Rules: a 统一社会信用代码 (GB 32100) with a wrong check character; a division code (GB/T 2260) that
is not in the shipped table; an institution level, professional title or role code outside the
registry's code systems; a position outside WGS-84's range or far outside the province."""

from __future__ import annotations

from hutong.china import divisions as dv
from hutong.china.ids import is_valid_uscc
from hutong.core.errors import Issue
from hutong.registry import vocab

#: Professional titles the registry knows (``Practitioner.qualification.code``, ``PractitionerRole.code``).
TITLES: dict[str, str] = {
    "chief": "主任医师", "associate-chief": "副主任医师", "attending": "主治医师", "resident": "住院医师",
    "physician": "医师", "village-doctor": "乡村医生",
}
#: Roles beyond titles (``PractitionerRole.code`` in the role system).
ROLES: dict[str, str] = {"online-consultation": "医生在线", "pharmacist": "药师"}

# China's extent (WGS-84). A position is not refused for lying outside the province — a registry
# also holds referral hospitals elsewhere, and test data (Synthea) lies in Massachusetts — but a pair
# whose latitude would be a Chinese longitude and whose longitude a Chinese latitude is latitude and
# longitude swapped, the common slip when coordinates are copied from a Chinese map service.
_CHINA_LAT = (3.0, 54.0)
_CHINA_LON = (73.0, 136.0)


def _error(diagnostics: str, expression: str) -> Issue:
    return Issue("error", "business-rule", diagnostics, [expression])


def _divisions(res: dict, path: str, exts) -> list[Issue]:
    out = []
    for i, ext in enumerate(exts or ()):
        if isinstance(ext, dict) and ext.get("url") == vocab.EXT_DIVISION:
            code = ext.get("valueCode")
            if not isinstance(code, str) or not dv.is_known_division(code):
                out.append(_error(f"行政区划代码不存在 / unknown GB/T 2260 division code {str(code)[:20]!r}",
                                  f"{path}.extension[{i}].valueCode"))
    return out


def _codings(concepts, path: str, system: str, known: dict, what: str) -> list[Issue]:
    out = []
    for i, concept in enumerate(concepts or ()):
        if not isinstance(concept, dict):
            continue
        for j, coding in enumerate(concept.get("coding") or ()):
            if isinstance(coding, dict) and coding.get("system") == system and coding.get("code") not in known:
                out.append(_error(f"{what} / unknown code {str(coding.get('code'))[:20]!r} in {system}",
                                  f"{path}[{i}].coding[{j}].code"))
    return out


def check_organization(res: dict) -> list[Issue]:
    """USCC check character, division code, institution level."""
    issues = []
    for i, ident in enumerate(res.get("identifier") or ()):
        if isinstance(ident, dict) and ident.get("system") == vocab.USCC:
            value = ident.get("value")
            if not isinstance(value, str) or not is_valid_uscc(value):
                issues.append(_error(f"统一社会信用代码校验失败 / invalid unified social credit code {str(value)[:20]!r}",
                                     f"Organization.identifier[{i}].value"))
    issues += _divisions(res, "Organization", res.get("extension"))
    issues += _codings(res.get("type"), "Organization.type", vocab.INSTITUTION_LEVEL, vocab.LEVELS, "机构等级代码无效")
    issues += _codings(res.get("type"), "Organization.type", vocab.INSTITUTION_KIND, vocab.KINDS, "机构类别代码无效")
    for i, addr in enumerate(res.get("address") or ()):
        if isinstance(addr, dict):
            issues += _divisions(res, f"Organization.address[{i}]", addr.get("extension"))
    return issues


def check_location(res: dict) -> list[Issue]:
    """Division code of the location or its address; a position with latitude and longitude swapped."""
    issues = _divisions(res, "Location", res.get("extension"))
    addr = res.get("address")
    if isinstance(addr, dict):
        issues += _divisions(res, "Location.address", addr.get("extension"))
    pos = res.get("position")
    if isinstance(pos, dict):
        lat, lon = pos.get("latitude"), pos.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            if not -90 <= lat <= 90:
                issues.append(_error(f"纬度超出范围 / latitude {lat} is not between -90 and 90 (latitude and longitude "
                                     "swapped?)", "Location.position.latitude"))
            elif _CHINA_LON[0] <= lat <= _CHINA_LON[1] and _CHINA_LAT[0] <= lon <= _CHINA_LAT[1]:
                issues.append(_error(f"经纬度疑似颠倒 / latitude {lat} and longitude {lon} look swapped (WGS-84 "
                                     "latitude first; convert GCJ-02/BD-09 first)", "Location.position.latitude"))
    return issues


def check_practitioner(res: dict) -> list[Issue]:
    """Professional-title codes of the qualifications; a license number that is digits."""
    issues = []
    for i, q in enumerate(res.get("qualification") or ()):
        if isinstance(q, dict) and isinstance(q.get("code"), dict):
            issues += _codings([q["code"]], f"Practitioner.qualification[{i}].code", vocab.TITLE, TITLES,
                               "职称代码无效")
    for i, ident in enumerate(res.get("identifier") or ()):
        if isinstance(ident, dict) and ident.get("system") == vocab.LICENSE:
            value = ident.get("value")
            if not isinstance(value, str) or not value.isdigit() or not 9 <= len(value) <= 27:
                issues.append(_error(f"医师执业证书编码格式错误 / malformed physician license number {str(value)[:30]!r}",
                                     f"Practitioner.identifier[{i}].value"))
    for i, addr in enumerate(res.get("address") or ()):
        if isinstance(addr, dict):
            issues += _divisions(res, f"Practitioner.address[{i}]", addr.get("extension"))
    return issues


def check_practitioner_role(res: dict) -> list[Issue]:
    """Title and role codes of a PractitionerRole."""
    issues = _codings(res.get("code"), "PractitionerRole.code", vocab.TITLE, TITLES, "职称代码无效")
    return issues + _codings(res.get("code"), "PractitionerRole.code", vocab.ROLE, ROLES, "角色代码无效")


WRITE_CHECKS = {
    "Organization": check_organization,
    "Location": check_location,
    "Practitioner": check_practitioner,
    "PractitionerRole": check_practitioner_role,
}
