"""Code systems, extension URLs and vocabularies of the registry (defined once, used everywhere).

The URLs are the ones the simulator writes (``hutong/sim/systems.py``), so the demo province and
institutions registered later use the same codes."""

from __future__ import annotations

from typing import Literal

BASE = "https://hutong.example/fhir"

USCC = f"{BASE}/sid/uscc"  # 统一社会信用代码 (GB 32100)
LICENSE = f"{BASE}/sid/physician-license"  # 医师执业证书编码
INSTITUTION_LEVEL = f"{BASE}/CodeSystem/institution-level"
INSTITUTION_KIND = f"{BASE}/CodeSystem/institution-kind"
DEPARTMENT = f"{BASE}/CodeSystem/department"  # 医疗机构诊疗科目名录
SERVICE = f"{BASE}/CodeSystem/service"  # department, fever-clinic, internet-hospital
TITLE = f"{BASE}/CodeSystem/professional-title"
ROLE = f"{BASE}/CodeSystem/practitioner-role"
PLATFORM = f"{BASE}/CodeSystem/city-platform"
CONSORTIUM = f"{BASE}/CodeSystem/consortium-type"  # 医联体 kinds
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"

EXT_DIVISION = f"{BASE}/StructureDefinition/division-code"
EXT_PLATFORM = f"{BASE}/StructureDefinition/city-platform"
#: HealthcareService (fever clinic): its current status (``valueCode`` in ``status``, ``valueDateTime`` in ``set``).
EXT_CLINIC_STATUS = f"{BASE}/StructureDefinition/clinic-status"
#: HealthcareService / Location: fields the demo import filled with defaults (``valueString`` per field).
EXT_DEMO_DEFAULT = f"{BASE}/StructureDefinition/demo-default"
#: HealthcareService (fever clinic): features (``valueCode``: ``children``, ``24h``, ``designated``).
EXT_CLINIC_FEATURE = f"{BASE}/StructureDefinition/clinic-feature"
#: Bundle.entry.search: the distance of a ``near`` match (IHE mCSD Location Distance option).
EXT_LOCATION_DISTANCE = "http://hl7.org/fhir/StructureDefinition/location-distance"

LEVELS: dict[str, str] = {
    "3A": "三级甲等", "3B": "三级乙等", "3C": "三级丙等", "3U": "三级未定等",
    "2A": "二级甲等", "2B": "二级乙等", "2C": "二级丙等", "2U": "二级未定等",
    "1A": "一级甲等", "1B": "一级乙等", "1C": "一级丙等", "1U": "一级未定等", "U": "未定级",
}
TIERS = {"3": "tertiary", "2": "secondary", "1": "primary", "U": "primary"}
KINDS: dict[str, str] = {
    "general": "综合医院", "tcm": "中医医院", "integrated": "中西医结合医院", "maternal-child": "妇幼保健院",
    "specialty": "专科医院", "chc": "社区卫生服务中心", "thc": "乡镇卫生院", "village-clinic": "村卫生室",
    "cdc": "疾病预防控制中心",
}

ClinicStatus = Literal["open", "paused", "full", "closed"]
CLINIC_STATUSES: dict[str, str] = {"open": "开放", "paused": "暂停接诊", "full": "已满负荷", "closed": "关闭"}
ClinicFeature = Literal["children", "24h", "designated"]
CLINIC_FEATURES: dict[str, str] = {"children": "儿童发热门诊", "24h": "24小时", "designated": "定点医院"}
