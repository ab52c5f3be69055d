"""The card API over real HTTP (both backends): issue, read, status, QR, verify, JWKS, registration, stats."""

from __future__ import annotations

from hutong.card import service as S
from hutong.card.verify import verify_qr

STAFF = {"X-Hutong-Role": "operator"}
TERMINAL = {"X-Hutong-Role": "terminal", "X-Hutong-Institution": "h1"}




def _reason(resp):
    return resp.json()["issue"][0]["details"]["coding"][0]["code"]


def _issue(api, patient="Patient/p1"):
    r = api.post("/api/card/cards", json={"patient": patient}, headers=STAFF)
    assert r.status_code == 201, r.text
    return r.json()


def test_issue_qr_verify_over_http(api):
    card = _issue(api)
    cid, token = card["card_id"], card["holder_token"]
    assert api.get(f"/api/card/cards/{cid}", headers={"X-Card-Token": token}).json()["status"] == "active"
    assert api.post("/api/card/cards", json={"patient": "Patient/p1"}, headers=STAFF).status_code == 409
    qr = api.get(f"/api/card/cards/{cid}/qr", headers={"X-Card-Token": token})
    assert qr.status_code == 200 and qr.headers["cache-control"] == "no-store"
    body = qr.json()
    assert body["qr_text"].startswith("HTC1:") and body["ttl"] == 60 and 55 <= body["expires_in"] <= 60
    jwks = api.get("/api/card/keys").json()
    assert verify_qr(body["qr_text"], jwks).card_id == cid
    v = api.post("/api/card/verify", json={"qr_text": body["qr_text"], "institution": "h1",
                                           "terminal": "counter", "purpose": "registration"}, headers=TERMINAL)
    assert v.status_code == 200, v.text
    out = v.json()
    assert out["patient"] == "Patient/p1" and out["institution_record"]["value"] == "MR-0001"
    assert out["resident_id_masked"] is True  # the terminal role sees the masked ID
    again = api.post("/api/card/verify", json={"qr_text": body["qr_text"], "institution": "h2",
                                               "terminal": "counter", "purpose": "registration"})
    assert again.status_code == 409 and _reason(again) == "replayed"
    mismatch = api.post("/api/card/verify", json={"qr_text": body["qr_text"], "institution": "h2",
                                                  "terminal": "counter", "purpose": "registration"}, headers=TERMINAL)
    assert mismatch.status_code == 403 and _reason(mismatch) == "institution-mismatch"
    svg = api.get(f"/api/card/cards/{cid}/qr?format=svg", headers={"X-Card-Token": token})
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    png = api.get(f"/api/card/cards/{cid}/qr?format=png", headers={"X-Card-Token": token})
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and "x-card-expires-at" in png.headers


def test_authorisation(api):
    card = _issue(api)
    cid = card["card_id"]
    resident = {"X-Hutong-Role": "resident"}
    assert api.post("/api/card/cards", json={"patient": "Patient/p1"}, headers=resident).status_code == 403
    assert api.get(f"/api/card/cards/{cid}/qr", headers=resident).status_code == 403
    assert api.get(f"/api/card/cards/{cid}/qr", headers={**resident, "X-Card-Token": "wrong"}).status_code == 403
    r = api.post(f"/api/card/cards/{cid}/status", json={"status": "revoked"},
                 headers={**resident, "X-Card-Token": card["holder_token"]})
    assert r.status_code == 403
    r = api.post(f"/api/card/cards/{cid}/status", json={"status": "frozen", "reason": "手机丢失"},
                 headers={**resident, "X-Card-Token": card["holder_token"]})
    assert r.status_code == 200 and r.json()["status"] == "frozen"
    r = api.get(f"/api/card/cards/{cid}/qr", headers={**resident, "X-Card-Token": card["holder_token"]})
    assert r.status_code == 409 and _reason(r) == "card-frozen"
    assert api.get("/api/card/stats/scans", headers=resident).status_code == 403


def test_status_reissue_and_refusals_over_http(api):
    card = _issue(api)
    cid = card["card_id"]
    code = api.get(f"/api/card/cards/{cid}/qr", headers=STAFF).json()["qr_text"]
    r = api.post(f"/api/card/cards/{cid}/reissue", headers=STAFF)
    assert r.status_code == 201 and r.json()["replaces"] == cid
    v = api.post("/api/card/verify", json={"qr_text": code, "institution": "h1", "terminal": "kiosk",
                                           "purpose": "payment"})
    assert v.status_code == 409 and _reason(v) == "card-revoked"
    for text, reason, status in [("garbage", "malformed", 400), (code[:-1] + ("A" if code[-1] != "A" else "B"),
                                                                 "bad-signature", 422)]:
        v = api.post("/api/card/verify", json={"qr_text": text, "institution": "h1", "terminal": "kiosk",
                                               "purpose": "payment"})
        assert v.status_code == status and _reason(v) == reason
        assert v.headers["content-type"].startswith("application/fhir+json")
    stats = api.get("/api/card/stats/refusals", headers=STAFF).json()
    assert {s["reason"] for s in stats} == {"card-revoked", "malformed", "bad-signature"}
    scans = api.get("/api/card/stats/scans", headers={"X-Hutong-Role": "statistician"}).json()
    assert scans[0]["institution"] == "h1" and scans[0]["scans"] == 3
    assert api.get("/api/card/stats/scans?since=2026-13", headers=STAFF).status_code == 400


BAD_REQUESTS = [
    ("post", "/api/card/cards", {"patient": "p1"}),
    ("post", "/api/card/cards", {"patient": "Patient/p1", "extra": 1}),
    ("post", "/api/card/cards", ["not", "an", "object"]),
    ("post", "/api/card/cards", "{"),
    ("post", "/api/card/cards", {"patient": "Patient/ghost"}),
    ("get", "/api/card/cards/NOTACARD", None),
    ("get", "/api/card/cards/aaaaaaaaaaaaaaaa", None),
    ("get", "/api/card/cards/aaaaaaaaaaaaaaaa/qr?format=gif", None),
    ("post", "/api/card/cards/aaaaaaaaaaaaaaaa/status", {"status": "gone"}),
    ("post", "/api/card/cards/aaaaaaaaaaaaaaaa/status", {"status": "frozen"}),
    ("post", "/api/card/verify", {"qr_text": "x"}),
    ("post", "/api/card/verify", {"qr_text": "x" * 10000, "institution": "h1", "terminal": "counter",
                                  "purpose": "registration"}),
    ("post", "/api/card/verify", {"qr_text": "HTC1:" + "A" * 152, "institution": "h 1", "terminal": "counter",
                                  "purpose": "registration"}),
    ("post", "/api/card/verify", {"qr_text": "HTC1:" + "A" * 152, "institution": "h1", "terminal": "atm",
                                  "purpose": "registration"}),
    ("post", "/api/card/verify", {"qr_text": None, "institution": "h1", "terminal": "counter",
                                  "purpose": "registration"}),
    ("post", "/api/card/register", {"id_number": "123456789012345678", "name": "张三", "phone": "13800138000"}),
    ("post", "/api/card/register", {"id_number": "x", "name": "张三", "phone": "1"}),
    ("post", "/api/card/register/confirm", {"registration_id": "0" * 32, "code": "123456"}),
    ("post", "/api/card/register/confirm", {"registration_id": "zz", "code": "12"}),
    ("get", "/card/NOT-A-CARD", None),
    ("get", "/card/static/../../etc/passwd", None),
    ("get", "/card/static/secret.py", None),
]


def test_bad_requests_are_4xx_outcomes(api):
    for method, path, body in BAD_REQUESTS:
        if isinstance(body, str):
            r = api.request(method.upper(), path, content=body, headers={"content-type": "application/json"})
        else:
            r = api.request(method.upper(), path, json=body)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
        if r.headers.get("content-type", "").startswith("application/fhir+json"):
            assert r.json()["resourceType"] == "OperationOutcome"


def test_self_registration_over_http(api, server_store, h):
    sender = S.use_memory_sender(server_store)
    r = api.post("/api/card/register", json={"id_number": h.rid(11), "name": "张伟", "phone": "13800138000"})
    assert r.status_code == 202, r.text
    reg = r.json()
    assert reg["phone"] == "138****8000"
    r = api.post("/api/card/register/confirm",
                 json={"registration_id": reg["registration_id"], "code": sender.last_code("13800138000")})
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["patient"] == "Patient/p1" and card["holder_token"]
    page = api.get(card["page"])
    assert page.status_code == 200 and "电子健康卡" in page.text and 'lang="zh-CN"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets
    js = api.get("/card/static/card.js")
    assert js.status_code == 200 and "X-Card-Token" in js.text


def test_openapi_documents_the_card_api(api):
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ["/api/card/cards", "/api/card/cards/{card_id}", "/api/card/cards/{card_id}/status",
                 "/api/card/cards/{card_id}/qr", "/api/card/verify", "/api/card/keys"]:
        assert path in paths
        for op in paths[path].values():
            assert op.get("summary")
    assert "replayed" in paths["/api/card/verify"]["post"]["description"]
