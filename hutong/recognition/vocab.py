"""The recognition capability's words, defined once: URLs of its extensions and code systems,
categories, scopes, override reasons (the 2022 measures) and feedback outcomes."""

from __future__ import annotations

from typing import Literal

BASE = "https://hutong.example/fhir"

#: The tag every catalog ActivityDefinition carries (how the catalog is found in the store).
CATALOG_TAG_SYSTEM = f"{BASE}/CodeSystem/recognition"
CATALOG_TAG = "recognition-catalog"
CATEGORY_SYSTEM = f"{BASE}/CodeSystem/recognition-category"
SCOPE_SYSTEM = f"{BASE}/CodeSystem/recognition-scope"
OVERRIDE_SYSTEM = f"{BASE}/CodeSystem/recognition-override-reason"

EXT_VALIDITY = f"{BASE}/StructureDefinition/recognition-validity-days"     # valueInteger
EXT_VALIDITY_RULE = f"{BASE}/StructureDefinition/recognition-validity-rule"  # condition (valueCoding) + days
EXT_SCOPE = f"{BASE}/StructureDefinition/recognition-scope"                 # valueCode
EXT_QUALIFIED = f"{BASE}/StructureDefinition/recognition-qualified"         # institution | level + period
EXT_PRICE = f"{BASE}/StructureDefinition/recognition-price"                 # level + valueMoney

#: The HR mark (互认) recognised results carry.
HR_MARK = "HR"

Category = Literal["biochemistry", "immunology", "haematology", "microbiology", "clinical-microscopy",
                   "ultrasound", "x-ray", "ct", "mri", "electrophysiology", "nuclear-medicine"]
CATEGORIES: dict[str, tuple[str, str]] = {
    "biochemistry": ("临床生化", "clinical biochemistry"),
    "immunology": ("临床免疫", "clinical immunology"),
    "haematology": ("临床血液", "haematology"),
    "microbiology": ("临床微生物", "microbiology"),
    "clinical-microscopy": ("临床体液", "body fluids"),
    "ultrasound": ("超声", "ultrasound"),
    "x-ray": ("X线", "X-ray"),
    "ct": ("CT", "CT"),
    "mri": ("磁共振", "MRI"),
    "electrophysiology": ("电生理", "electrophysiology"),
    "nuclear-medicine": ("核医学", "nuclear medicine"),
}
LAB_CATEGORIES = frozenset({"biochemistry", "immunology", "haematology", "microbiology", "clinical-microscopy"})

Scope = Literal["province", "city", "consortium"]
SCOPES: dict[str, tuple[str, str]] = {
    "province": ("全省互认", "recognised across the province"),
    "city": ("本市互认", "recognised within the city"),
    "consortium": ("医联体内互认", "recognised within the medical consortium"),
}

#: Override reasons of the 2022 measures (医疗机构检查检验结果互认管理办法, 第十七条).
OverrideReason = Literal["condition-changed", "rapid-change", "critical-moment", "emergency", "assessment", "other"]
OVERRIDE_REASONS: dict[str, tuple[str, str]] = {
    "condition-changed": ("病情变化或检查检验结果与临床表现不符", "condition changed or result inconsistent with the clinical picture"),
    "rapid-change": ("检查检验项目在疾病进展中变化快", "values change rapidly in this disease"),
    "critical-moment": ("关键时间节点（如术前、输血前）", "critical moment (before surgery, transfusion)"),
    "emergency": ("急诊、急救等紧急情况", "emergency or rescue"),
    "assessment": ("司法鉴定、伤残评定等", "forensic, disability or similar assessment"),
    "other": ("其他情形（须说明）", "other (state why)"),
}

Outcome = Literal["accepted", "overridden"]

#: Institution levels (the simulator's and registry's codes) and the tier each belongs to.
LEVEL_SYSTEM = f"{BASE}/CodeSystem/institution-level"
PLATFORM_EXT = f"{BASE}/StructureDefinition/city-platform"
LEVEL_TIER = {"3A": "tertiary", "3B": "tertiary", "2A": "secondary", "2B": "secondary", "2U": "secondary",
              "1A": "primary", "1B": "primary", "1U": "primary", "U": "primary"}

#: OrganizationAffiliation.code of a medical-consortium membership (医联体): ``organization`` is the
#: consortium (an Organization), ``participatingOrganization`` the member institution.
AFFILIATION_SYSTEM = f"{BASE}/CodeSystem/organization-affiliation"
CONSORTIUM_CODE = "medical-consortium"
DIVISION_EXT = f"{BASE}/StructureDefinition/division-code"
