"""Tables of the health card: cards, signing keys, used codes (replay), scans (usage), verification codes.

Times are integer microseconds since the Unix epoch (UTC), as in the store.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from hutong.store.schema import BigIntPK, metadata

#: One row per issued card. ``live_subject`` equals ``subject`` while the card is active or frozen and is
#: NULL once revoked, so the unique constraint enforces "one live card per person" in the database.
card_card = Table(
    "card_card",
    metadata,
    Column("card_id", String(16), primary_key=True),
    Column("tenant", String(32), nullable=False),
    #: The person the card belongs to: ``Person/{id}`` from the patient index, else ``Patient/{id}``.
    Column("subject", String(80), nullable=False),
    Column("live_subject", String(80)),
    #: The Patient the card was issued for (``Patient/{id}``).
    Column("patient", String(80), nullable=False),
    Column("status", String(16), nullable=False),  # active | frozen | revoked
    Column("status_reason", String(200)),
    Column("channel", String(16), nullable=False),  # institution | self | guardian | reissue
    Column("issued_by", String(128)),  # institution / operator / client that issued it
    #: Card of the guardian who manages this dependant's card (children, elderly parents).
    Column("guardian_card", String(16)),
    Column("relationship", String(32)),
    #: SHA-256 of the holder token (the secret that lets the resident page fetch codes).
    Column("holder_token_hash", String(64), nullable=False),
    #: Keyed hash of the verified phone number (never the number) and its masked form for display.
    Column("phone_hash", String(64)),
    Column("phone_masked", String(20)),
    Column("replaces", String(16)),
    Column("replaced_by", String(16)),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    UniqueConstraint("live_subject", name="uq_card_card_live_subject"),
    Index("ix_card_card_subject", "subject"),
    Index("ix_card_card_guardian", "guardian_card"),
    Index("ix_card_card_patient", "patient"),
)

#: Signing keys. The private key is stored only encrypted (AES-256-GCM under the key-encryption key).
card_key = Table(
    "card_key",
    metadata,
    Column("kid", String(8), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_key", String(200), nullable=False),  # base64url of the raw public key
    Column("private_enc", Text, nullable=False),  # base64url(nonce || ciphertext || tag)
    Column("kek_id", String(16), nullable=False),  # fingerprint of the KEK that wrapped it
    Column("created_us", BigInteger, nullable=False),
    #: When the key stopped (or will stop) signing; NULL while it is the current signer.
    Column("retired_us", BigInteger),
    #: End of the key's verification life (codes signed by it are refused after this).
    Column("expires_us", BigInteger),
    Index("ix_card_key_alg", "alg", "created_us"),
)

#: Codes already accepted (replay control). One row per code (its nonce), purged after expiry.
card_code_use = Table(
    "card_code_use",
    metadata,
    Column("nonce", String(16), primary_key=True),
    Column("card_id", String(16), nullable=False),
    Column("institution", String(64), nullable=False),
    Column("first_us", BigInteger, nullable=False),
    Column("uses", Integer, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Index("ix_card_code_use_expires", "expires_us"),
)

#: Every scan, accepted or refused: what statistics count.
card_scan = Table(
    "card_scan",
    metadata,
    Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    Column("ts_us", BigInteger, nullable=False),
    #: Asia/Shanghai calendar day of the scan (``YYYY-MM-DD``), for per-day counts without time-zone maths.
    Column("day", String(10), nullable=False),
    Column("tenant", String(32), nullable=False),
    Column("institution", String(64), nullable=False),
    Column("terminal", String(24), nullable=False),
    Column("purpose", String(24), nullable=False),
    Column("result", String(24), nullable=False),  # "accepted" or a refusal reason
    Column("card_id", String(16)),
    Column("kid", String(8)),
    Index("ix_card_scan_inst_day", "institution", "day"),
    Index("ix_card_scan_day_result", "day", "result"),
)

#: Phone verification codes for self-registration (only a keyed hash of the code is kept).
card_vcode = Table(
    "card_vcode",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("purpose", String(24), nullable=False),  # register | dependant
    Column("phone_hash", String(64), nullable=False),
    Column("subject_hash", String(64), nullable=False),  # keyed hash of resident ID + name
    Column("code_hash", String(64), nullable=False),
    Column("guardian_card", String(16)),
    Column("payload", Text),  # JSON of the non-secret request details
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("used", Integer, nullable=False),
    Index("ix_card_vcode_phone", "phone_hash", "created_us"),
)

#: The tables of this capability, created with the store's schema.
TABLES = (card_card, card_key, card_code_use, card_scan, card_vcode)
