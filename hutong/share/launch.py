"""Opening the workstation from a hospital system (HIS): a signed launch URL, and the care relationship.

The HIS builds ``/workstation/launch?org=ORG&mrn=MRN&user=USER&ts=UNIX_SECONDS&nonce=NONCE&sig=SIG`` where

    message = "hutong-launch-v1\\n" + "\\n".join([org, mrn, user, ts, nonce])
    SIG     = base64url(HMAC-SHA256(launch_key(org), message)) without padding

``org`` is the institution's Organization id, ``mrn`` the patient's record number at that institution
(identifier system ``urn:hutong:mrn:ORG``), ``user`` the doctor's user id in the HIS, ``ts`` the time the
link was made (accepted for 300 s either way), ``nonce`` 16–64 characters ``[A-Za-z0-9_-]`` used once.
Each institution's key is ``HMAC-SHA256(node launch secret, "launch:" + org)``, printed for the
institution's administrator by ``hutong share launch-key ORG`` (rotate by rotating ``HUTONG_WEB_SECRET``).
A valid launch records the care relationship (``share_care``) and opens the patient's record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from sqlalchemy import delete, insert, select

from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.share.identity import person_of
from hutong.share.tables import share_care, share_launch_nonce
from hutong.web.node_secrets import node_secret

MAX_SKEW_S = 300
CARE_TTL_US = 12 * 3600 * 1_000_000
_NONCE = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
_WORD = re.compile(r"^[A-Za-z0-9_\-\.:@]{1,128}$")


def launch_key(store, org: str) -> bytes:
    """The institution's launch key (32 bytes)."""
    return hmac.new(node_secret(store, "launch"), f"launch:{org}".encode(), hashlib.sha256).digest()


def launch_message(org: str, mrn: str, user: str, ts: str, nonce: str) -> bytes:
    return ("hutong-launch-v1\n" + "\n".join([org, mrn, user, ts, nonce])).encode()


def sign_launch(key: bytes, org: str, mrn: str, user: str, ts: str, nonce: str) -> str:
    """The ``sig`` parameter (what the HIS computes)."""
    mac = hmac.new(key, launch_message(org, mrn, user, ts, nonce), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def verify_launch(store, params: dict[str, str], now: float | None = None) -> tuple[str, str, str]:
    """Check a launch URL's parameters; returns ``(org, user, patient_id)``. Raises 400/401/404."""
    org, mrn, user = params.get("org") or "", params.get("mrn") or "", params.get("user") or ""
    ts, nonce, sig = params.get("ts") or "", params.get("nonce") or "", params.get("sig") or ""
    for name, value in (("org", org), ("mrn", mrn), ("user", user)):
        if not _WORD.match(value):
            raise FhirError(400, "invalid", f"launch parameter {name} is missing or malformed", name)
    if not ts.isdigit() or not _NONCE.match(nonce) or not sig:
        raise FhirError(400, "invalid", "launch needs ts (unix seconds), nonce (16-64 chars) and sig")
    now = time.time() if now is None else now
    if abs(now - int(ts)) > MAX_SKEW_S:
        raise FhirError(401, "security", "启动链接已过期 (launch link expired)")
    want = sign_launch(launch_key(store, org), org, mrn, user, ts, nonce)
    if not hmac.compare_digest(want, sig):
        raise FhirError(401, "security", "启动链接签名无效 (bad launch signature)")
    with store.write() as tx:
        tx.conn.execute(delete(share_launch_nonce).where(share_launch_nonce.c.expires_us < now_us()))
        used = tx.conn.execute(select(share_launch_nonce.c.nonce).where(share_launch_nonce.c.nonce == nonce)).first()
        if used is not None:
            raise FhirError(401, "security", "启动链接已使用 (launch link already used)")
        tx.conn.execute(insert(share_launch_nonce).values(nonce=nonce, expires_us=now_us() + 2 * MAX_SKEW_S * 1_000_000))
        ids = tx.search_ids("Patient", [("identifier", f"urn:hutong:mrn:{org}|{mrn}")])
    if not ids:
        raise FhirError(404, "not-found", "该机构没有此病历号的患者 (no patient with that record number)")
    return org, user, ids[0]


def record_care(store, practitioner: str, institution: str | None, patient_id: str, via: str) -> None:
    """Record that ``practitioner`` (at ``institution``) opened ``patient_id``'s record."""
    ts = now_us()
    with store.write() as tx:
        tx.conn.execute(insert(share_care).values(
            ts_us=ts, practitioner=practitioner[:128], institution=(institution or None), patient=patient_id,
            person=person_of(tx.conn, patient_id), via=via, expires_us=ts + CARE_TTL_US))


#: Rows of ``share_care`` that only say a doctor opened a record page, which is no reason to open it:
#: they are kept (who opened what) but never count as a care relationship — otherwise opening the
#: page would grant itself the access the care relationship rule is there to withhold.
NOT_A_RELATIONSHIP = frozenset({"search"})


def has_care_relationship(store, practitioner: str, patient_id: str) -> bool:
    """Whether ``practitioner`` is in a care relationship with this patient (or a linked record) within
    the last 12 hours: a card scan, a signed HIS launch, an order checked through CDS Hooks, …; merely
    opening the record page is not one."""
    with store.read() as tx:
        person = person_of(tx.conn, patient_id)
        c = share_care.c
        cond = (c.patient == patient_id) | (c.person == person) if person else (c.patient == patient_id)
        row = tx.conn.execute(select(c.seq).where(c.practitioner == practitioner, c.expires_us > now_us(), cond,
                                                  c.via.notin_(NOT_A_RELATIONSHIP)).limit(1)).first()
    return row is not None
