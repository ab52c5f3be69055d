"""A small province for recognition tests: institutions, one resident with records at two hospitals,
results at chosen ages, and the starter catalog."""

from __future__ import annotations

from datetime import UTC, datetime

from hutong.core.clock import now_us
from hutong.recognition import vocab as V
from hutong.recognition.catalog import install_starter

LOINC = "http://loinc.org"
RESIDENT = "urn:oid:2.16.156.10011.1.3"
MRN = "urn:hutong:mrn:"
LAB_LOCAL = "https://hutong.example/fhir/CodeSystem/lab-panel"
IMAGING_LOCAL = "https://hutong.example/fhir/CodeSystem/imaging-procedure"
RESIDENT_ID = "220102199003071234"
DAY_US = 86_400 * 1_000_000


def org(oid: str, name: str, level: str, city: str) -> dict:
    return {"resourceType": "Organization", "id": oid, "name": name, "active": True,
            "extension": [{"url": V.PLATFORM_EXT, "valueCoding": {"system": V.BASE + "/CodeSystem/city-platform",
                                                                   "code": city}}],
            "type": [{"coding": [{"system": V.LEVEL_SYSTEM, "code": level}]}]}


def member(consortium: str, org_id: str) -> dict:
    return {"resourceType": "OrganizationAffiliation", "id": f"aff-{consortium}-{org_id}", "active": True,
            "organization": {"reference": f"Organization/{consortium}"},
            "participatingOrganization": {"reference": f"Organization/{org_id}"},
            "code": [{"coding": [{"system": V.AFFILIATION_SYSTEM, "code": V.CONSORTIUM_CODE}]}]}


def patient(pid: str, org_id: str, mrn: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"text": "王小明", "family": "王", "given": ["小明"]}],
            "gender": "male", "birthDate": "1990-03-07",
            "identifier": [{"system": RESIDENT, "value": RESIDENT_ID}, {"system": MRN + org_id, "value": mrn}],
            "managingOrganization": {"reference": f"Organization/{org_id}"}}


def when(age_days: float, now: int | None = None) -> str:
    ts = (now or now_us()) - int(age_days * DAY_US)
    return datetime.fromtimestamp(ts / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def cbc_report(rid: str, pid: str, org_id: str, age_days: float, **extra) -> dict:
    r = {"resourceType": "DiagnosticReport", "id": rid, "status": "final",
         "code": {"coding": [{"system": LOINC, "code": "58410-2"}, {"system": LAB_LOCAL, "code": "XCG"}], "text": "血常规"},
         "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when(age_days),
         "performer": [{"reference": f"Organization/{org_id}"}], "conclusion": "血常规未见明显异常"}
    r.update(extra)
    return r


def imaging(rid: str, pid: str, org_id: str, key: str, age_days: float) -> dict:
    return {"resourceType": "ImagingStudy", "id": rid, "status": "available",
            "meta": {"source": f"urn:hutong:org:{org_id}"},
            "subject": {"reference": f"Patient/{pid}"}, "started": when(age_days),
            "procedureCode": [{"coding": [{"system": IMAGING_LOCAL, "code": key}], "text": key}],
            "numberOfSeries": 1, "numberOfInstances": 2}


def order(oid: str, pid: str, codings: list[dict], requester: str = "Practitioner/doc-b") -> dict:
    return {"resourceType": "ServiceRequest", "id": oid, "status": "draft", "intent": "order",
            "code": {"coding": codings}, "subject": {"reference": f"Patient/{pid}"},
            "requester": {"reference": requester}}


CBC_ORDER = [{"system": LAB_LOCAL, "code": "XCG", "display": "血常规"}]


def seed(store) -> None:
    """Hospitals A and B (Changchun, 3A), C (Jilin city, 3A), D (a primary clinic, not qualified for
    CBC), E (a 2B hospital in A's consortium); the resident has records at A (pa) and B (pb)."""
    from hutong.mpi import service as mpi
    from hutong.recognition import index

    # the node registers these itself (build_node); a bare store needs it done here
    store.register_consumer(mpi.CONSUMER, mpi.consume, types={"Patient"})
    store.register_consumer(index.CONSUMER, index.consume, types=set(index.TYPES))
    install_starter(store)
    with store.write() as tx:
        for o in (org("hosp-a", "长春甲医院", "3A", "2201"), org("hosp-b", "长春乙医院", "3A", "2201"),
                  org("hosp-c", "吉林市丙医院", "3A", "2202"), org("clinic-d", "丁社区卫生服务中心", "1A", "2201"),
                  org("hosp-e", "戊县医院", "2B", "2202"), org("ylt-1", "甲医院医联体", "3A", "2201")):
            tx.update("Organization", o["id"], o)
        for a in (member("ylt-1", "hosp-a"), member("ylt-1", "hosp-e")):
            tx.update("OrganizationAffiliation", a["id"], a)
        tx.update("Patient", "pa", patient("pa", "hosp-a", "A0001"))
        tx.update("Patient", "pb", patient("pb", "hosp-b", "B0042"))
    store.run_consumers()
