"""Signing keys at rest: AES-256-GCM under a key-encryption key (KEK), rotation, and the published JWKS.

The KEK comes from ``settings.card_kek`` (env ``HUTONG_CARD_KEK``): 32 bytes in base64/base64url, or any
other text taken as a passphrase and stretched with scrypt. When it is unset, a random KEK is generated
into ``<data_dir>/card-kek`` (mode 0600) and a warning is logged: fine for a single node, but production
should pass the KEK from a secret store so that a copy of the database alone never yields a key.

Key lifecycle: the newest un-retired key of the configured algorithm signs; ``rotate`` retires it (it
keeps verifying until ``expires_us``, by default one day later, far beyond any code's lifetime) and
creates a new one. Keys past ``expires_us`` leave the JWKS and their codes are refused (``key-expired``
when the verifier still knows them, ``unknown-key`` once they are gone).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, select, update

from hutong.card import codec
from hutong.card.crypto import SigningKey, VerifyKey, b64url, b64url_decode
from hutong.card.tables import card_key
from hutong.core import clock

log = logging.getLogger("hutong.card.keys")

KEK_FILE = "card-kek"
DEFAULT_VERIFY_GRACE_S = 86400
#: How long a process trusts its cached view of the key table before re-reading it.
KEY_CACHE_S = 15.0


class KeyError_(RuntimeError):
    """Keys cannot be used (wrong KEK, corrupted row)."""


def _kek_bytes(text: str) -> bytes:
    text = text.strip()
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decoder(text + "=" * (-len(text) % 4))
        except (ValueError, TypeError):
            continue
        if len(raw) == 32:
            return raw
    # A passphrase: stretch it (fixed salt: the KEK is a deployment secret, not a user password).
    return hashlib.scrypt(text.encode("utf-8"), salt=b"hutong-card-kek-v1", n=2**14, r=8, p=1, dklen=32)


def load_kek(settings) -> bytes:
    """The 32-byte KEK from configuration, or from (a newly generated) ``<data_dir>/card-kek``."""
    configured = getattr(settings, "card_kek", "") or ""
    if configured:
        return _kek_bytes(configured)
    path = Path(settings.data_dir) / KEK_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a private temp file, then link it into place atomically: concurrent workers either
        # win the link or read the winner's complete file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".card-kek-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
            os.close(fd)
            try:
                os.link(tmp, path)
                log.warning(
                    "HUTONG_CARD_KEK is not set: generated a key-encryption key in %s (mode 0600); "
                    "set HUTONG_CARD_KEK from a secret store in production",
                    path,
                )
            except FileExistsError:
                pass
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    else:
        log.warning("HUTONG_CARD_KEK is not set: using the key-encryption key file %s", path)
    return _kek_bytes(path.read_text().strip())


def kek_id(kek: bytes) -> str:
    """A non-secret fingerprint telling which KEK wrapped a key."""
    return hmac.new(kek, b"hutong-card-kek-id", hashlib.sha256).hexdigest()[:16]


def wrap(kek: bytes, kid: str, alg: str, private: bytes) -> str:
    """Encrypt a private key; the key id and algorithm are bound as associated data."""
    nonce = os.urandom(12)
    ct = AESGCM(kek).encrypt(nonce, private, f"hutong-card-key|{kid}|{alg}".encode())
    return b64url(nonce + ct)


def unwrap(kek: bytes, kid: str, alg: str, blob: str) -> bytes:
    raw = b64url_decode(blob)
    try:
        return AESGCM(kek).decrypt(raw[:12], raw[12:], f"hutong-card-key|{kid}|{alg}".encode())
    except InvalidTag as exc:
        raise KeyError_(f"card signing key {kid} cannot be decrypted: wrong HUTONG_CARD_KEK?") from exc


class KeyRing:
    """The node's signing and verification keys, cached per process and refreshed every ``KEY_CACHE_S``."""

    def __init__(self, store, settings):
        self.store = store
        self.settings = settings
        self.alg = (settings.card_alg or "ed25519").lower()
        if self.alg not in codec.ALG_CODES:
            raise ValueError(f"card_alg must be one of {sorted(codec.ALG_CODES)}, not {self.alg!r}")
        self._kek: bytes | None = None
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._verify: dict[bytes, VerifyKey] = {}
        self._signers: dict[str, SigningKey] = {}
        self._rows: list = []

    @property
    def kek(self) -> bytes:
        if self._kek is None:
            self._kek = load_kek(self.settings)
        return self._kek

    # ------------------------------------------------------------------ loading
    def _load(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < KEY_CACHE_S:
            return
        with self._lock:
            if not force and time.monotonic() - self._loaded_at < KEY_CACHE_S:
                return
            with self.store.read() as tx:
                rows = tx.conn.execute(select(card_key).order_by(card_key.c.created_us)).all()
            verify: dict[bytes, VerifyKey] = {}
            for row in rows:
                try:
                    verify[bytes.fromhex(row.kid)] = VerifyKey(
                        kid=bytes.fromhex(row.kid),
                        alg=row.alg,
                        public=b64url_decode(row.public_key),
                        not_before=row.created_us // 1_000_000,
                        expires_at=None if row.expires_us is None else row.expires_us // 1_000_000,
                    )
                except Exception:  # noqa: BLE001 - e.g. an SM2 key on a node whose OpenSSL lacks SM2
                    log.warning("card key %s (%s) cannot be used on this node", row.kid, row.alg)
            self._rows = rows
            self._verify = verify
            self._loaded_at = time.monotonic()

    def verify_keys(self) -> dict[bytes, VerifyKey]:
        """Keys that may verify codes, by key id (expired ones included so they refuse as ``key-expired``)."""
        self._load()
        return self._verify

    def signer(self) -> SigningKey:
        """The current signing key of the configured algorithm, created on first use."""
        self._load()
        current = self._current_row()
        if current is None:
            self._create_first()
            current = self._current_row()
        key = self._signers.get(current.kid)
        if key is None:
            private = unwrap(self.kek, current.kid, current.alg, current.private_enc)
            key = SigningKey(bytes.fromhex(current.kid), current.alg, private, b64url_decode(current.public_key))
            self._signers[current.kid] = key
        return key

    def _current_row(self):
        now = clock.now_us()
        candidates = [
            r
            for r in self._rows
            if r.alg == self.alg and (r.retired_us is None or r.retired_us > now) and bytes.fromhex(r.kid) in self._verify
        ]
        return candidates[-1] if candidates else None

    def _create_first(self) -> None:
        with self.store.write() as tx:
            rows = tx.conn.execute(
                select(card_key.c.kid).where(card_key.c.alg == self.alg, card_key.c.retired_us.is_(None))
            ).all()
            if not rows:
                self._insert_new(tx)
        self._load(force=True)

    def _insert_new(self, tx) -> SigningKey:
        key = SigningKey.generate(self.alg)
        tx.conn.execute(
            insert(card_key).values(
                kid=key.kid_text,
                alg=key.alg,
                public_key=b64url(key.public),
                private_enc=wrap(self.kek, key.kid_text, key.alg, key.private_bytes()),
                kek_id=kek_id(self.kek),
                created_us=clock.now_us(),
                retired_us=None,
                expires_us=None,
            )
        )
        return key

    # ------------------------------------------------------------------ management
    def rotate(self, grace_seconds: int = DEFAULT_VERIFY_GRACE_S) -> str:
        """Retire the current signing key(s) of the configured algorithm and create a new one; its kid."""
        grace_seconds = max(int(grace_seconds), int(self.settings.card_qr_ttl_seconds) + 60)
        now = clock.now_us()
        with self.store.write() as tx:
            tx.conn.execute(
                update(card_key)
                .where(card_key.c.alg == self.alg, card_key.c.retired_us.is_(None))
                .values(retired_us=now, expires_us=now + grace_seconds * 1_000_000)
            )
            key = self._insert_new(tx)
        self._load(force=True)
        return key.kid_text

    def expire(self, kid: str, at_us: int | None = None) -> None:
        """End a key's verification life now (or at ``at_us``): e.g. after a suspected compromise."""
        at_us = clock.now_us() if at_us is None else at_us
        with self.store.write() as tx:
            tx.conn.execute(
                update(card_key)
                .where(card_key.c.kid == kid)
                .values(retired_us=at_us, expires_us=at_us)
            )
        self._load(force=True)

    def jwks(self, now_us: int | None = None) -> dict:
        """The public trust list: every key still inside its verification life."""
        self._load()
        now_s = (now_us or clock.now_us()) // 1_000_000
        keys = [k.to_jwk() for k in self._verify.values() if k.expires_at is None or k.expires_at > now_s]
        return {"keys": keys}

    def invalidate(self) -> None:
        self._loaded_at = 0.0
