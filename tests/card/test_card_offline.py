"""Offline verification against a JWKS: every offline refusal reason, SM2 interop, key rotation in JWKS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from hutong.card import codec, sm2
from hutong.card.crypto import SigningKey, VerifyKey
from hutong.card.verify import CardRefusal, TrustList, sign_code, verify_qr

NOW = 1_800_000_000
needs_sm2 = pytest.mark.skipif(not sm2.available(), reason="OpenSSL without SM2")


def _jwks(*keys, **kw):
    return {"keys": [k.verify_key(**kw).to_jwk() for k in keys]}


def _refused(text, jwks, reason, now=NOW):
    with pytest.raises(CardRefusal) as err:
        verify_qr(text, jwks, now=now)
    assert err.value.reason == reason
    outcome = err.value.outcome()
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == reason
    return err.value


@pytest.mark.parametrize("alg", ["ed25519", pytest.param("sm2", marks=needs_sm2)])
def test_valid_code(alg):
    key = SigningKey.generate(alg)
    ref = os.urandom(10)
    text, exp = sign_code(key, ref, 60, now=NOW)
    code = verify_qr(text, json.dumps(_jwks(key)), now=NOW + 30)
    assert code.card_id == codec.card_ref_to_id(ref) and code.alg == alg and code.expires_at == exp
    assert code.kid == key.kid_text


def test_refusal_reasons_offline():
    key, other = SigningKey.generate("ed25519"), SigningKey.generate("ed25519")
    text, _ = sign_code(key, os.urandom(10), 60, now=NOW)
    jwks = _jwks(key)
    assert _refused("hello", jwks, "malformed").status == 400
    assert _refused(text.lower(), jwks, "malformed").status == 400
    assert _refused(text, _jwks(other), "unknown-key").status == 422
    _refused(text, jwks, "expired", now=NOW + 60 + 6)
    verify_qr(text, jwks, now=NOW + 60 + 4)  # within the 5 s leeway
    _refused(text, jwks, "not-yet-valid", now=NOW - 60)
    _refused(text, _jwks(key, expires_at=NOW - 1), "key-expired")
    _refused(text, _jwks(key, not_before=NOW + 100), "not-yet-valid")
    # Same key id, other key material: the signature does not check.
    impostor = SigningKey(key.kid, "ed25519", other.private_bytes())
    _refused(text, _jwks(impostor), "bad-signature")


@needs_sm2
def test_wrong_algorithm_is_refused():
    ed = SigningKey.generate("ed25519")
    sm = SigningKey.generate("sm2", kid=ed.kid)
    text, _ = sign_code(ed, os.urandom(10), 60, now=NOW)
    _refused(text, _jwks(sm), "wrong-algorithm")


def test_rotation_both_keys_verify():
    old, new = SigningKey.generate("ed25519"), SigningKey.generate("ed25519")
    t_old, _ = sign_code(old, os.urandom(10), 60, now=NOW)
    t_new, _ = sign_code(new, os.urandom(10), 60, now=NOW)
    jwks = {"keys": [old.verify_key(expires_at=NOW + 3600).to_jwk(), new.verify_key().to_jwk()]}
    assert verify_qr(t_old, jwks, now=NOW + 10).kid == old.kid_text
    assert verify_qr(t_new, jwks, now=NOW + 10).kid == new.kid_text


def test_jwk_round_trip_and_bad_jwks():
    key = SigningKey.generate("ed25519")
    jwk = key.verify_key(not_before=1, expires_at=2).to_jwk()
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
    back = VerifyKey.from_jwk(jwk)
    assert back.public == key.public and back.expires_at == 2
    with pytest.raises(ValueError):
        TrustList.from_jwks({"nokeys": []})
    # Unusable keys are skipped, not fatal.
    trust = TrustList.from_jwks({"keys": [{"kty": "RSA", "kid": "00000000"}, jwk, "junk"]})
    assert list(trust.keys) == [key.kid]


@needs_sm2
def test_sm2_jwk_and_openssl_interop(tmp_path):
    key = SigningKey.generate("sm2")
    jwk = key.verify_key().to_jwk()
    assert jwk["kty"] == "EC" and jwk["crv"] == "SM2" and jwk["alg"] == "SM2SM3"
    assert VerifyKey.from_jwk(jwk).public == key.public
    msg = b"hutong card interop"
    sig = key.sign(msg)
    assert len(sig) == 64 and VerifyKey.from_jwk(jwk).verify(sig, msg)
    assert not VerifyKey.from_jwk(jwk).verify(sig, msg + b"!")
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    (tmp_path / "pub.der").write_bytes(sm2.spki_der(key.public))
    (tmp_path / "msg").write_bytes(msg)
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    (tmp_path / "sig").write_bytes(encode_dss_signature(r, s))
    out = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-rawin",
         "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", "msg", "-sigfile", "sig"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert "Verified Successfully" in out.stdout, out.stdout + out.stderr


@needs_sm2
def test_sm2_signatures_are_randomised_and_bound_to_the_id():
    key = SigningKey.generate("sm2")
    msg = b"x"
    assert key.sign(msg) != key.sign(msg)
    other_id = sm2.SM2PublicKey(key.public, distinguishing_id=b"ALICE123@YAHOO.COM")
    assert not other_id.verify(key.sign(msg), msg)
    assert not sm2.SM2PublicKey(key.public).verify(b"\x00" * 64, msg)
