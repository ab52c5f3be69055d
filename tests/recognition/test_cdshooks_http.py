"""CDS Hooks over real HTTP: discovery, the spec's own example requests, recognition cards,
feedback (both backends)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from hutong.recognition import vocab as V
from hutong.recognition.tables import recognition_offer
from hutong.share.tables import share_care
from tests.recognition.helpers import CBC_ORDER, LOINC, RESIDENT, RESIDENT_ID, cbc_report, order, seed

EXAMPLES = json.loads((Path(__file__).parent / "data" / "cds_hooks_examples.json").read_text())
HIS_B = {"X-Hutong-Client": "his-b", "X-Hutong-Institution": "hosp-b"}


def check_card(card: dict) -> None:
    """The card rules of CDS Hooks 2.0 (§ Card attributes)."""
    assert uuid.UUID(card["uuid"])
    assert isinstance(card["summary"], str) and len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"]["label"], str) and card["source"]["label"]
    topic = card["source"].get("topic")
    assert topic is None or {"system", "code"} <= set(topic)
    for s in card.get("suggestions", []):
        assert s["label"] and uuid.UUID(s["uuid"]) and isinstance(s.get("isRecommended", False), bool)
        for a in s["actions"]:
            assert a["type"] in ("create", "update", "delete") and a["description"]
            if a["type"] == "delete":
                assert all(isinstance(r, str) and "/" in r for r in a["resourceId"])
    if card.get("suggestions"):
        assert card["selectionBehavior"] in ("at-most-one", "any")
    for c in card.get("overrideReasons", []):
        assert set(c) <= {"system", "code", "display", "version", "userSelected"} and c["code"] and c["system"]


def request(hook: str, drafts: list[dict], patient_id: str, prefetch: dict | None = None) -> dict:
    ctx = {"userId": "Practitioner/doc-b", "patientId": patient_id,
           "draftOrders": {"resourceType": "Bundle", "type": "collection",
                           "entry": [{"resource": d} for d in drafts]}}
    if hook == "order-select":
        ctx["selections"] = [f"ServiceRequest/{d['id']}" for d in drafts]
    body = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": ctx}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def test_discovery_and_the_specs_example_requests(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.get("/cds-services")
        assert r.status_code == 200
        services = {s["id"]: s for s in r.json()["services"]}
        assert {s["hook"] for s in services.values()} == {"order-select", "order-sign"}
        for s in services.values():
            assert s["title"] and s["description"] and s["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        for hook, sid in (("order-select", "recognition-order-select"), ("order-sign", "recognition-order-sign")):
            body = dict(EXAMPLES[hook], hook=hook, hookInstance="d1577c69-dfbe-44ad-ba6d-3e05e953b2ea")
            r = c.post(f"/cds-services/{sid}", json=body, headers=HIS_B)
            # no ServiceRequest in the examples (a diet and a medication): no cards, and no error
            assert r.status_code == 200, r.text
            assert r.json() == {"cards": []}
        # wrong hook, not JSON, no context, unknown service
        body = dict(EXAMPLES["order-sign"], hook="order-sign", hookInstance="x")
        assert c.post("/cds-services/recognition-order-select", json=body).status_code == 400
        assert c.post("/cds-services/recognition-order-sign", content=b"{", headers={"content-type": "application/json"}).status_code == 400
        assert c.post("/cds-services/recognition-order-sign", json={"hook": "order-sign", "hookInstance": "x"}).status_code == 400
        sel = dict(EXAMPLES["order-select"], hook="order-select", hookInstance="x")
        sel["context"] = dict(sel["context"], selections="all")
        assert c.post("/cds-services/recognition-order-select", json=sel).status_code == 400
        assert c.post("/cds-services/nope", json=body).status_code == 404


def test_card_feedback_and_records(server, server_store):
    seed(server_store)
    with server_store.write() as tx:
        r = cbc_report("rep-a", "pa", "hosp-a", 2)
        tx.update("DiagnosticReport", "rep-a", r)
        ct = {"resourceType": "ImagingStudy", "id": "ct-a", "status": "available",
              "meta": {"source": "urn:hutong:org:hosp-a"}, "subject": {"reference": "Patient/pa"},
              "started": r["effectiveDateTime"], "numberOfSeries": 1, "numberOfInstances": 200,
              "procedureCode": [{"coding": [{"system": LOINC, "code": "24627-2"}], "text": "胸部CT平扫"}]}
        tx.update("ImagingStudy", "ct-a", ct)
    server_store.run_consumers()
    drafts = [order("sr-cbc", "his-b-1", CBC_ORDER), order("sr-ct", "his-b-1", [{"system": LOINC, "code": "24627-2"}]),
              order("sr-other", "his-b-1", [{"system": LOINC, "code": "2345-7"}])]
    with httpx.Client(base_url=server, timeout=60) as c:
        # the HIS's own patient number (B's record number), nothing prefetched, no fhirServer
        r = c.post("/cds-services/recognition-order-select", json=request("order-select", drafts, "B0042"), headers=HIS_B)
        assert r.status_code == 200, r.text
        cards = r.json()["cards"]
        assert len(cards) == 2
        for card in cards:
            check_card(card)
            assert card["summary"].startswith("[HR]") and "长春甲医院" in card["summary"]
            assert {c["code"] for c in card["overrideReasons"]} == set(V.OVERRIDE_REASONS)
        by_order = {c["suggestions"][0]["actions"][0]["resourceId"][0]: c for c in cards}
        assert set(by_order) == {"ServiceRequest/sr-cbc", "ServiceRequest/sr-ct"}
        assert "血常规未见明显异常" in by_order["ServiceRequest/sr-cbc"]["detail"]

        # an unknown local id with the patient prefetched: found through the resident ID
        pre = {"patient": {"resourceType": "Patient", "id": "777", "identifier": [{"system": RESIDENT, "value": RESIDENT_ID}]}}
        r = c.post("/cds-services/recognition-order-sign", json=request("order-sign", drafts[:1], "777", pre), headers=HIS_B)
        sign_card = r.json()["cards"][0]
        # order-select only looks at the selections
        body = request("order-select", drafts, "B0042")
        body["context"]["selections"] = ["ServiceRequest/sr-other"]
        assert c.post("/cds-services/recognition-order-select", json=body, headers=HIS_B).json() == {"cards": []}
        # a patient nobody knows: no cards
        assert c.post("/cds-services/recognition-order-sign", json=request("order-sign", drafts, "nobody"),
                      headers=HIS_B).json() == {"cards": []}

        cbc, ct = by_order["ServiceRequest/sr-cbc"], by_order["ServiceRequest/sr-ct"]
        fb = {"feedback": [{"card": cbc["uuid"], "outcome": "accepted",
                            "acceptedSuggestions": [{"id": cbc["suggestions"][0]["uuid"]}],
                            "outcomeTimestamp": "2026-12-01T08:00:00Z"}]}
        assert c.post("/cds-services/recognition-order-select/feedback", json=fb, headers=HIS_B).status_code == 200
        reason = next(x for x in ct["overrideReasons"] if x["code"] == "critical-moment")
        fb = {"feedback": [{"card": ct["uuid"], "outcome": "overridden",
                            "overrideReason": {"reason": reason, "userComment": "术前复查"},
                            "outcomeTimestamp": "2026-12-01T08:01:00+08:00"}]}
        assert c.post("/cds-services/recognition-order-select/feedback", json=fb, headers=HIS_B).status_code == 200
        bad = [
            {"feedback": [{"card": sign_card["uuid"], "outcome": "maybe", "outcomeTimestamp": "2026-12-01T08:00:00Z"}]},
            {"feedback": [{"card": sign_card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T08:00:00Z",
                           "overrideReason": {"reason": {"system": "x", "code": "bored"}}}]},
            {"feedback": [{"card": sign_card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T08:00:00Z",
                           "overrideReason": {"reason": {"system": V.OVERRIDE_SYSTEM, "code": "other"}}}]},
            {"feedback": [{"card": sign_card["uuid"], "outcome": "accepted"}]},
            {"feedback": []}, [],
        ]
        for b in bad:
            assert c.post("/cds-services/recognition-order-sign/feedback", json=b, headers=HIS_B).status_code == 400, b
        unknown = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted", "outcomeTimestamp": "2026-12-01T08:00:00Z"}]}
        assert c.post("/cds-services/recognition-order-sign/feedback", json=unknown, headers=HIS_B).status_code == 404
        # a card of the order-sign service is not the order-select service's
        wrong = {"feedback": [{"card": sign_card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-01T08:00:00Z"}]}
        assert c.post("/cds-services/recognition-order-select/feedback", json=wrong, headers=HIS_B).status_code == 404
        # another hospital cannot answer for B's doctor
        other = {"X-Hutong-Client": "his-c", "X-Hutong-Institution": "hosp-c"}
        assert c.post("/cds-services/recognition-order-sign/feedback", json=wrong, headers=other).status_code == 404

    with server_store.read() as tx:
        rows = {r.card: r for r in tx.conn.execute(select(recognition_offer))}
        care = tx.conn.execute(select(share_care).where(share_care.c.via == "cds-order")).all()
    assert rows[cbc["uuid"]].outcome == "accepted" and rows[cbc["uuid"]].practitioner == "Practitioner/doc-b"
    assert rows[cbc["uuid"]].price == 20.0 and rows[cbc["uuid"]].institution == "hosp-b"
    assert (rows[ct["uuid"]].outcome, rows[ct["uuid"]].reason, rows[ct["uuid"]].comment) == ("overridden", "critical-moment", "术前复查")
    assert rows[sign_card["uuid"]].outcome is None and rows[sign_card["uuid"]].result == "DiagnosticReport/rep-a"
    assert {r.patient for r in care} <= {"pa", "pb"} and len(care) == 2

    # what it saves: one order and item counts once (order-select and order-sign offered sr-cbc twice)
    with httpx.Client(base_url=server, timeout=60) as c:
        r = c.get("/api/recognition/stats", params={"by": "item", "min_offers": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["totals"] == {"recognisable": 2, "recognised": 1, "overridden": 1, "pending": 0, "saved": 20.0,
                                  "rate": 0.5}
        assert {row["key"]: row["recognised"] for row in body["rows"]} == {"recognition-cbc": 1, "recognition-ct-chest": 0}
        assert body["overrides"] == [{"reason": "critical-moment", "label": V.OVERRIDE_REASONS["critical-moment"][0],
                                      "count": 1}]
        assert body["neverAccepting"] == []
        month = c.get("/api/recognition/stats", params={"by": "month"}).json()["rows"]
        assert len(month) == 1 and month[0]["recognisable"] == 2
        assert c.get("/api/recognition/stats", params={"since": "2999-01-01"}).json()["totals"]["recognisable"] == 0
        assert c.get("/api/recognition/stats", params={"since": "yesterday"}).status_code == 400
        assert c.get("/api/recognition/stats", params={"by": "colour"}).status_code in (400, 422)
        x = c.get("/api/recognition/stats.xlsx")
        assert x.status_code == 200 and x.content[:2] == b"PK"
        from io import BytesIO

        from openpyxl import load_workbook
        wb = load_workbook(BytesIO(x.content))
        assert {"by institution", "by item", "by department", "by month", "overrides", "never accepting"} <= set(wb.sheetnames)
        ws = wb["by institution"]
        assert [c.value for c in ws[3]][:7] == ["hosp-b", 2, 1, 1, 0, 0.5, 20.0]
        # the plain query behind the card
        r = c.post("/api/recognition/results", json={"patient": "Patient/pb", "codes": ["http://loinc.org|58410-2"],
                                                    "institution": "hosp-b"})
        assert r.status_code == 200 and r.json()["results"][0]["mark"] == "HR"
        assert c.post("/api/recognition/results", json={"patient": "pb", "codes": ["x"]}).status_code in (400, 422)
