"""Making codes and checking them offline: signature, key validity and expiry, without the server.

``verify_qr(text, jwks)`` is what a hospital system or the ``hutong card verify`` CLI runs against the
published trust list. The server's own verification (``service.verify_scan``) runs the same checks and then
the card status and replay checks that need the database.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from hutong.card import codec
from hutong.card.crypto import SigningKey, VerifyKey
from hutong.core.errors import FhirError

#: Refusal reasons: (HTTP status, FHIR issue-type code, Chinese message). The reason goes in
#: ``OperationOutcome.issue.details.coding`` with system ``REFUSAL_SYSTEM``.
REFUSALS: dict[str, tuple[int, str, str]] = {
    "malformed": (400, "structure", "二维码格式不正确"),
    "unknown-key": (422, "security", "二维码签名密钥未知"),
    "key-expired": (422, "security", "二维码签名密钥已过期"),
    "wrong-algorithm": (422, "security", "二维码签名算法与密钥不符"),
    "bad-signature": (422, "security", "二维码签名无效"),
    "not-yet-valid": (422, "processing", "二维码尚未生效（请检查终端时钟）"),
    "expired": (422, "expired", "二维码已过期，请刷新"),
    "unknown-card": (404, "not-found", "健康卡不存在"),
    "card-frozen": (409, "business-rule", "健康卡已冻结"),
    "card-revoked": (409, "business-rule", "健康卡已注销"),
    "replayed": (409, "duplicate", "二维码已被使用"),
    "unknown-institution": (422, "not-found", "机构未登记"),
    "institution-mismatch": (403, "forbidden", "请求机构与调用方机构不一致"),
}
REFUSAL_SYSTEM = "urn:hutong:card:refusal"


class CardRefusal(FhirError):
    """A code was refused; ``reason`` is one of ``REFUSALS``."""

    def __init__(self, reason: str, detail: str | None = None):
        status, code, message = REFUSALS[reason]
        text = message if not detail else f"{message}: {detail}"
        super().__init__(status, code, text, details_code=reason)
        self.issues[0].details_system = REFUSAL_SYSTEM
        self.reason = reason


@dataclass(frozen=True)
class VerifiedCode:
    """A code whose signature and validity checked out."""

    card_id: str
    kid: str
    alg: str
    issued_at: int
    expires_at: int
    nonce: str

    def to_dict(self) -> dict:
        return {
            "card_id": self.card_id,
            "kid": self.kid,
            "alg": self.alg,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "nonce": self.nonce,
        }


def sign_code(key: SigningKey, card_ref: bytes, ttl_seconds: int, now: float | None = None) -> tuple[str, int]:
    """A fresh signed code for ``card_ref``: ``(qr_text, expires_at_seconds)``."""
    if not 1 <= ttl_seconds <= 86400:
        raise ValueError("card QR lifetime must be between 1 second and 1 day")
    iat = int(time.time() if now is None else now)
    header = codec.CodeHeader(key.alg_code, key.kid, card_ref, iat, iat + ttl_seconds, os.urandom(codec.NONCE_LEN))
    return codec.encode(header, key.sign(header.signing_input())), header.expires_at


class TrustList:
    """Verification keys by key id, parsed once from a JWKS."""

    def __init__(self, keys: list[VerifyKey]):
        self.keys = {k.kid: k for k in keys}

    @classmethod
    def from_jwks(cls, jwks: dict | str | TrustList) -> TrustList:
        """Parse a JWKS (dict or JSON text); keys this verifier cannot use are skipped."""
        if isinstance(jwks, TrustList):
            return jwks
        if isinstance(jwks, (str, bytes)):
            jwks = json.loads(jwks)
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise ValueError("a JWKS needs a 'keys' array")
        keys = []
        for jwk in jwks["keys"]:
            try:
                keys.append(VerifyKey.from_jwk(jwk))
            except Exception:  # noqa: BLE001 - one unusable key (e.g. SM2 without OpenSSL SM2) must not hide others
                continue
        return cls(keys)


def check_code(text: str, keys: dict[bytes, VerifyKey], now: float | None = None, leeway: int = 5) -> VerifiedCode:
    """Decode and check ``text`` against ``keys``; raise ``CardRefusal`` with the first failing reason.

    Order: format, key known, algorithm, key validity, signature, then times (so an attacker learns
    nothing about times or keys from a forged code beyond "bad signature").
    """
    try:
        header, signature = codec.decode(text)
    except codec.MalformedCode as exc:
        raise CardRefusal("malformed", str(exc)) from None
    key = keys.get(header.kid)
    if key is None:
        raise CardRefusal("unknown-key")
    if key.alg_code != header.alg:
        raise CardRefusal("wrong-algorithm")
    if not key.verify(signature, header.signing_input()):
        raise CardRefusal("bad-signature")
    now_s = time.time() if now is None else now
    if key.expires_at is not None and now_s > key.expires_at:
        raise CardRefusal("key-expired")
    if header.issued_at > now_s + leeway or (key.not_before is not None and header.issued_at + leeway < key.not_before):
        raise CardRefusal("not-yet-valid")
    if header.expires_at <= header.issued_at:
        raise CardRefusal("malformed", "expiry before issue")
    if now_s >= header.expires_at + leeway:
        raise CardRefusal("expired")
    return VerifiedCode(
        card_id=header.card_id,
        kid=header.kid_text,
        alg=codec.ALG_NAMES[header.alg],
        issued_at=header.issued_at,
        expires_at=header.expires_at,
        nonce=header.nonce_text,
    )


def verify_qr(qr_text: str, jwks: dict | str | TrustList, now: float | None = None, leeway: int = 5) -> VerifiedCode:
    """Check a scanned code offline against a JWKS trust list (signature, key validity, expiry).

    Raises ``CardRefusal`` (``.reason`` is the refusal code) when the code must not be accepted. It does
    not know card status or replays: only the platform does (``POST /api/card/verify``).
    """
    trust = TrustList.from_jwks(jwks)
    return check_code(qr_text, trust.keys, now=now, leeway=leeway)


def load_jwks(source: str, timeout: float = 10.0) -> dict:
    """A JWKS from a file path or an http(s) URL."""
    if source.startswith("http://") or source.startswith("https://"):
        import httpx

        resp = httpx.get(source, timeout=timeout)
        resp.raise_for_status()
        return resp.json()
    with open(source, encoding="utf-8") as fh:
        return json.load(fh)
