"""Test data for the assessment: a small province whose data arrives on chosen days."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hutong.china.ids import make_resident_id, uscc_check_char
from hutong.core.clock import SHANGHAI, to_us

LAB = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]
UCUM = "http://unitsofmeasure.org"


def uscc(n: int) -> str:
    first = f"1222{n:06d}4127605"[:17]
    return first + uscc_check_char(first)


def organization(org_id: str, name: str, city: str = "长春市", platform: str = "2201") -> dict:
    return {"resourceType": "Organization", "id": org_id, "name": name, "active": True,
            "identifier": [{"system": "https://hutong.example/fhir/sid/uscc", "value": uscc(len(org_id) * 7 + ord(org_id[-1]))}],
            "extension": [{"url": "https://hutong.example/fhir/StructureDefinition/city-platform",
                           "valueCoding": {"system": "https://hutong.example/fhir/CodeSystem/city-platform", "code": platform}}],
            "address": [{"city": city}]}


def patient(org: str, n: int, *, valid_id: bool = True) -> dict:
    rid = make_resident_id("220102", date(1970 + n % 40, 1 + n % 12, 1 + n % 28), n % 1000, "male" if n % 2 else "female")
    if not valid_id:
        rid = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    return {"resourceType": "Patient", "meta": {"source": f"urn:hutong:org:{org}"},
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": rid}],
            "name": [{"text": f"测试{n}"}], "gender": "male" if n % 2 else "female"}


def lab(org: str, patient_id: str, *, unit: bool = True, when: str = "2026-11-02T09:00:00+08:00") -> dict:
    q = {"value": 5.4}
    if unit:
        q |= {"unit": "mmol/L", "system": UCUM, "code": "mmol/L"}
    obs = {"resourceType": "Observation", "meta": {"source": f"urn:hutong:org:{org}"}, "status": "final",
           "category": LAB, "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "葡萄糖"},
           "subject": {"reference": f"Patient/{patient_id}"}, "issued": when, "valueQuantity": q}
    if unit:
        obs["referenceRange"] = [{"low": {"value": 3.9, "unit": "mmol/L"}, "high": {"value": 6.1, "unit": "mmol/L"}}]
    return obs


def visit(org: str, patient_id: str, *, dx: str | None = "I10", when: str = "2026-11-02T09:00:00+08:00") -> dict:
    enc = {"resourceType": "Encounter", "meta": {"source": f"urn:hutong:org:{org}"}, "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "subject": {"reference": f"Patient/{patient_id}"}, "serviceProvider": {"reference": f"Organization/{org}"},
           "period": {"start": when, "end": when}}
    if dx:
        enc["reasonCode"] = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": dx}]}]
    return enc


class Clock:
    """Makes the store stamp writes at a chosen Asia/Shanghai time (days pass in a test)."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch

    def at(self, day: date | str, hour: int = 10) -> None:
        d = date.fromisoformat(day) if isinstance(day, str) else day
        ts = to_us(datetime(d.year, d.month, d.day, hour, tzinfo=SHANGHAI))
        counter = iter(range(10**9))
        self.monkeypatch.setattr("hutong.store.tx.now_us", lambda: ts + next(counter))


def weekdays(start: date, n_days: int) -> list[date]:
    return [start + timedelta(days=k) for k in range(n_days) if (start + timedelta(days=k)).weekday() < 5]
