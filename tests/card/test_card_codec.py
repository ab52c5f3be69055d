"""The QR payload: round trip, strict decoding, tamper refusal, QR version (segno)."""

from __future__ import annotations

import os
import string

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from hutong.card import codec, sm2
from hutong.card.crypto import SigningKey
from hutong.card.verify import CardRefusal, TrustList, sign_code, verify_qr

ED = SigningKey.generate("ed25519")
ALGS = ["ed25519"] + (["sm2"] if sm2.available() else [])
KEYS = {alg: (ED if alg == "ed25519" else SigningKey.generate(alg)) for alg in ALGS}
TRUST = {alg: TrustList([k.verify_key()]) for alg, k in KEYS.items()}
NOW = 1_800_000_000

headers = st.builds(
    codec.CodeHeader,
    alg=st.sampled_from([codec.ALG_ED25519, codec.ALG_SM2]),
    kid=st.binary(min_size=4, max_size=4),
    card_ref=st.binary(min_size=10, max_size=10),
    issued_at=st.integers(0, 2**32 - 1),
    expires_at=st.integers(0, 2**32 - 1),
    nonce=st.binary(min_size=8, max_size=8),
)


@given(headers, st.binary(min_size=64, max_size=64))
def test_round_trip(header, sig):
    text = codec.encode(header, sig)
    assert len(text) == codec.TEXT_LEN
    assert codec.decode(text) == (header, sig)
    assert codec.decode(f"  {text}\r\n") == (header, sig)  # scanners append CR/LF


@given(st.text(max_size=300))
def test_decoder_never_crashes(text):
    try:
        codec.decode(text)
    except codec.MalformedCode:
        pass


def test_card_id_round_trip():
    ref = os.urandom(10)
    cid = codec.card_ref_to_id(ref)
    assert codec.is_card_id(cid) and codec.card_id_to_ref(cid) == ref
    for bad in ["", "ABCDEFGHIJKLMNOP", "abc", "a" * 17, "abcdefghijklmno1"]:
        assert not codec.is_card_id(bad)


@pytest.mark.parametrize("alg", ALGS)
def test_no_personal_data_and_qr_version(alg):
    text, exp = sign_code(KEYS[alg], os.urandom(10), 60, now=NOW)
    assert exp == NOW + 60
    assert set(text) <= set(string.ascii_uppercase + string.digits + ":")  # QR alphanumeric set
    qr = segno.make(text, error="m", boost_error=False)
    assert qr.version <= 7 and qr.error == "M" and qr.mode == "alphanumeric"
    assert segno.make(text, error="m").version <= 7


@pytest.mark.parametrize("alg", ALGS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_tampered_character_is_refused(alg, data):
    text, _ = sign_code(KEYS[alg], os.urandom(10), 60, now=NOW)
    assert verify_qr(text, TRUST[alg], now=NOW).card_id
    i = data.draw(st.integers(0, len(text) - 1))
    c = data.draw(st.sampled_from(string.ascii_letters + string.digits + ":= +/%$*.-"))
    if c == text[i]:
        return
    with pytest.raises(CardRefusal):
        verify_qr(text[:i] + c + text[i + 1 :], TRUST[alg], now=NOW)


@pytest.mark.parametrize("alg", ALGS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_tampered_payload_byte_is_refused(alg, data):
    text, _ = sign_code(KEYS[alg], os.urandom(10), 60, now=NOW)
    header, sig = codec.decode(text)
    raw = bytearray(header.pack() + sig)
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    import base64

    forged = codec.PREFIX + base64.b32encode(bytes(raw)).decode()
    with pytest.raises(CardRefusal) as err:
        verify_qr(forged, TRUST[alg], now=NOW)
    assert err.value.reason in {"bad-signature", "unknown-key", "malformed", "wrong-algorithm"}
