"""Small builders for report-reading tests."""

from __future__ import annotations

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"


def obs(oid: str, loinc: str | None, text: str, value, unit: str | None, *, ref=None, method=None, **extra) -> dict:
    o = {"resourceType": "Observation", "id": oid, "status": "final",
         "code": {"coding": [{"system": LOINC, "code": loinc}] if loinc else [], "text": text}}
    if isinstance(value, str):
        o["valueString"] = value
    else:
        q = {"value": value}
        if unit:
            q.update(unit=unit, system=UCUM, code=unit)
        o["valueQuantity"] = q
    if ref:
        o["referenceRange"] = [ref]
    if method:
        o["method"] = {"text": method}
    o.update(extra)
    return o


def bundle(patient: dict | None, observations: list[dict], when: str = "2024-05-01T08:00:00+08:00") -> dict:
    entries = []
    if patient:
        entries.append({"fullUrl": f"Patient/{patient['id']}", "resource": patient})
    rep = {"resourceType": "DiagnosticReport", "id": "rep1", "status": "final", "code": {"text": "检验报告"},
           "effectiveDateTime": when, "result": [{"reference": f"Observation/{o['id']}"} for o in observations]}
    if patient:
        rep["subject"] = {"reference": f"Patient/{patient['id']}"}
    entries.append({"resource": rep})
    entries += [{"resource": o} for o in observations]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


# A blood count and a liver panel as a hospital sends them (values chosen to cross the intervals).
CBC = [
    ("wbc", "6690-2", "白细胞计数", 11.2, "10*9/L"), ("rbc", "789-8", "红细胞计数", 4.1, "10*12/L"),
    ("hgb", "718-7", "血红蛋白", 122, "g/L"), ("hct", "4544-3", "红细胞压积", 37.5, "%"),
    ("mcv", "787-2", "平均红细胞体积", 91, "fL"), ("mch", "785-6", "平均红细胞血红蛋白量", 29.8, "pg"),
    ("mchc", "786-4", "平均红细胞血红蛋白浓度", 325, "g/L"), ("plt", "777-3", "血小板计数", 98, "10*9/L"),
    ("neutp", "770-8", "中性粒细胞百分比", 78.5, "%"), ("lymp", "736-9", "淋巴细胞百分比", 15.2, "%"),
    ("neut", "751-8", "中性粒细胞绝对值", 8.79, "10*9/L"), ("lym", "731-0", "淋巴细胞绝对值", 1.70, "10*9/L"),
]
LFT = [
    ("alt", "1742-6", "丙氨酸氨基转移酶", 88, "U/L"), ("ast", "1920-8", "天门冬氨酸氨基转移酶", 36, "U/L"),
    ("tbil", "14631-6", "总胆红素", 24.0, "umol/L"), ("dbil", "14629-0", "直接胆红素", 5.1, "umol/L"),
    ("tp", "2885-2", "总蛋白", 70.1, "g/L"), ("alb", "1751-7", "白蛋白", 42.3, "g/L"),
    ("alp", "6768-6", "碱性磷酸酶", 120, "U/L"), ("ggt", "2324-2", "γ-谷氨酰转移酶", 52, "U/L"),
]


def panel(rows) -> list[dict]:
    return [obs(i, loinc, text, v, u) for i, loinc, text, v, u in rows]
