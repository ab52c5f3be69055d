"""Signing and verification keys for card codes (Ed25519 by default, SM2-with-SM3 as an option), as JWK.

JWK forms published in the trust list (``GET /api/card/keys``):

- Ed25519: ``{"kty": "OKP", "crv": "Ed25519", "x": b64url(32 bytes), "alg": "EdDSA", ...}`` (RFC 8037).
- SM2: ``{"kty": "EC", "crv": "SM2", "x": b64url(32), "y": b64url(32), "alg": "SM2SM3", ...}``. JOSE
  registers no SM2 curve or algorithm; ``crv: "SM2"`` and ``alg: "SM2SM3"`` are this platform's names,
  the signature is SM2 over SM3 with the GM/T 0009 default distinguishing ID ``1234567812345678``.

Both carry ``kid`` (8 hex digits, the 4 key-id bytes in each code), ``use: "sig"``, ``nbf`` (when the key
began signing) and ``exp`` (the end of its verification life; codes are refused under it afterwards).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from hutong.card import codec, sm2

JWK_ALG = {"ed25519": "EdDSA", "sm2": "SM2SM3"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_kid() -> bytes:
    return os.urandom(codec.KID_LEN)


@dataclass
class VerifyKey:
    """A public key able to check codes, with its id and validity."""

    kid: bytes
    alg: str  # "ed25519" | "sm2"
    public: bytes  # Ed25519: 32 raw bytes; SM2: 65-byte uncompressed point
    not_before: int | None = None  # seconds
    expires_at: int | None = None  # seconds; verification stops after this

    def __post_init__(self):
        if self.alg == "ed25519":
            self._impl = Ed25519PublicKey.from_public_bytes(self.public)
        elif self.alg == "sm2":
            self._impl = sm2.SM2PublicKey(self.public)
        else:
            raise ValueError(f"unknown algorithm {self.alg!r}")

    @property
    def kid_text(self) -> str:
        return codec.kid_to_text(self.kid)

    @property
    def alg_code(self) -> int:
        return codec.ALG_CODES[self.alg]

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when the signature is valid; never raises for a bad signature."""
        if self.alg == "ed25519":
            try:
                self._impl.verify(signature, message)
                return True
            except InvalidSignature:
                return False
        return self._impl.verify(signature, message)

    def to_jwk(self) -> dict:
        """The JWK published in the trust list."""
        jwk: dict = {"kid": self.kid_text, "use": "sig", "alg": JWK_ALG[self.alg]}
        if self.alg == "ed25519":
            jwk.update({"kty": "OKP", "crv": "Ed25519", "x": b64url(self.public)})
        else:
            jwk.update({"kty": "EC", "crv": "SM2", "x": b64url(self.public[1:33]), "y": b64url(self.public[33:])})
        if self.not_before is not None:
            jwk["nbf"] = int(self.not_before)
        if self.expires_at is not None:
            jwk["exp"] = int(self.expires_at)
        return jwk

    @classmethod
    def from_jwk(cls, jwk: dict) -> VerifyKey:
        """Parse one JWK of the trust list; ``ValueError`` when it is not a card verification key."""
        if not isinstance(jwk, dict):
            raise ValueError("JWK must be an object")
        kid = codec.kid_from_text(jwk.get("kid", ""))
        kty, crv = jwk.get("kty"), jwk.get("crv")
        if kty == "OKP" and crv == "Ed25519":
            alg, public = "ed25519", b64url_decode(jwk.get("x", ""))
            if len(public) != 32:
                raise ValueError("Ed25519 x must be 32 bytes")
        elif kty == "EC" and crv == "SM2":
            x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
            if len(x) != 32 or len(y) != 32:
                raise ValueError("SM2 x and y must be 32 bytes")
            alg, public = "sm2", b"\x04" + x + y
        else:
            raise ValueError(f"unsupported key type {kty}/{crv}")
        if "alg" in jwk and jwk["alg"] != JWK_ALG[alg]:
            raise ValueError("JWK alg does not match its key type")
        nbf, exp = jwk.get("nbf"), jwk.get("exp")
        for v in (nbf, exp):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ValueError("nbf/exp must be integers")
        return cls(kid=kid, alg=alg, public=public, not_before=nbf, expires_at=exp)


class SigningKey:
    """A private key that signs codes."""

    def __init__(self, kid: bytes, alg: str, private: bytes, public: bytes | None = None):
        self.kid = kid
        self.alg = alg
        if alg == "ed25519":
            self._impl = Ed25519PrivateKey.from_private_bytes(private)
            public = self._impl.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif alg == "sm2":
            if public is None:
                raise ValueError("SM2 keys need their public point")
            self._impl = sm2.SM2PrivateKey(private, public)
        else:
            raise ValueError(f"unknown algorithm {alg!r}")
        self.public = public
        self._private = private

    @classmethod
    def generate(cls, alg: str, kid: bytes | None = None) -> SigningKey:
        kid = kid or new_kid()
        if alg == "ed25519":
            key = Ed25519PrivateKey.generate()
            raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            return cls(kid, alg, raw)
        if alg == "sm2":
            key = sm2.SM2PrivateKey.generate()
            return cls(kid, alg, key.private_bytes(), key.public_key.point)
        raise ValueError(f"unknown algorithm {alg!r}")

    def private_bytes(self) -> bytes:
        """Raw private key bytes; only ever handed to the at-rest encryption."""
        return self._private

    @property
    def alg_code(self) -> int:
        return codec.ALG_CODES[self.alg]

    @property
    def kid_text(self) -> str:
        return codec.kid_to_text(self.kid)

    def sign(self, message: bytes) -> bytes:
        return self._impl.sign(message)

    def verify_key(self, not_before: int | None = None, expires_at: int | None = None) -> VerifyKey:
        return VerifyKey(self.kid, self.alg, self.public, not_before, expires_at)
