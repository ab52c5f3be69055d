"""The card service on both backends: issuing, status, codes, every server-side refusal, replay, keys, stats."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat

import pytest
from sqlalchemy import select

from hutong.card import service as S
from hutong.card.keys import KeyError_, KeyRing
from hutong.card.tables import card_code_use, card_key, card_scan
from hutong.card.verify import CardRefusal, verify_qr
from hutong.core.errors import FhirError

CTX = S.ScanContext("h1", "counter", "registration")


@pytest.fixture(autouse=True)
def _helpers(h):
    global rid, put_org, put_patient
    rid, put_org, put_patient = h.rid, h.put_org, h.put_patient


@pytest.fixture
def world(store):
    put_org(store, "h1")
    put_org(store, "h2", "吉林大学第一医院")
    put_patient(store, "p1", resident_id=rid(11), mrn_org="h1", mrn="MR-0001", phone="13800138000")
    put_patient(store, "p2", family="李", given="娜", resident_id=rid(12, sex="female"))
    return store


def _refusal(fn, reason):
    with pytest.raises(CardRefusal) as err:
        fn()
    assert err.value.reason == reason
    return err.value


def test_issue_verify_identify(world):
    card, token = S.issue_card(world, "Patient/p1", issued_by="h1")
    assert card["status"] == "active" and card["subject"] == "Patient/p1" and len(token) > 30
    text, exp = S.make_qr(world, card["card_id"])
    assert "p1" not in text and rid(11) not in text
    out = S.verify_scan(world, text, CTX)
    assert out["patient"] == "Patient/p1" and out["name"] == "张伟"
    assert out["resident_id"] == rid(11) and out["resident_id_masked"] is False
    assert out["institution_record"] == {"patient": "Patient/p1", "system": "urn:hutong:mrn:h1", "value": "MR-0001"}
    # A kiosk sees masked name and ID; another institution has no record number.
    text2, _ = S.make_qr(world, card["card_id"])
    kiosk = S.verify_scan(world, text2, S.ScanContext("h2", "kiosk", "payment"))
    assert kiosk["name"] == "张*" and "*" in kiosk["resident_id"] and kiosk["institution_record"] is None
    # Offline verification with the published keys.
    assert verify_qr(text, S.service_for(world).keys.jwks()).card_id == card["card_id"]


def test_one_live_card_per_person_and_reissue(world):
    card, _ = S.issue_card(world, "Patient/p1")
    with pytest.raises(FhirError) as err:
        S.issue_card(world, "Patient/p1")
    assert err.value.status == 409 and card["card_id"] in err.value.diagnostics
    old_code, _ = S.make_qr(world, card["card_id"])
    new, token = S.reissue_card(world, card["card_id"])
    assert new["card_id"] != card["card_id"] and new["subject"] == card["subject"] and new["replaces"] == card["card_id"]
    assert S.get_card(world, card["card_id"])["status"] == "revoked"
    assert S.get_card(world, card["card_id"])["replaced_by"] == new["card_id"]
    _refusal(lambda: S.verify_scan(world, old_code, CTX), "card-revoked")
    assert S.verify_scan(world, S.make_qr(world, new["card_id"])[0], CTX)["card_id"] == new["card_id"]
    with pytest.raises(FhirError):
        S.issue_card(world, "Patient/nobody")


def test_status_transitions_and_refusals(world):
    card, _ = S.issue_card(world, "Patient/p1")
    cid = card["card_id"]
    code, _ = S.make_qr(world, cid)
    S.set_status(world, cid, "frozen", "手机丢失")
    _refusal(lambda: S.verify_scan(world, code, CTX), "card-frozen")
    with pytest.raises(FhirError) as err:
        S.make_qr(world, cid)
    assert err.value.status == 409
    S.set_status(world, cid, "active")
    assert S.verify_scan(world, code, CTX)["card_status"] == "active"
    S.set_status(world, cid, "revoked")
    with pytest.raises(FhirError) as err:
        S.set_status(world, cid, "active")
    assert err.value.status == 409
    _refusal(lambda: S.verify_scan(world, code, CTX), "card-revoked")
    # A revoked person may be issued a new card.
    assert S.issue_card(world, "Patient/p1")[0]["status"] == "active"
    with pytest.raises(FhirError):
        S.set_status(world, cid, "lost")


def test_every_server_refusal(world):
    card, _ = S.issue_card(world, "Patient/p1")
    svc = S.service_for(world)
    _refusal(lambda: S.verify_scan(world, "HTC1:XYZ", CTX), "malformed")
    code, _ = S.make_qr(world, card["card_id"])
    _refusal(lambda: S.verify_scan(world, code, S.ScanContext("nowhere", "counter", "registration")),
             "unknown-institution")
    # expired: verify later than expiry + leeway
    _refusal(lambda: S.verify_scan(world, code, CTX, now=__import__("time").time() + 120), "expired")
    # a code for a card id that was never issued, signed by the real key
    from hutong.card.verify import sign_code

    ghost, _ = sign_code(svc.keys.signer(), os.urandom(10), 60)
    _refusal(lambda: S.verify_scan(world, ghost, CTX), "unknown-card")
    # bad signature: flip one signature character
    i = len(code) - 3
    forged = code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1:]
    _refusal(lambda: S.verify_scan(world, forged, CTX), "bad-signature")
    # unknown key: a key this node never had
    from hutong.card.crypto import SigningKey

    _refusal(lambda: S.verify_scan(world, sign_code(SigningKey.generate("ed25519"),
                                                    bytes.fromhex("00" * 10), 60)[0], CTX), "unknown-key")
    with pytest.raises(FhirError) as err:
        S.verify_scan(world, code, S.ScanContext("h1", "phone", "registration"))
    assert err.value.status == 400
    reasons = {r["reason"] for r in S.refusals_by_reason(world)}
    assert {"malformed", "unknown-institution", "expired", "unknown-card", "bad-signature", "unknown-key"} <= reasons


def test_replay_policy_one_visit(world):
    card, _ = S.issue_card(world, "Patient/p1")
    code, _ = S.make_qr(world, card["card_id"])
    S.verify_scan(world, code, CTX)
    S.verify_scan(world, code, S.ScanContext("h1", "doctor-workstation", "consultation"))  # same visit
    _refusal(lambda: S.verify_scan(world, code, S.ScanContext("h2", "counter", "registration")), "replayed")
    with world.read() as tx:
        uses = tx.conn.execute(select(card_code_use.c.uses)).scalar_one()
    assert uses == 2


@pytest.mark.parametrize("policy", ["single-use", "none"])
def test_other_replay_policies(world, policy):
    world._card_service = S.CardService(world, dataclasses.replace(world.settings, card_replay_policy=policy))
    card, _ = S.issue_card(world, "Patient/p1")
    code, _ = S.make_qr(world, card["card_id"])
    S.verify_scan(world, code, CTX)
    if policy == "single-use":
        _refusal(lambda: S.verify_scan(world, code, CTX), "replayed")
    else:
        S.verify_scan(world, code, S.ScanContext("h2", "counter", "registration"))


def test_key_rotation(world):
    card, _ = S.issue_card(world, "Patient/p1")
    ring = S.service_for(world).keys
    old_code, _ = S.make_qr(world, card["card_id"])
    old_kid = ring.signer().kid_text
    new_kid = ring.rotate(grace_seconds=3600)
    assert new_kid != old_kid and ring.signer().kid_text == new_kid
    new_code, _ = S.make_qr(world, card["card_id"])
    assert S.verify_scan(world, old_code, CTX)["code"]["kid"] == old_kid
    assert S.verify_scan(world, new_code, CTX)["code"]["kid"] == new_kid
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old_kid, new_kid}
    ring.expire(old_kid)
    assert {k["kid"] for k in ring.jwks()["keys"]} == {new_kid}
    again, _ = S.make_qr(world, card["card_id"])
    assert S.verify_scan(world, again, CTX)
    code3 = old_code
    _refusal(lambda: S.verify_scan(world, code3, S.ScanContext("h1", "kiosk", "payment")), "key-expired")
    # Another process sees the rotation after re-reading the table.
    other = KeyRing(world, world.settings)
    assert other.signer().kid_text == new_kid


def test_keys_encrypted_at_rest(world, backend, tmp_path):
    ring = S.service_for(world).keys
    signer = ring.signer()
    private = signer.private_bytes()
    with world.read() as tx:
        rows = [dict(r._mapping) for r in tx.conn.execute(select(card_key))]
    blob = repr(rows).encode()
    for form in (private, private.hex().encode(), base64.b64encode(private), base64.urlsafe_b64encode(private).rstrip(b"=")):
        assert form not in blob
    if backend == "sqlite":
        db = world.settings.sqlalchemy_url.split("///", 1)[1]
        assert private not in open(db, "rb").read()
        kek_file = world.settings.data_dir / "card-kek"
        assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    # A different KEK cannot open the key.
    wrong = KeyRing(world, dataclasses.replace(world.settings, card_kek=base64.b64encode(os.urandom(32)).decode()))
    with pytest.raises(KeyError_):
        wrong.signer()


def test_configured_kek_passphrase(store):
    settings = dataclasses.replace(store.settings, card_kek="correct horse battery staple")
    ring = KeyRing(store, settings)
    kid = ring.signer().kid_text
    assert KeyRing(store, settings).signer().kid_text == kid
    assert not (store.settings.data_dir / "card-kek").exists()


def test_sm2_backend(world):
    from hutong.card import sm2

    if not sm2.available():
        pytest.skip("OpenSSL without SM2")
    world._card_service = S.CardService(world, dataclasses.replace(world.settings, card_alg="sm2"))
    card, _ = S.issue_card(world, "Patient/p1")
    code, _ = S.make_qr(world, card["card_id"])
    out = S.verify_scan(world, code, CTX)
    assert out["code"]["alg"] == "sm2"
    jwk = S.service_for(world).keys.jwks()["keys"][0]
    assert jwk["crv"] == "SM2"


def test_scan_statistics(world):
    card, _ = S.issue_card(world, "Patient/p1")
    for _ in range(3):
        S.verify_scan(world, S.make_qr(world, card["card_id"])[0], CTX)
    S.verify_scan(world, S.make_qr(world, card["card_id"])[0], S.ScanContext("h2", "mobile-app", "pharmacy"))
    with pytest.raises(CardRefusal):
        S.verify_scan(world, "junk", S.ScanContext("h2", "kiosk", "payment"))
    per_day = {r["institution"]: r for r in S.scans_per_institution_per_day(world)}
    assert per_day["h1"]["scans"] == 3 and per_day["h1"]["accepted"] == 3
    assert per_day["h2"]["scans"] == 2 and per_day["h2"]["refused"] == 1
    day = per_day["h1"]["day"]
    assert S.scans_per_institution_per_day(world, since=day, until=day, institution="h2")[0]["scans"] == 2
    assert S.scans_per_institution_per_day(world, since="2000-01-01", until="2000-01-02") == []
    assert S.refusals_by_reason(world) == [{"reason": "malformed", "count": 1}]
    with world.read() as tx:
        terminals = {r.terminal for r in tx.conn.execute(select(card_scan.c.terminal))}
    assert terminals == {"counter", "mobile-app", "kiosk"}


def test_self_registration(world):
    sender = S.use_memory_sender(world)
    started = S.start_registration(world, rid(11), "张伟", "13800138000")
    assert started["phone"] == "138****8000"
    code = sender.last_code("13800138000")
    assert code and len(code) == 6
    with pytest.raises(FhirError) as err:
        S.complete_registration(world, started["registration_id"], "000000" if code != "000000" else "111111")
    assert err.value.status == 422
    card, token = S.complete_registration(world, started["registration_id"], code)
    assert card["patient"] == "Patient/p1" and card["channel"] == "self" and card["phone"] == "138****8000"
    assert S.check_holder(world, card["card_id"], token) and not S.check_holder(world, card["card_id"], "x" * 43)
    with pytest.raises(FhirError) as err:  # a code works once
        S.complete_registration(world, started["registration_id"], code)
    assert err.value.status == 410
    # Name mismatch: the code is sent (no enumeration) but no card results.
    s2 = S.start_registration(world, rid(12, sex="female"), "王芳", "13900139000")
    with pytest.raises(FhirError) as err:
        S.complete_registration(world, s2["registration_id"], sender.last_code("13900139000"))
    assert err.value.status == 422
    for bad in [("123", "张伟", "13800138000"), (rid(11), "", "13800138000"), (rid(11), "张伟", "12345")]:
        with pytest.raises(FhirError) as err:
            S.start_registration(world, *bad)
        assert err.value.status == 400


def test_verification_code_attempts_and_rate_limit(world):
    sender = S.use_memory_sender(world)
    started = S.start_registration(world, rid(11), "张伟", "13700137000")
    code = sender.last_code("13700137000")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(S.VCODE_MAX_ATTEMPTS):
        with pytest.raises(FhirError):
            S.complete_registration(world, started["registration_id"], wrong)
    with pytest.raises(FhirError) as err:
        S.complete_registration(world, started["registration_id"], code)
    assert err.value.status == 410
    for _ in range(S.VCODE_MAX_PER_PHONE_PER_HOUR - 1):
        S.start_registration(world, rid(11), "张伟", "13700137000")
    with pytest.raises(FhirError) as err:
        S.start_registration(world, rid(11), "张伟", "13700137000")
    assert err.value.status == 429


def test_dependant_registration_by_guardian(world):
    sender = S.use_memory_sender(world)
    put_patient(world, "kid", family="张", given="小明", resident_id=rid(21, born=(2018, 3, 9)),
                contact_phone="13800138000")
    guardian, gtoken = S.issue_card(world, "Patient/p1", phone="13800138000")
    with pytest.raises(FhirError) as err:
        S.start_registration(world, rid(21, born=(2018, 3, 9)), "张小明", "13800138000",
                             guardian_card=guardian["card_id"], guardian_token="wrong", relationship="child")
    assert err.value.status == 403
    started = S.start_registration(world, rid(21, born=(2018, 3, 9)), "张小明", "13800138000",
                                   guardian_card=guardian["card_id"], guardian_token=gtoken, relationship="child")
    card, _ = S.complete_registration(world, started["registration_id"], sender.last_code("13800138000"))
    assert card["guardian_card"] == guardian["card_id"] and card["relationship"] == "child"
    assert S.check_holder(world, card["card_id"], gtoken)  # the guardian manages the child's card
    assert not S.check_holder(world, guardian["card_id"], "nope")
    assert [d["card_id"] for d in S.dependants(world, guardian["card_id"])] == [card["card_id"]]
    # A phone that is not on the dependant's record is refused.
    put_patient(world, "kid2", family="张", given="小红", resident_id=rid(22, born=(2019, 3, 9), sex="female"))
    s2 = S.start_registration(world, rid(22, born=(2019, 3, 9), sex="female"), "张小红", "13800138000",
                              guardian_card=guardian["card_id"], guardian_token=gtoken, relationship="child")
    with pytest.raises(FhirError) as err:
        S.complete_registration(world, s2["registration_id"], sender.last_code("13800138000"))
    assert err.value.status == 403
    # Institution-issued dependant card
    dep, _ = S.issue_card(world, "Patient/kid2", guardian_card=guardian["card_id"], relationship="child")
    assert dep["guardian_card"] == guardian["card_id"]


class _Unlinked:
    """A patient index that has not linked anything yet."""

    @staticmethod
    def linked_patients(store, pid):
        return []

    @staticmethod
    def person_for_patient(store, pid):
        return None


def test_identity_before_and_after_the_index_links_records(world, monkeypatch):
    from hutong.card import identity

    monkeypatch.setattr(identity, "mpi_service", _Unlinked)
    assert [p["id"] for p in identity.linked_patients(world, "p1")] == ["p1"]
    assert identity.subject_for_patient(world, "p1") == "Patient/p1"
    assert identity.linked_patients(world, "ghost") == []

    # A record of the same person at h2 (MRN assigned by h2), linked by a (fake) index.
    put_patient(world, "p1-h2", resident_id=rid(11), managing="h2")
    world.update("Patient", "p1-h2", {**world.get("Patient", "p1-h2"),
                                      "identifier": [{"system": "urn:x:h2-mrn", "value": "H2-77",
                                                      "type": {"coding": [{"code": "MR"}]}}]})

    class FakeMpi:
        @staticmethod
        def linked_patients(store, pid):
            return [world.get("Patient", "p1-h2"), world.get("Patient", "p1")]

        @staticmethod
        def person_for_patient(store, pid):
            return "Person/per1"

    monkeypatch.setattr(identity, "mpi_service", _Unlinked)
    early, _ = S.issue_card(world, "Patient/p1")  # issued before the index linked the records
    monkeypatch.setattr(identity, "mpi_service", FakeMpi)
    with pytest.raises(FhirError) as err:
        S.issue_card(world, "Patient/p1-h2")
    assert early["card_id"] in err.value.diagnostics
    S.set_status(world, early["card_id"], "revoked")
    card, _ = S.issue_card(world, "Patient/p1")
    assert card["subject"] == "Person/per1"
    with pytest.raises(FhirError):  # the same person through another record
        S.issue_card(world, "Patient/p1-h2")
    out = S.verify_scan(world, S.make_qr(world, card["card_id"])[0], S.ScanContext("h2", "counter", "registration"))
    assert out["person"] == "Person/per1"
    assert out["institution_record"] == {"patient": "Patient/p1-h2", "system": "urn:x:h2-mrn", "value": "H2-77"}
    assert out["name"] == "张伟"


def test_find_patients_by_resident_id(world):
    from hutong.card import identity

    assert identity.find_patients_by_resident_id(world, rid(11)) == ["p1"]
    assert identity._scan_patients(world, {rid(11)}) == ["p1"]
    assert identity.find_patients_by_resident_id(world, rid(99)) == []


def test_concurrent_scans_of_one_code(world):
    """Terminals racing with one code: under one-visit, every accepted scan is at one institution."""
    from concurrent.futures import ThreadPoolExecutor

    card, _ = S.issue_card(world, "Patient/p1")
    code, _ = S.make_qr(world, card["card_id"])
    fresh = [S.make_qr(world, card["card_id"])[0] for _ in range(20)]

    def scan(i):
        inst = "h1" if i % 2 else "h2"
        try:
            S.verify_scan(world, code, S.ScanContext(inst, "counter", "registration"))
            return inst
        except CardRefusal as refusal:
            assert refusal.reason == "replayed"
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [w for w in pool.map(scan, range(16)) if w]
        others = list(pool.map(lambda t: S.verify_scan(world, t, CTX)["card_id"], fresh))
    assert winners and len(set(winners)) == 1
    assert others == [card["card_id"]] * 20
    reasons = {r["reason"]: r["count"] for r in S.refusals_by_reason(world)}
    assert reasons.get("replayed") == 16 - len(winners)


def test_ttl_from_environment(world, monkeypatch):
    from hutong.config import load_settings

    monkeypatch.setenv("HUTONG_CARD_QR_TTL_SECONDS", "30")
    settings = load_settings(data_dir=world.settings.data_dir, database_url=world.settings.database_url)
    world._card_service = S.CardService(world, settings)
    card, _ = S.issue_card(world, "Patient/p1")
    import time as _time

    before = int(_time.time())
    _, exp = S.make_qr(world, card["card_id"])
    assert before + 29 <= exp <= int(_time.time()) + 30
