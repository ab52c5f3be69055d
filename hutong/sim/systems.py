"""Identifier systems, code systems and extension URLs used by the simulator (documented in docs/simulation.md)."""

BASE = "https://hutong.example/fhir"

# Identifiers
RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"  # 居民身份证号码 (also used by the store/MPI docs)
USCC = f"{BASE}/sid/uscc"  # 统一社会信用代码 (GB 32100)
MRN_PREFIX = "urn:hutong:mrn:"  # + organization id: the hospital's local 病历号/就诊卡号
REPORT_PREFIX = "urn:hutong:report:"  # + organization id: the lab/imaging report number
LICENSE = f"{BASE}/sid/physician-license"  # 医师执业证书编码 (synthetic 15 digits)
DICOM_UID = "urn:dicom:uid"

# Code systems (Hutong-defined unless noted)
INSTITUTION_LEVEL = f"{BASE}/CodeSystem/institution-level"  # 3A 三级甲等 …
INSTITUTION_KIND = f"{BASE}/CodeSystem/institution-kind"  # general/tcm/… chc, thc, village-clinic
DEPARTMENT = f"{BASE}/CodeSystem/department"  # numbering after 医疗机构诊疗科目名录
SERVICE = f"{BASE}/CodeSystem/service"  # fever-clinic, internet-hospital, department
TITLE = f"{BASE}/CodeSystem/professional-title"  # 主任医师 …
ROLE = f"{BASE}/CodeSystem/practitioner-role"  # online-consultation (医生在线)
ETHNICITY = f"{BASE}/CodeSystem/ethnicity"  # GB/T 3304 numeric codes (01 汉族 …)
LAB_LOCAL = f"{BASE}/CodeSystem/lab-panel"  # Chinese panel names (血常规 …)
IMAGING_LOCAL = f"{BASE}/CodeSystem/imaging-procedure"
PLATFORM = f"{BASE}/CodeSystem/city-platform"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V3_ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
COND_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"
SERVICE_CAT = "http://terminology.hl7.org/CodeSystem/service-category"

# Extensions
EXT_ETHNICITY = f"{BASE}/StructureDefinition/ethnicity"  # Patient: valueCoding (ETHNICITY)
EXT_DIVISION = f"{BASE}/StructureDefinition/division-code"  # Address / Organization: valueCode (12-digit)
EXT_PLATFORM = f"{BASE}/StructureDefinition/city-platform"  # Organization: valueCoding (PLATFORM)
EXT_PLACEHOLDER = f"{BASE}/StructureDefinition/newborn-placeholder-name"  # Patient.name: valueBoolean
