"""POST /api/report/interpret and the critical-value API over real HTTP."""

from __future__ import annotations

import httpx

from tests.reportread.helpers import CBC, LFT, bundle, panel
from tests.reportread.test_critical import seed


def test_interpret_inline_and_stored_reports(server, fhir):
    patient = {"resourceType": "Patient", "id": "http-p1", "gender": "female", "birthDate": "1980-06-01"}
    doc = bundle(patient, panel(CBC + LFT))
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post("/api/report/interpret", json=doc)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) == len(CBC) + len(LFT) and body["summary"]
        alt = next(i for i in body["items"] if i["code"] == "1742-6")
        assert alt["flag"] == "high" and alt["interval"]["high"] == 40 and alt["interval"]["unit"] == "U/L"

        # the same report stored on the platform, interpreted by reference
        tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": e["resource"], "request": {"method": "PUT",
                                                    "url": f"{e['resource']['resourceType']}/{e['resource']['id']}"}}
            for e in doc["entry"]]}
        assert fhir.post("", json=tx).status_code == 200
        r = client.post("/api/report/interpret", json={"report": "DiagnosticReport/rep1"})
        assert r.status_code == 200, r.text
        stored = r.json()
        assert stored["report"] == "DiagnosticReport/rep1"
        assert [i["flag"] for i in stored["items"]] == [i["flag"] for i in body["items"]]

        assert client.post("/api/report/interpret", json={"report": "DiagnosticReport/nope"}).status_code == 404
        for bad in ({}, {"report": 5}, {"report": "Patient/x"}, {"resourceType": "Patient"}, [],
                    {"resourceType": "Bundle", "type": "collection", "entry": []}, {"report": "DiagnosticReport/rep1", "age": -3},
                    {"report": "DiagnosticReport/rep1", "x": 1}):
            r = client.post("/api/report/interpret", json=bad)
            assert r.status_code == 400, (bad, r.status_code, r.text)
            assert r.json()["resourceType"] == "OperationOutcome"
        # an HL7 v2 ORU with neither PID nor OBR (full ORU tests: tests/recognition/test_report_hl7v2.py)
        r = client.post("/api/report/interpret", content=b"MSH|^~\\&|LIS|H1|||20240501||ORU^R01|1|P|2.5\r",
                        headers={"content-type": "x-application/hl7-v2+er7"})
        assert r.status_code == 400 and "HL7 v2" in r.text and r.json()["resourceType"] == "OperationOutcome"


def test_critical_value_reaches_the_doctor_and_is_acknowledged(server, server_store):
    seed(server_store)
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.get("/api/report/critical", params={"doctor": "PractitionerRole/role1", "status": "open"})
        assert r.status_code == 200
        alerts = r.json()
        assert len(alerts) == 1 and alerts[0]["analyte"] == "K" and alerts[0]["direction"] == "critical-high"
        comm = client.get("/fhir/Communication?recipient=PractitionerRole/role1&status=in-progress").json()
        assert comm["entry"][0]["resource"]["priority"] == "stat"
        r = client.post(f"/api/report/critical/{alerts[0]['id']}/ack", json={"by": "PractitionerRole/role1"})
        assert r.status_code == 200 and r.json()["status"] == "acknowledged"
        assert client.post(f"/api/report/critical/{alerts[0]['id']}/ack", json={}).status_code == 409
        assert client.post("/api/report/critical/nope/ack", json={}).status_code == 404
        assert client.post(f"/api/report/critical/{alerts[0]['id']}/ack", json={"by": "bad"}).status_code == 400
        stats = client.get("/api/report/critical/stats").json()
        assert stats["total"] == 1 and stats["acknowledged"] == 1
        assert client.post("/api/report/critical/escalate").json() == {"escalated": []}
