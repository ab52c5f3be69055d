"""POST /api/triage over real HTTP."""

from __future__ import annotations

import httpx


def test_triage_over_http(server):
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post("/api/triage", json={"text": "孩子发烧三天咳嗽"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["departments"][0]["code"] == "07" and body["intent"] == "symptom" and body["urgent"] is False

        r = client.post("/api/triage", json={"text": "胸口压榨样疼痛伴出汗半小时", "age": 58, "sex": "male"})
        body = r.json()
        assert body["urgent"] is True and body["departments"][0]["code"] == "20" and "120" in body["advice"]

        r = client.post("/api/triage", json={"text": "咳嗽有痰", "age": 50, "offered": ["03", "13"]})
        assert r.json()["departments"][0]["code"] == "03"

        for bad in ({}, {"text": ""}, {"text": "头痛", "age": 200}, {"text": "头痛", "sex": "x"},
                    {"text": "头痛", "extra": 1}, {"text": 5}):
            r = client.post("/api/triage", json=bad)
            assert r.status_code == 400, (bad, r.status_code)
            assert r.json()["resourceType"] == "OperationOutcome"
        r = client.post("/api/triage", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400

        deps = client.get("/api/triage/departments").json()
        assert {"code": "03.01", "name": "呼吸内科专业", "common": "呼吸内科", "parent": "03"} in deps
        assert client.get("/api/triage/model").json()["name"] == "hutong-default"
