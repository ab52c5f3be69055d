"""``POST /api/card/verify`` has a fast path (``hutong.card.fast_verify``) for canonical requests; every other
request goes to the route. Both must answer alike, over real HTTP on both backends."""

from __future__ import annotations

import orjson

from hutong.card.fast_verify import canonical_request

STAFF = {"X-Hutong-Role": "operator"}




def _fresh_code(api, card):
    r = api.get(f"/api/card/cards/{card['card_id']}/qr", headers={"X-Card-Token": card["holder_token"]})
    assert r.status_code == 200, r.text
    return r.json()["qr_text"]


def _request(code, **extra):
    return {"qr_text": code, "institution": "h1", "terminal": "counter", "purpose": "registration", **extra}


def test_only_canonical_requests_take_the_fast_path():
    good = _request("HTC1:ABC")
    assert canonical_request(orjson.dumps(good)) == good
    for bad in (_request(" HTC1:ABC"), _request("HTC1:ABC", extra="x"), {**good, "terminal": "tv"},
                {**good, "institution": "bad id!"}, {**good, "qr_text": ""}, {**good, "qr_text": 7}, [good]):
        assert canonical_request(orjson.dumps(bad)) is None, bad
    assert canonical_request(b"{not json") is None


def test_fast_and_routed_verification_answer_alike(api):
    card = api.post("/api/card/cards", json={"patient": "Patient/p1"}, headers=STAFF).json()
    fast = api.post("/api/card/verify", json=_request(_fresh_code(api, card)), headers=STAFF)
    # Surrounding whitespace is not canonical: the route strips it (its model does) and verifies.
    routed = api.post("/api/card/verify", json=_request(" " + _fresh_code(api, card) + " "), headers=STAFF)
    assert fast.status_code == routed.status_code == 200, (fast.text, routed.text)
    assert fast.headers["content-type"] == routed.headers["content-type"]
    a, b = fast.json(), routed.json()
    a.pop("code"), b.pop("code")  # the two codes differ in their issue times
    assert a == b and a["institution_record"]["value"] == "MR-0001"


def test_refusals_and_malformed_requests(api):
    card = api.post("/api/card/cards", json={"patient": "Patient/p1"}, headers=STAFF).json()
    code = _fresh_code(api, card)
    assert api.post("/api/card/verify", json=_request(code)).status_code == 200
    # The replay policy lets a code serve one visit at one institution: a second institution is refused.
    replay = api.post("/api/card/verify", json=_request(code, institution="h2"))
    assert replay.status_code == 409 and replay.json()["resourceType"] == "OperationOutcome"
    garbage = api.post("/api/card/verify", json=_request("HTC1:NOT-A-CODE"))
    assert 400 <= garbage.status_code < 500 and garbage.json()["resourceType"] == "OperationOutcome"
    unknown_field = api.post("/api/card/verify", json=_request(code, extra=1))
    assert unknown_field.status_code == 400 and unknown_field.json()["resourceType"] == "OperationOutcome"
    bad_role = api.post("/api/card/verify", json=_request(code), headers={"X-Hutong-Role": "king"})
    assert bad_role.status_code == 400 and "unknown role" in bad_role.json()["issue"][0]["diagnostics"]
    broken = api.post("/api/card/verify", content=b'{"qr_text": ', headers={"Content-Type": "application/json"})
    assert 400 <= broken.status_code < 500
