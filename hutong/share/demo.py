"""A demo resident seen at three hospitals (王丽华): the shared record's worked example.

``load_demo(store)`` writes three institutions, one Patient record at each (same resident ID, each with its
own record number), their encounters, diagnoses, allergy, prescriptions, lab results (one result sent by
two institutions; two results of the same test on the same day with different values), an imaging study
with a PACS endpoint, and runs the patient index so the three records are one person. Tests, benchmarks
and ``hutong share demo`` use it; ``extra_resources`` pads the record to a given size for timing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hutong.china.ids import make_resident_id
from hutong.core.clock import SHANGHAI

RID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
V3_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"

HOSPITALS = {
    "demo-h1": "长春市第一医院",
    "demo-h2": "吉林市中心医院",
    "demo-h3": "四平市人民医院",
}
RECORDS = {"demo-h1": "demo-p1", "demo-h2": "demo-p2", "demo-h3": "demo-p3"}
RESIDENT_ID = make_resident_id("220102", date(1968, 4, 12), 23, "female")
PHONE = "13804310000"


def _t(y, m, d, hh=9, mm=0) -> str:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI).isoformat()


def _meta(org: str) -> dict:
    return {"source": f"urn:hutong:org:{org}"}


def patient(org: str, pid: str, mrn: str) -> dict:
    return {
        "resourceType": "Patient", "id": pid, "meta": _meta(org),
        "identifier": [
            {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": f"urn:hutong:mrn:{org}", "value": mrn},
            {"use": "official", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                     "code": "NNCHN"}]}, "system": RID_SYSTEM, "value": RESIDENT_ID},
        ],
        "active": True,
        "name": [{"use": "official", "text": "王丽华", "family": "王", "given": ["丽华"]}],
        "telecom": [{"system": "phone", "value": PHONE, "use": "mobile"}],
        "gender": "female", "birthDate": "1968-04-12",
        "address": [{"use": "home", "text": "吉林省长春市南关区人民大街100号", "city": "长春市", "district": "南关区",
                     "state": "吉林省"}],
        "managingOrganization": {"reference": f"Organization/{org}"},
    }


def encounter(org: str, eid: str, pid: str, start: str, cls: str, dx: tuple[str, str], days: int = 0) -> dict:
    end = datetime.fromisoformat(start) + (timedelta(days=days) if days else timedelta(minutes=30))
    return {
        "resourceType": "Encounter", "id": eid, "meta": _meta(org), "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start, "end": end.isoformat()},
        "reasonCode": [{"coding": [{"system": ICD10, "code": dx[0], "display": dx[1]}], "text": dx[1]}],
        "serviceProvider": {"reference": f"Organization/{org}"},
    }


def condition(org: str, cid: str, pid: str, eid: str, dx: tuple[str, str], when: str) -> dict:
    return {
        "resourceType": "Condition", "id": cid, "meta": _meta(org),
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"coding": [{"system": ICD10, "code": dx[0], "display": dx[1]}], "text": dx[1]},
        "subject": {"reference": f"Patient/{pid}"}, "encounter": {"reference": f"Encounter/{eid}"},
        "recordedDate": when,
    }


LABS = {  # key: (LOINC, name, unit, low, high)
    "GLU": ("2345-7", "空腹血糖", "mmol/L", 3.9, 6.1),
    "HBA1C": ("4548-4", "糖化血红蛋白", "%", 4.0, 6.0),
    "WBC": ("6690-2", "白细胞计数", "10*9/L", 3.5, 9.5),
    "TC": ("2093-3", "总胆固醇", "mmol/L", 2.8, 5.2),
}


def observation(org: str, oid: str, pid: str, key: str, value: float, when: str, eid: str | None = None) -> dict:
    loinc, name, unit, low, high = LABS[key]
    flag = "H" if value > high else "L" if value < low else "N"
    obs = {
        "resourceType": "Observation", "id": oid, "meta": _meta(org), "status": "final",
        "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": loinc}], "text": name},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when, "issued": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        "interpretation": [{"coding": [{"system": V3_INTERP, "code": flag}]}],
        "referenceRange": [{"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}],
        "performer": [{"reference": f"Organization/{org}"}],
    }
    if eid:
        obs["encounter"] = {"reference": f"Encounter/{eid}"}
    return obs


def report(org: str, rid: str, pid: str, name: str, when: str, results: list[str]) -> dict:
    return {
        "resourceType": "DiagnosticReport", "id": rid, "meta": _meta(org), "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
        "code": {"text": name}, "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
        "issued": when, "result": [{"reference": f"Observation/{r}"} for r in results],
    }


def demo_resources() -> list[dict]:
    """Every resource of the demo (institutions first, then each hospital's records)."""
    out: list[dict] = []
    for org, name in HOSPITALS.items():
        out.append({"resourceType": "Organization", "id": org, "name": name, "active": True,
                    "meta": {"source": "urn:hutong:platform:22"},
                    "identifier": [{"system": "urn:hutong:org", "value": org}]})
    for n, (org, pid) in enumerate(RECORDS.items(), start=1):
        out.append(patient(org, pid, f"MR{n:03d}{n * 1111:06d}"))
    h1, h2, h3 = "demo-h1", "demo-h2", "demo-h3"
    p1, p2, p3 = RECORDS[h1], RECORDS[h2], RECORDS[h3]
    htn, dm = ("I10", "原发性高血压"), ("E11.9", "2型糖尿病")
    out += [
        encounter(h1, "demo-e1", p1, _t(2024, 3, 5, 9, 10), "AMB", htn),
        condition(h1, "demo-c1", p1, "demo-e1", htn, _t(2024, 3, 5, 9, 10)),
        {"resourceType": "MedicationRequest", "id": "demo-m1", "meta": _meta(h1), "status": "active",
         "intent": "order", "medicationCodeableConcept": {"text": "苯磺酸氨氯地平片 5mg"},
         "subject": {"reference": f"Patient/{p1}"}, "encounter": {"reference": "Encounter/demo-e1"},
         "authoredOn": _t(2024, 3, 5, 9, 30), "dosageInstruction": [{"text": "每日一次，每次一片"}]},
        observation(h1, "demo-o1", p1, "GLU", 6.8, _t(2024, 3, 5, 9, 40), "demo-e1"),
        observation(h1, "demo-o2", p1, "TC", 5.9, _t(2024, 3, 5, 9, 40), "demo-e1"),
        report(h1, "demo-r1", p1, "生化检验", _t(2024, 3, 5, 9, 40), ["demo-o1", "demo-o2"]),
        encounter(h2, "demo-e2", p2, _t(2024, 6, 18, 8, 0), "IMP", dm, days=6),
        condition(h2, "demo-c2", p2, "demo-e2", dm, _t(2024, 6, 18, 8, 0)),
        {"resourceType": "AllergyIntolerance", "id": "demo-a1", "meta": _meta(h2),
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                        "code": "active"}]},
         "code": {"text": "青霉素"}, "patient": {"reference": f"Patient/{p2}"}, "criticality": "high",
         "reaction": [{"manifestation": [{"text": "皮疹"}]}], "recordedDate": _t(2024, 6, 18, 8, 30)},
        {"resourceType": "MedicationRequest", "id": "demo-m2", "meta": _meta(h2), "status": "active",
         "intent": "order", "medicationCodeableConcept": {"text": "盐酸二甲双胍片 0.5g"},
         "subject": {"reference": f"Patient/{p2}"}, "encounter": {"reference": "Encounter/demo-e2"},
         "authoredOn": _t(2024, 6, 18, 10, 0), "dosageInstruction": [{"text": "每日两次，每次一片，随餐"}]},
        # Same test, same day, different values and times at two institutions: two results.
        observation(h2, "demo-o3", p2, "GLU", 8.9, _t(2024, 6, 18, 8, 20), "demo-e2"),
        observation(h3, "demo-o9", p3, "GLU", 11.2, _t(2024, 6, 18, 15, 0)),
        observation(h2, "demo-o4", p2, "HBA1C", 7.8, _t(2024, 6, 18, 8, 20), "demo-e2"),
        observation(h2, "demo-o5", p2, "WBC", 6.1, _t(2024, 6, 18, 8, 20), "demo-e2"),
        report(h2, "demo-r2", p2, "入院检验", _t(2024, 6, 18, 8, 20), ["demo-o3", "demo-o4", "demo-o5"]),
        {"resourceType": "Endpoint", "id": "demo-pacs-h2", "meta": _meta(h2), "status": "active",
         "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                            "code": "dicom-wado-rs"},
         "name": "吉林市中心医院 PACS", "payloadType": [{"text": "DICOM"}],
         "address": "https://pacs.demo-h2.example/dicomweb"},
        {"resourceType": "ImagingStudy", "id": "demo-i1", "meta": _meta(h2), "status": "available",
         "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.156.112605.1.20240618.1"}],
         "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
         "subject": {"reference": f"Patient/{p2}"}, "encounter": {"reference": "Encounter/demo-e2"},
         "started": _t(2024, 6, 19, 10, 0), "numberOfSeries": 1, "numberOfInstances": 180,
         "procedureCode": [{"text": "胸部CT平扫"}], "endpoint": [{"reference": "Endpoint/demo-pacs-h2"}],
         "description": "胸部CT平扫"},
        encounter(h3, "demo-e3", p3, _t(2024, 9, 2, 9, 0), "AMB", dm),
        # The same result sent twice: h3 measured it and the regional lab at h1 forwarded it (same time, value).
        observation(h3, "demo-o6", p3, "GLU", 7.2, _t(2024, 9, 2, 9, 30), "demo-e3"),
        observation(h1, "demo-o7", p1, "GLU", 7.2, _t(2024, 9, 2, 9, 30)),
        observation(h3, "demo-o8", p3, "HBA1C", 7.1, _t(2024, 9, 2, 9, 30), "demo-e3"),
    ]
    return out


def extra_resources(n: int, start: int = 0) -> list[dict]:
    """``n`` more lab results and visits spread over the three records (for size and timing)."""
    keys = list(LABS)
    out: list[dict] = []
    orgs = list(RECORDS.items())
    base = datetime(2019, 1, 1, 8, 0, tzinfo=SHANGHAI)
    for k in range(start, start + n):
        org, pid = orgs[k % 3]
        when = (base + timedelta(hours=7 * k)).isoformat()
        if k % 10 == 0:
            out.append(encounter(org, f"demo-xe{k}", pid, when, "AMB", ("I10", "原发性高血压")))
        else:
            key = keys[k % len(keys)]
            low, high = LABS[key][3], LABS[key][4]
            value = round(low + (high - low) * (0.2 + 0.9 * ((k * 37) % 100) / 100), 1)
            out.append(observation(org, f"demo-xo{k}", pid, key, value, when))
    return out


def load_demo(store, extra: int = 0) -> dict:
    """Write the demo (plus ``extra`` padding resources) and link the records; returns the record ids."""
    from hutong.mpi import service as mpi

    resources = demo_resources() + extra_resources(extra)
    for i in range(0, len(resources), 1000):
        with store.write() as tx:
            for res in resources[i:i + 1000]:
                tx.update(res["resourceType"], res["id"], res)
    # The node registers the index's consumer; a bare store (tests, CLI) gets it here (same name: no double).
    store.register_consumer(mpi.CONSUMER, mpi.consume, {"Patient"})
    store.run_consumers()
    return dict(RECORDS)


def add_unlinked_record(store) -> str:
    """A fourth record of the same resident, registered again at 四平 with a mistyped name and no resident ID:
    the index queues it for review (probable match) instead of linking it. Returns its Patient id."""
    from hutong.mpi import service as mpi

    pid = "demo-p4"
    p = patient("demo-h3", pid, "MR009000001")
    p["identifier"] = p["identifier"][:1]
    p["telecom"] = [{"system": "phone", "value": "13900000001", "use": "mobile"}]
    p["name"] = [{"use": "official", "text": "王丽桦", "family": "王", "given": ["丽桦"]}]
    p["address"] = [{"use": "home", "text": "四平市铁西区"}]
    with store.write() as tx:
        tx.update("Patient", pid, p)
        tx.update("Encounter", "demo-e4", encounter("demo-h3", "demo-e4", pid, _t(2024, 11, 20, 10, 0), "EMER",
                                                    ("J18.9", "肺炎")))
        tx.update("Observation", "demo-o10", observation("demo-h3", "demo-o10", pid, "WBC", 13.4,
                                                         _t(2024, 11, 20, 10, 30), "demo-e4"))
    store.register_consumer(mpi.CONSUMER, mpi.consume, {"Patient"})
    store.run_consumers()
    return pid


def demo_cda(resident_id: str = RESIDENT_ID, org: str = "demo-h1", org_name: str = "长春市第一医院") -> bytes:
    """A CDA R2 outpatient record in the WS/T 500 style (header as the platform indexes it, two sections)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="CN"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>
  <templateId root="2.16.156.10011.2.1.1.53"/>
  <id root="2.16.156.10011.1.1" extension="DOC-{org}-20240305-0001"/>
  <code code="C0032" codeSystem="2.16.156.10011.2.4" codeSystemName="卫生信息共享文档编码体系" displayName="门（急）诊病历"/>
  <title>门（急）诊病历</title>
  <effectiveTime value="20240305101500+0800"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="正常访问保密级别"/>
  <languageCode code="zh-CN"/>
  <recordTarget typeCode="RCT">
    <patientRole classCode="PAT">
      <id root="2.16.156.10011.1.3" extension="{resident_id}"/>
      <id root="2.16.156.10011.1.11" extension="MR001001111"/>
      <patient classCode="PSN" determinerCode="INSTANCE">
        <name>王丽华</name>
        <administrativeGenderCode code="2" codeSystem="2.16.156.10011.2.3.3.4" displayName="女性"/>
        <birthTime value="19680412"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author typeCode="AUT">
    <time value="20240305101500+0800"/>
    <assignedAuthor classCode="ASSIGNED">
      <id root="2.16.156.10011.1.7" extension="D0001"/>
      <assignedPerson><name>李明</name></assignedPerson>
      <representedOrganization><id root="2.16.156.10011.1.5" extension="{org}"/><name>{org_name}</name></representedOrganization>
    </assignedAuthor>
  </author>
  <custodian typeCode="CST"><assignedCustodian><representedCustodianOrganization>
    <id root="2.16.156.10011.1.5" extension="{org}"/><name>{org_name}</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <documentationOf><serviceEvent><effectiveTime><low value="20240305091000+0800"/><high value="20240305094000+0800"/></effectiveTime></serviceEvent></documentationOf>
  <component><structuredBody>
    <component><section>
      <code code="10154-3" codeSystem="2.16.840.1.113883.6.1" displayName="主诉"/><title>主诉</title>
      <text><paragraph>头晕、头痛两周，加重三天。</paragraph></text>
    </section></component>
    <component><section>
      <code code="29548-5" codeSystem="2.16.840.1.113883.6.1" displayName="诊断"/><title>诊断</title>
      <text><list><item>原发性高血压（I10）</item><item>高胆固醇血症</item></list>
      <table><thead><tr><th>项目</th><th>结果</th></tr></thead><tbody><tr><td>血压</td><td>162/98 mmHg</td></tr></tbody></table></text>
    </section></component>
    <component><section>
      <code code="18776-5" codeSystem="2.16.840.1.113883.6.1" displayName="治疗计划"/><title>处理意见</title>
      <text><paragraph>苯磺酸氨氯地平片 5mg 每日一次；低盐饮食；两周后复诊。<content>&lt;script&gt;不应执行&lt;/script&gt;</content></paragraph></text>
    </section></component>
  </structuredBody></component>
</ClinicalDocument>
""".encode()


def mhd_bundle(cda_bytes: bytes, *, patient: str = "demo-p1", org: str = "demo-h1", doc_uuid: str = "urn:uuid:7f3c1a2e-0000-4000-8000-000000000001",
               replaces: str | None = None, content_type: str = "application/hl7-v3+xml",
               format_code: str = "urn:ihe:iti:xds-sd:text:2008") -> dict:
    """An ITI-65 Provide Document Bundle: SubmissionSet List, DocumentReference and Binary (the document
    inline: CDA by default, or any ``content_type`` such as a FHIR document Bundle's ``application/fhir+json``)."""
    import base64
    import hashlib

    bin_uuid = doc_uuid[:-1] + "2"
    doc = {
        "resourceType": "DocumentReference", "meta": {"source": f"urn:hutong:org:{org}"},
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:2.16.156.10011.1.1.{org}.{doc_uuid[-4:]}"},
        "status": "current",
        "type": {"coding": [{"system": "urn:oid:2.16.156.10011.2.4", "code": "C0032", "display": "门（急）诊病历"}]},
        "category": [{"coding": [{"system": "urn:oid:1.3.6.1.4.1.19376.1.2.6.1", "code": "REPORTS"}]}],
        "subject": {"reference": f"Patient/{patient}"}, "date": "2024-03-05T10:20:00+08:00",
        "author": [{"reference": f"Organization/{org}"}], "custodian": {"reference": f"Organization/{org}"},
        "description": "门（急）诊病历 2024-03-05",
        "content": [{"attachment": {"contentType": content_type, "language": "zh-CN", "url": bin_uuid,
                                    "size": len(cda_bytes), "hash": base64.b64encode(hashlib.sha1(cda_bytes).digest()).decode(),
                                    "title": "门（急）诊病历", "creation": "2024-03-05T10:15:00+08:00"},
                     "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                                "code": format_code}}],
        "context": {"period": {"start": "2024-03-05T09:10:00+08:00", "end": "2024-03-05T09:40:00+08:00"},
                    "facilityType": {"text": "综合医院"}, "practiceSetting": {"text": "心血管内科"}},
    }
    if replaces:
        doc["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    sub = {
        "resourceType": "List", "status": "current", "mode": "working",
        "extension": [{"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
                       "valueIdentifier": {"value": f"urn:oid:2.16.156.10011.1.5.{org}"}}],
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": doc_uuid[:-1] + "3"}],
        "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes", "code": "submissionset"}]},
        "subject": {"reference": f"Patient/{patient}"}, "date": "2024-03-05T10:20:00+08:00",
        "entry": [{"item": {"reference": doc_uuid}}],
    }
    return {"resourceType": "Bundle", "type": "transaction",
            "meta": {"profile": ["https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle"]},
            "entry": [
                {"fullUrl": doc_uuid[:-1] + "3", "resource": sub, "request": {"method": "POST", "url": "List"}},
                {"fullUrl": doc_uuid, "resource": doc, "request": {"method": "POST", "url": "DocumentReference"}},
                {"fullUrl": bin_uuid, "resource": {"resourceType": "Binary", "contentType": content_type,
                                                   "data": base64.b64encode(cda_bytes).decode()},
                 "request": {"method": "POST", "url": "Binary"}},
            ]}


def publish_demo_document(store) -> None:
    """Publish the demo CDA document from 长春市第一医院 (as an ITI-65 bundle through the route table)."""
    from hutong.api.app import CAPABILITIES
    from hutong.api.node import build_node
    from hutong.core.caller import Caller
    from hutong.fhir.rest import FhirRequest, perform
    from hutong.fhir.routes import Call
    from hutong.share import mhd

    node = build_node(store.settings, store, CAPABILITIES)
    body = orjson_dumps(mhd_bundle(demo_cda()))
    interaction, params = node.routes.match("POST", "")
    req = FhirRequest("POST", "", [], {"content-type": "application/fhir+json"}, body)
    perform(Call(interaction, params, req, store, Caller(), "http://localhost/fhir", None, node.routes))
    store.register_consumer(mhd.CONSUMER, mhd.consume, {"DocumentReference"})
    store.run_consumers()


def orjson_dumps(obj) -> bytes:
    import orjson

    return orjson.dumps(obj)
