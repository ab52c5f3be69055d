"""A small province for the consult tests: a village clinic, a township health centre, a county
(secondary) hospital and a provincial tertiary hospital, their doctors (online ones, a
pharmacist), a resident with an in-person visit, and a dependant."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from hutong.consult.work import Env, MemoryNotifier

B = "https://hutong.example/fhir"
KIND, LEVEL, DEPT, ROLE = (f"{B}/CodeSystem/institution-kind", f"{B}/CodeSystem/institution-level",
                           f"{B}/CodeSystem/department", f"{B}/CodeSystem/practitioner-role")


def _org(oid, name, kind, level, platform="2201", parent=None):
    org = {"resourceType": "Organization", "id": oid, "active": True, "name": name,
           "type": [{"coding": [{"system": KIND, "code": kind}]}, {"coding": [{"system": LEVEL, "code": level}]}],
           "extension": [{"url": f"{B}/StructureDefinition/city-platform",
                          "valueCoding": {"system": f"{B}/CodeSystem/city-platform", "code": platform}}]}
    if parent:
        org["partOf"] = {"reference": f"Organization/{parent}"}
    return org


def _doctor(rid, name, org, depts, online=True, pharmacist=False):
    codes = [{"coding": [{"system": ROLE, "code": "online-consultation"}]}] if online else []
    if pharmacist:
        codes.append({"coding": [{"system": ROLE, "code": "pharmacist"}]})
    return [
        {"resourceType": "Practitioner", "id": "pra-" + rid, "active": True, "name": [{"text": name}]},
        {"resourceType": "PractitionerRole", "id": rid, "active": True,
         "practitioner": {"reference": f"Practitioner/pra-{rid}", "display": name},
         "organization": {"reference": f"Organization/{org}"}, "code": codes or None,
         "specialty": [{"coding": [{"system": DEPT, "code": d}]} for d in depts] or None},
    ]


def _clean(res):
    return {k: v for k, v in res.items() if v is not None}


@dataclasses.dataclass
class Province:
    env: Env
    notifier: MemoryNotifier
    events: list
    store: object


def seed(store) -> None:
    now = datetime.now(UTC)
    resources = [
        _org("org-prov", "吉林大学第一医院", "general", "3A"),
        _org("org-county", "农安县人民医院", "general", "2A", platform="2201"),
        _org("org-town", "农安县合隆镇卫生院", "thc", "1A", parent="org-county"),
        _org("org-village", "合隆镇陈家村卫生室", "village-clinic", "0", parent="org-town"),
        *_doctor("prr-cardio1", "王心", "org-prov", ["03.04"]),
        *_doctor("prr-cardio2", "李安", "org-prov", ["03.04"]),
        *_doctor("prr-resp", "赵肺", "org-prov", ["03.01"]),
        *_doctor("prr-endo", "钱糖", "org-prov", ["03.07"]),
        *_doctor("prr-pharm", "孙药", "org-prov", [], online=False, pharmacist=True),
        *_doctor("prr-county", "周县", "org-county", ["03"]),
        *_doctor("prr-town", "吴镇", "org-town", ["02"], online=False),
        *_doctor("prr-village", "郑村", "org-village", ["02"], online=False),
        {"resourceType": "Patient", "id": "pat-1", "name": [{"text": "张三"}], "gender": "male",
         "birthDate": "1960-03-01",
         "identifier": [{"system": "urn:oid:2.16.156.10011.1.3", "value": "220122196003010012"}]},
        {"resourceType": "Patient", "id": "pat-child", "name": [{"text": "张小"}], "gender": "female",
         "birthDate": "2020-05-01"},
        {"resourceType": "Encounter", "id": "enc-visit", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "serviceType": {"coding": [{"system": DEPT, "code": "03.07"}]},
         "subject": {"reference": "Patient/pat-1"},
         "period": {"start": (now - timedelta(days=30)).isoformat(), "end": (now - timedelta(days=30, hours=-1)).isoformat()},
         "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}], "text": "2型糖尿病"}],
         "serviceProvider": {"reference": "Organization/org-prov"}},
        {"resourceType": "Observation", "id": "obs-ecg", "status": "final", "code": {"text": "心电图"},
         "subject": {"reference": "Patient/pat-1"}, "valueString": "窦性心律，ST段压低"},
        {"resourceType": "Observation", "id": "obs-other", "status": "final", "code": {"text": "血常规"},
         "subject": {"reference": "Patient/pat-1"}, "valueString": "正常"},
    ]
    with store.write() as tx:
        for res in resources:
            tx.update(res["resourceType"], res["id"], _clean(res))


@pytest.fixture
def province(store) -> Province:
    seed(store)
    events: list = []
    notifier = MemoryNotifier()
    env = Env(store, dataclasses.replace(store.settings, consult_hours="00:00-24:00"), publish=lambda s, p: events.append((s, p)), notifier=notifier)
    return Province(env, notifier, events, store)
