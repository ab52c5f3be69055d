"""Consultation records are kept 15 years: a generic FHIR DELETE of the Task, its messages or the
visit's Encounter is refused with 409 giving the date, over real HTTP on both backends; records that
belong to no consultation can still be deleted."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.consult.conftest import seed
from tests.consult.test_api import RESIDENT, doctor


def test_generic_delete_of_retained_records_is_refused_with_the_date(server, server_store):
    seed(server_store)
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.post("/api/consult/questions", headers=RESIDENT, json={
            "text": "血压偏高，想问问用药", "age": 58, "sex": "male", "hospital": "Organization/org-prov",
            "department": "03.04"})
        assert r.status_code == 201, r.text
        item = r.json()["id"]
        assert http.post(f"/api/consult/items/{item}/accept", headers=doctor("prr-cardio1")).status_code == 200
        sent = http.post(f"/api/consult/items/{item}/messages", headers=doctor("prr-cardio1"), json={"text": "请测血压"})
        assert sent.status_code == 201
        until = str(datetime.now(UTC).year + 15)

        refused = http.delete(f"/fhir/Task/{item}")
        assert refused.status_code == 409, refused.text
        issue = refused.json()["issue"][0]
        assert issue["code"] == "business-rule" and until in issue["diagnostics"] and "15" in issue["diagnostics"]
        assert http.get(f"/fhir/Task/{item}").status_code == 200

        comms = http.get("/fhir/Communication", params={"part-of": f"Task/{item}"}).json()["entry"]
        comm = comms[0]["resource"]["id"]
        assert http.delete(f"/fhir/Communication/{comm}").status_code == 409
        conditional = http.delete("/fhir/Communication", params={"part-of": f"Task/{item}"})
        assert conditional.status_code == 409, conditional.text
        assert http.get(f"/fhir/Communication/{comm}").status_code == 200

        # A record outside any consultation is not retained by this rule.
        assert http.delete("/fhir/Observation/obs-other").status_code == 200
        assert http.get("/fhir/Observation/obs-other").status_code == 410
