"""Small registries for the tests: institutions, departments, doctors, fever clinics."""

from __future__ import annotations

from hutong.china.ids import gb11714_check_char, uscc_check_char
from hutong.registry import vocab

ALLDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def uscc(division: str, body: str = "4123456") -> str:
    body8 = (body + "0" * 8)[:8]
    first17 = "12" + division[:6] + body8 + gb11714_check_char(body8)
    return first17 + uscc_check_char(first17)


def organization(oid: str, name: str, division: str, level: str | None = "3A", kind: str = "general",
                 part_of: str | None = None, code: str | None = None) -> dict:
    res = {
        "resourceType": "Organization", "id": oid, "active": True, "name": name,
        "identifier": [{"system": vocab.USCC, "value": code or uscc(division, str(sum(map(ord, oid)) % 10**7))}],
        "extension": [{"url": vocab.EXT_DIVISION, "valueCode": division}],
        "type": [{"coding": [{"system": vocab.ORG_TYPE, "code": "prov"}]},
                 {"coding": [{"system": vocab.INSTITUTION_KIND, "code": kind}]}],
    }
    if level:
        res["type"].append({"coding": [{"system": vocab.INSTITUTION_LEVEL, "code": level,
                                        "display": vocab.LEVELS[level]}]})
    if part_of:
        res["partOf"] = {"reference": f"Organization/{part_of}"}
    return res


def location(lid: str, org: str, lat: float, lon: float, name: str = "院区") -> dict:
    return {"resourceType": "Location", "id": lid, "status": "active", "name": name, "mode": "instance",
            "position": {"latitude": lat, "longitude": lon},
            "managingOrganization": {"reference": f"Organization/{org}"}}


def department(sid: str, org: str, loc: str, code: str, name: str) -> dict:
    return {"resourceType": "HealthcareService", "id": sid, "active": True, "name": name,
            "providedBy": {"reference": f"Organization/{org}"}, "location": [{"reference": f"Location/{loc}"}],
            "type": [{"coding": [{"system": vocab.SERVICE, "code": "department"}]}],
            "specialty": [{"coding": [{"system": vocab.DEPARTMENT, "code": code, "display": name}]}],
            "availableTime": [{"daysOfWeek": ALLDAYS[:5], "availableStartTime": "08:00:00",
                               "availableEndTime": "17:00:00"}]}


def fever_clinic(sid: str, org: str, loc: str, name: str = "发热门诊", available=None, features=(),
                 status: str | None = None, phone: str = "0431-88880000") -> dict:
    res = {"resourceType": "HealthcareService", "id": sid, "active": True, "name": name,
           "providedBy": {"reference": f"Organization/{org}"}, "location": [{"reference": f"Location/{loc}"}],
           "type": [{"coding": [{"system": vocab.SERVICE, "code": "fever-clinic"}]}],
           "telecom": [{"system": "phone", "value": phone}],
           "availableTime": available if available is not None else [{"daysOfWeek": ALLDAYS, "allDay": True}],
           "extension": [{"url": vocab.EXT_CLINIC_FEATURE, "valueCode": f} for f in features]}
    if status:
        res["extension"].append({"url": vocab.EXT_CLINIC_STATUS, "extension": [{"url": "status", "valueCode": status}]})
    if not res["extension"]:
        del res["extension"]
    return res


def practitioner_role(rid: str, pid: str, org: str, dept: str, name: str, online: bool = False) -> list[dict]:
    codes = [{"coding": [{"system": vocab.TITLE, "code": "attending", "display": "主治医师"}]}]
    if online:
        codes.append({"coding": [{"system": vocab.ROLE, "code": "online-consultation"}]})
    return [
        {"resourceType": "Practitioner", "id": pid, "active": True, "name": [{"text": name}]},
        {"resourceType": "PractitionerRole", "id": rid, "active": True,
         "practitioner": {"reference": f"Practitioner/{pid}", "display": name},
         "organization": {"reference": f"Organization/{org}"}, "code": codes,
         "specialty": [{"coding": [{"system": vocab.DEPARTMENT, "code": dept}]}]},
    ]


def small_registry() -> list[dict]:
    """A provincial hospital in 长春 with two departments and doctors, a county hospital and a township
    centre under it (partOf), each with a Location."""
    out = [
        organization("h-prov", "吉林省测试医院", "220102", "3A"),
        organization("h-county", "农安县测试医院", "220122", "2A"),
        organization("h-town", "合隆镇测试卫生院", "220122100", "1U", kind="thc", part_of="h-county"),
        location("l-prov", "h-prov", 43.8868, 125.3245),
        location("l-county", "h-county", 44.4327, 125.1753),
        location("l-town", "h-town", 44.1, 125.3),
        department("d-resp", "h-prov", "l-prov", "03.01", "呼吸内科"),
        department("d-ped", "h-prov", "l-prov", "07", "儿科"),
        department("d-gen", "h-town", "l-town", "02", "全科医疗科"),
    ]
    out += practitioner_role("r1", "p1", "h-prov", "03.01", "李医生", online=True)
    out += practitioner_role("r2", "p2", "h-prov", "07", "王医生")
    out += practitioner_role("r3", "p3", "h-town", "02", "赵医生")
    return out


def with_consumers(store):
    """Register the registry's consumers on a bare test store (a node does it from the capability list)."""
    from hutong.registry.capability import CAPABILITY

    for c in CAPABILITY.consumers:
        store.register_consumer(c.name, c.handler, c.types)
    return store


def load(store, resources) -> None:
    with_consumers(store)
    with store.write() as tx:
        for res in resources:
            tx.update(res["resourceType"], res["id"], res)
    store.run_consumers()
