"""Notifiable diseases (法定传染病, 《中华人民共和国传染病防治法》 with the NHC's later adjustments),
their class, reporting deadline and extra required fields; card vocabularies (defined once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BASE = "https://hutong.example/fhir"
DISEASE = f"{BASE}/CodeSystem/notifiable-disease"
CARD_TAG = {"system": f"{BASE}/CodeSystem/epidemic", "code": "report-card", "display": "传染病报告卡"}
CATEGORY = {"system": f"{BASE}/CodeSystem/epidemic", "code": "notifiable-disease-report"}
EXT_CARD = f"{BASE}/StructureDefinition/infectious-disease-report"  # complex extension on the Condition
ICD10 = "http://hl7.org/fhir/sid/icd-10"
RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"

DiseaseClass = Literal["A", "B", "C"]
CLASS_NAMES = {"A": "甲类", "B": "乙类", "C": "丙类"}

Classification = Literal["suspected", "clinical", "confirmed", "carrier"]
CLASSIFICATIONS = {"suspected": "疑似病例", "clinical": "临床诊断病例", "confirmed": "确诊病例", "carrier": "病原携带者"}
#: Classifications that count as a case once the county CDC has reviewed the card.
COUNTED = frozenset({"clinical", "confirmed"})

ReviewStatus = Literal["pending", "reviewed", "rejected", "duplicate"]
REVIEW_STATUSES = {"pending": "待审核", "reviewed": "已审核", "rejected": "已退卡", "duplicate": "重卡"}
ReviewAction = Literal["approve", "correct", "reject"]

Sex = Literal["male", "female", "unknown"]


@dataclass(frozen=True)
class Disease:
    """One notifiable disease: its code, name, class, ICD-10, deadline in hours and extra fields."""

    code: str
    name: str
    klass: str
    icd10: str
    deadline_hours: int = 24
    required: tuple[str, ...] = ()  # extra card fields the disease needs (see EXTRA_FIELDS)
    carrier: bool = False  # 病原携带者 may be reported
    clinical: bool = True  # 临床诊断病例 exists for it


#: Extra fields some diseases require, with their allowed values.
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "hepatitis_type": ("甲型", "乙型", "丙型", "丁型", "戊型", "未分型"),
    "syphilis_stage": ("一期", "二期", "三期", "胎传", "隐性"),
    "tb_lab": ("涂阳", "仅培阳", "分子生物学阳性", "菌阴", "未痰检"),
    "malaria_species": ("间日疟", "恶性疟", "三日疟", "卵形疟", "未分型"),
    "anthrax_type": ("肺炭疽", "皮肤炭疽", "肠炭疽", "未分型"),
}

_D = Disease
DISEASES: dict[str, Disease] = {d.code: d for d in (
    _D("plague", "鼠疫", "A", "A20", 2, carrier=False),
    _D("cholera", "霍乱", "A", "A00", 2, carrier=True),
    _D("covid19", "新型冠状病毒感染", "B", "U07.1", 24, carrier=True),
    _D("sars", "传染性非典型肺炎", "B", "U04.9", 2),
    _D("hiv", "艾滋病", "B", "B24", 24, carrier=True, clinical=True),
    _D("hepatitis", "病毒性肝炎", "B", "B19", 24, ("hepatitis_type",), carrier=True),
    _D("polio", "脊髓灰质炎", "B", "A80", 2),
    _D("hpai", "人感染高致病性禽流感", "B", "J09", 2),
    _D("measles", "麻疹", "B", "B05"),
    _D("hfrs", "流行性出血热", "B", "A98.5"),
    _D("rabies", "狂犬病", "B", "A82"),
    _D("jev", "流行性乙型脑炎", "B", "A83.0"),
    _D("dengue", "登革热", "B", "A90"),
    _D("anthrax", "炭疽", "B", "A22", 24, ("anthrax_type",)),
    _D("dysentery", "细菌性和阿米巴性痢疾", "B", "A03", carrier=True),
    _D("tb", "肺结核", "B", "A16", 24, ("tb_lab",)),
    _D("typhoid", "伤寒和副伤寒", "B", "A01", carrier=True),
    _D("meningococcal", "流行性脑脊髓膜炎", "B", "A39"),
    _D("pertussis", "百日咳", "B", "A37"),
    _D("diphtheria", "白喉", "B", "A36"),
    _D("neonatal-tetanus", "新生儿破伤风", "B", "A33"),
    _D("scarlet-fever", "猩红热", "B", "A38"),
    _D("brucellosis", "布鲁氏菌病", "B", "A23"),
    _D("gonorrhea", "淋病", "B", "A54"),
    _D("syphilis", "梅毒", "B", "A53", 24, ("syphilis_stage",)),
    _D("leptospirosis", "钩端螺旋体病", "B", "A27"),
    _D("schistosomiasis", "血吸虫病", "B", "B65"),
    _D("malaria", "疟疾", "B", "B54", 24, ("malaria_species",)),
    _D("h7n9", "人感染H7N9禽流感", "B", "J09.X01"),
    _D("mpox", "猴痘", "B", "B04"),
    _D("influenza", "流行性感冒", "C", "J11"),
    _D("mumps", "流行性腮腺炎", "C", "B26"),
    _D("rubella", "风疹", "C", "B06"),
    _D("ahc", "急性出血性结膜炎", "C", "B30.3"),
    _D("leprosy", "麻风病", "C", "A30"),
    _D("typhus", "流行性和地方性斑疹伤寒", "C", "A75"),
    _D("kala-azar", "黑热病", "C", "B55.0"),
    _D("echinococcosis", "包虫病", "C", "B67"),
    _D("filariasis", "丝虫病", "C", "B74"),
    _D("infectious-diarrhea", "其它感染性腹泻病", "C", "A08", carrier=False),
    _D("hfmd", "手足口病", "C", "B08.4"),
)}


def deadline_hours(disease: Disease, extra: dict[str, str]) -> int:
    """Hours allowed from diagnosis to report: 2 for class A and the class B diseases managed as class A
    (肺炭疽, SARS) or reported like them (polio, HPAI); 24 for the others."""
    if disease.code == "anthrax" and extra.get("anthrax_type") == "肺炭疽":
        return 2
    return disease.deadline_hours
