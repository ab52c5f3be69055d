"""The quality rules: what is checked on every resource that arrives (pure functions, no database).

Each ``Rule`` names one check on one element, in one of two groups:

- ``conformance``: the data is there but wrong — codes outside the required code systems or
  malformed (LOINC check digit, ICD-10 form, GB/T 3304 民族, GB/T 2260 division codes), identifiers
  in the wrong format (the resident ID's ISO 7064 check character, the 统一社会信用代码's GB 32100
  check character);
- ``completeness``: data the national basic data sets (WS 363 data elements, WS 445 EMR basic data
  sets) require is missing — a lab result without a unit or a reference range, an outpatient visit
  without a coded diagnosis, a patient without a valid resident ID.

``evaluate(resource)`` returns, for every rule that applies to the resource, whether it passed.
The FHIR validator has already refused what R4 itself forbids (required bindings, cardinality);
these rules measure what R4 allows but the province requires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from hutong.china.ids import is_valid_resident_id, is_valid_uscc
from hutong.quality import codes
from hutong.web.i18n import N_

RESIDENT_ID_SYSTEMS = frozenset({"urn:oid:2.16.156.10011.1.3"})
USCC_SYSTEMS = frozenset({"https://hutong.example/fhir/sid/uscc", "urn:oid:2.16.156.10011.1.19"})
ETHNICITY_URL = "https://hutong.example/fhir/StructureDefinition/ethnicity"
DIVISION_URL = "https://hutong.example/fhir/StructureDefinition/division-code"

Group = Literal["conformance", "completeness"]


@dataclass(frozen=True)
class Rule:
    """One check: ``id`` (stable, used in counts and exports), the element it looks at, its group,
    and what it means in Chinese and English."""

    id: str
    res_type: str
    element: str
    group: Group
    zh: str  # message id (shown through the page's language)
    en: str


@dataclass(frozen=True)
class Outcome:
    rule: str
    ok: bool
    detail: str = ""  # what was wrong (a code, never a personal identifier in clear)


RULES: tuple[Rule, ...] = (
    Rule("lab-loinc", "Observation", "Observation.code.coding", "conformance",
         N_("检验项目未使用LOINC编码"), "lab result without a LOINC code"),
    Rule("loinc-format", "Observation", "Observation.code.coding.code", "conformance",
         N_("LOINC编码格式或校验位错误"), "LOINC code malformed or with a wrong check digit"),
    Rule("lab-unit", "Observation", "Observation.valueQuantity.unit", "completeness",
         N_("检验结果缺少单位"), "lab result without a unit"),
    Rule("lab-range", "Observation", "Observation.referenceRange", "completeness",
         N_("检验结果缺少参考范围"), "lab result without a reference range"),
    Rule("dx-icd10", "Condition", "Condition.code.coding", "conformance",
         N_("诊断未使用ICD-10编码"), "diagnosis without an ICD-10 code"),
    Rule("icd10-format", "Condition", "Condition.code.coding.code", "conformance",
         N_("ICD-10编码格式错误"), "ICD-10 code malformed"),
    Rule("visit-dx", "Encounter", "Encounter.reasonCode / Encounter.diagnosis", "completeness",
         N_("门诊就诊缺少诊断编码"), "outpatient visit without a coded diagnosis"),
    Rule("visit-icd10-format", "Encounter", "Encounter.reasonCode.coding.code", "conformance",
         N_("就诊原因ICD-10编码格式错误"), "visit reason ICD-10 code malformed"),
    Rule("patient-resident-id", "Patient", "Patient.identifier", "completeness",
         N_("患者缺少有效身份证号"), "patient without a valid resident ID"),
    Rule("resident-id-check", "Patient", "Patient.identifier.value", "conformance",
         N_("身份证号校验位或格式错误"), "resident ID with a wrong check character or format"),
    Rule("ethnicity-code", "Patient", "Patient.extension(ethnicity)", "conformance",
         N_("民族代码不在GB/T 3304中"), "ethnic group code outside GB/T 3304"),
    Rule("division-code", "Patient", "Patient.address.extension(division-code)", "conformance",
         N_("行政区划代码不在GB/T 2260中"), "division code outside GB/T 2260"),
    Rule("org-uscc", "Organization", "Organization.identifier", "completeness",
         N_("机构缺少统一社会信用代码"), "institution without a unified social credit code"),
    Rule("uscc-check", "Organization", "Organization.identifier.value", "conformance",
         N_("统一社会信用代码校验位或格式错误"), "unified social credit code with a wrong check character"),
    Rule("report-result", "DiagnosticReport", "DiagnosticReport.result", "completeness",
         N_("检验报告未关联结果"), "report without results"),
    Rule("doc-type", "DocumentReference", "DocumentReference.type", "completeness",
         N_("共享文档缺少文档类型"), "shared document without a document type"),
)
RULE_BY_ID = {r.id: r for r in RULES}
TYPES = frozenset(r.res_type for r in RULES)


def _codings(concept, systems) -> list[dict]:
    return [c for c in (concept or {}).get("coding") or [] if isinstance(c, dict) and c.get("system") in systems]


def _is_lab(obs: dict) -> bool:
    for cat in obs.get("category") or []:
        for c in (cat or {}).get("coding") or []:
            if (c or {}).get("code") == "laboratory":
                return True
    return False


def _observation(r: dict) -> Iterator[Outcome]:
    if not _is_lab(r):
        return
    loinc = _codings(r.get("code"), {codes.LOINC_SYSTEM})
    yield Outcome("lab-loinc", bool(loinc))
    for c in loinc:
        code = str(c.get("code") or "")
        yield Outcome("loinc-format", codes.is_valid_loinc(code), code[:40])
    q = r.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        yield Outcome("lab-unit", bool(q.get("unit") or q.get("code")))
        yield Outcome("lab-range", bool(r.get("referenceRange")))


def _condition(r: dict) -> Iterator[Outcome]:
    icd = _codings(r.get("code"), codes.ICD10_SYSTEMS)
    yield Outcome("dx-icd10", bool(icd))
    for c in icd:
        code = str(c.get("code") or "")
        yield Outcome("icd10-format", codes.is_valid_icd10(code), code[:40])


def _encounter(r: dict) -> Iterator[Outcome]:
    icd = [c for rc in r.get("reasonCode") or [] for c in _codings(rc, codes.ICD10_SYSTEMS)]
    for c in icd:
        code = str(c.get("code") or "")
        yield Outcome("visit-icd10-format", codes.is_valid_icd10(code), code[:40])
    if (r.get("class") or {}).get("code") == "AMB" and r.get("status") == "finished":
        yield Outcome("visit-dx", bool(icd) or bool(r.get("diagnosis")))


def _patient(r: dict) -> Iterator[Outcome]:
    ids = [i for i in r.get("identifier") or [] if isinstance(i, dict) and i.get("system") in RESIDENT_ID_SYSTEMS]
    valid = False
    for i in ids:
        ok = is_valid_resident_id(str(i.get("value") or ""))
        valid = valid or ok
        yield Outcome("resident-id-check", ok)  # no detail: the number is personal data
    yield Outcome("patient-resident-id", valid)
    for ext in r.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == ETHNICITY_URL:
            code = str((ext.get("valueCoding") or {}).get("code") or ext.get("valueCode") or "")
            yield Outcome("ethnicity-code", codes.is_valid_ethnicity(code), code[:20])
    for addr in r.get("address") or []:
        for ext in (addr or {}).get("extension") or []:
            if isinstance(ext, dict) and ext.get("url") == DIVISION_URL:
                code = str(ext.get("valueCode") or "")
                yield Outcome("division-code", codes.is_valid_division(code), code[:20])


def _organization(r: dict) -> Iterator[Outcome]:
    ids = [i for i in r.get("identifier") or [] if isinstance(i, dict) and i.get("system") in USCC_SYSTEMS]
    yield Outcome("org-uscc", bool(ids))
    for i in ids:
        value = str(i.get("value") or "")
        yield Outcome("uscc-check", is_valid_uscc(value), value[:20])


def _report(r: dict) -> Iterator[Outcome]:
    if r.get("status") in ("final", "amended", "corrected") and _is_lab_report(r):
        yield Outcome("report-result", bool(r.get("result")))


def _is_lab_report(r: dict) -> bool:
    return any((c or {}).get("code") == "LAB" for cat in r.get("category") or [] for c in (cat or {}).get("coding") or [])


def _document(r: dict) -> Iterator[Outcome]:
    if r.get("status") == "current":
        yield Outcome("doc-type", bool((r.get("type") or {}).get("coding")))


_CHECKS: dict[str, Callable[[dict], Iterator[Outcome]]] = {
    "Observation": _observation, "Condition": _condition, "Encounter": _encounter, "Patient": _patient,
    "Organization": _organization, "DiagnosticReport": _report, "DocumentReference": _document,
}


def evaluate(resource: dict | None) -> list[Outcome]:
    """Every applicable rule's outcome for ``resource`` (empty for None or an unchecked type)."""
    if not resource:
        return []
    check = _CHECKS.get(resource.get("resourceType"))
    return list(check(resource)) if check else []
