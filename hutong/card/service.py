"""The health card service: issuing, status, dynamic codes, verification at institutions, usage statistics.

Plain Python over the store; the HTTP routes (``routes.py``) and the CLI only parse and format. Every
function takes the ``Store``; per-store state (key ring, sender, small caches) lives in ``CardService``,
obtained with ``service_for(store)``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

import orjson
from sqlalchemy import case, delete, func, insert, select, update

from hutong.card import codec, identity
from hutong.card.keys import KeyRing
from hutong.card.sender import MemorySender, Sender, make_sender
from hutong.card.tables import card_card, card_code_use, card_scan, card_vcode
from hutong.card.verify import CardRefusal, VerifiedCode, check_code, sign_code
from hutong.card.vocab import PURPOSES, RELATIONSHIPS, REPLAY_POLICIES, STATUSES, TERMINALS
from hutong.china.ids import (
    is_valid_resident_id,
    mask_name,
    mask_phone,
    mask_resident_id,
    normalize_resident_id,
)
from hutong.core.clock import iso_utc as iso
from hutong.core.clock import local_day as day_of
from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.core.ids import ID_RE

log = logging.getLogger("hutong.card")


VCODE_TTL_S = 300
VCODE_MAX_ATTEMPTS = 5
VCODE_MAX_PER_PHONE_PER_HOUR = 5
_PHONE = re.compile(r"^1[3-9]\d{9}$")
_ORG_ID = ID_RE


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_card_id() -> str:
    return codec.card_ref_to_id(os.urandom(codec.CARD_REF_LEN))


@dataclass
class CardService:
    """Per-store state of the card capability."""

    store: object
    settings: object
    keys: KeyRing = field(init=False)
    sender: Sender = field(init=False)
    _org_cache: dict = field(default_factory=dict)
    _identity_cache: dict = field(default_factory=dict)
    _writer: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _verifications: int = 0

    def __post_init__(self):
        self.keys = KeyRing(self.store, self.settings)
        extra = getattr(self.settings, "extra", {}) or {}
        self.sender = make_sender(os.environ.get("HUTONG_CARD_SENDER") or extra.get("card_sender"))
        if self.replay_policy not in REPLAY_POLICIES:
            raise ValueError(f"card_replay_policy must be one of {REPLAY_POLICIES}")

    @property
    def ttl(self) -> int:
        return int(self.settings.card_qr_ttl_seconds)

    @property
    def replay_policy(self) -> str:
        return (self.settings.card_replay_policy or "one-visit").lower()

    def pepper(self, label: str) -> bytes:
        """A keyed-hash key derived from the KEK, so phone and code hashes cannot be brute-forced offline."""
        return hmac.new(self.keys.kek, f"hutong-card-{label}".encode(), hashlib.sha256).digest()

    def keyed_hash(self, label: str, value: str) -> str:
        return hmac.new(self.pepper(label), value.encode("utf-8"), hashlib.sha256).hexdigest()


_services: dict[int, CardService] = {}
_services_lock = threading.Lock()


def service_for(store) -> CardService:
    """The ``CardService`` of ``store`` (created on first use)."""
    svc = getattr(store, "_card_service", None)
    if svc is None:
        with _services_lock:
            svc = getattr(store, "_card_service", None)
            if svc is None:
                svc = CardService(store, store.settings)
                store._card_service = svc
    return svc


def use_memory_sender(store) -> MemorySender:
    """Switch the store's sender to an in-memory one and return it (tests, demos)."""
    sender = MemorySender()
    service_for(store).sender = sender
    return sender


# ---------------------------------------------------------------------------------------------- cards
def _card_dict(row) -> dict:
    return {
        "card_id": row.card_id,
        "status": row.status,
        "status_reason": row.status_reason,
        "patient": row.patient,
        "subject": row.subject,
        "channel": row.channel,
        "guardian_card": row.guardian_card,
        "relationship": row.relationship,
        "phone": row.phone_masked,
        "replaces": row.replaces,
        "replaced_by": row.replaced_by,
        "issued_at": iso(row.created_us / 1_000_000),
        "updated_at": iso(row.updated_us / 1_000_000),
        "page": f"/card/{row.card_id}",
    }


def _get_row(tx, card_id: str):
    if not codec.is_card_id(card_id):
        raise FhirError(404, "not-found", "健康卡不存在 (unknown card id)")
    row = tx.conn.execute(select(card_card).where(card_card.c.card_id == card_id)).first()
    if row is None:
        raise FhirError(404, "not-found", "健康卡不存在 (unknown card id)")
    return row


def _parse_patient_ref(ref: str) -> str:
    m = re.fullmatch(r"(?:Patient/)?([A-Za-z0-9\-\.]{1,64})", ref or "")
    if not m:
        raise FhirError(400, "invalid", "patient must be a reference 'Patient/{id}'", "patient")
    return m.group(1)


def issue_card(
    store,
    patient: str,
    *,
    issued_by: str | None = None,
    channel: str = "institution",
    guardian_card: str | None = None,
    relationship: str | None = None,
    phone: str | None = None,
    replaces: str | None = None,
) -> tuple[dict, str]:
    """Issue a card for a known Patient (identity already checked); returns ``(card, holder_token)``.

    One live (active or frozen) card per person: a second issue is refused with 409 naming the existing
    card. The holder token is returned once; only its hash is stored.
    """
    svc = service_for(store)
    patient_id = _parse_patient_ref(patient)
    if identity.read_patient(store, patient_id) is None:
        raise FhirError(422, "not-found", f"Patient/{patient_id} 不存在 (unknown patient)", "patient")
    if relationship is not None and relationship not in RELATIONSHIPS:
        raise FhirError(400, "invalid", f"relationship must be one of {', '.join(RELATIONSHIPS)}", "relationship")
    subject = identity.subject_for_patient(store, patient_id)
    # Records of the same person (patient index): a card issued before the index linked them counts too.
    linked_refs = [f"Patient/{p.get('id')}" for p in identity.linked_patients(store, patient_id) if p.get("id")]
    token = secrets.token_urlsafe(32)
    ts = now_us()
    with store.write() as tx:
        if guardian_card is not None:
            g = _get_row(tx, guardian_card)
            if g.status == "revoked":
                raise FhirError(409, "business-rule", "监护人健康卡已注销 (guardian card revoked)", "guardian")
            if g.subject == subject:
                raise FhirError(422, "business-rule", "监护人不能是本人 (guardian is the same person)", "guardian")
        existing = tx.conn.execute(
            select(card_card.c.card_id).where(
                (card_card.c.live_subject == subject)
                | (card_card.c.patient.in_(linked_refs or [f"Patient/{patient_id}"]) & card_card.c.live_subject.is_not(None))
            )
        ).first()
        if existing is not None and existing.card_id != replaces:
            raise FhirError(
                409, "duplicate", f"该居民已有健康卡 {existing.card_id} (one live card per person)", "patient"
            )
        if replaces is not None:
            tx.conn.execute(
                update(card_card)
                .where(card_card.c.card_id == replaces)
                .values(status="revoked", status_reason="reissued", live_subject=None, updated_us=ts)
            )
        card_id = new_card_id()
        tx.conn.execute(
            insert(card_card).values(
                card_id=card_id,
                tenant=tx.tenant,
                subject=subject,
                live_subject=subject,
                patient=f"Patient/{patient_id}",
                status="active",
                status_reason=None,
                channel=channel,
                issued_by=issued_by,
                guardian_card=guardian_card,
                relationship=relationship,
                holder_token_hash=_hash_token(token),
                phone_hash=svc.keyed_hash("phone", phone) if phone else None,
                phone_masked=mask_phone(phone) if phone else None,
                replaces=replaces,
                replaced_by=None,
                created_us=ts,
                updated_us=ts,
            )
        )
        if replaces is not None:
            tx.conn.execute(update(card_card).where(card_card.c.card_id == replaces).values(replaced_by=card_id))
        row = _get_row(tx, card_id)
    log.info("card %s issued (%s) for Patient/%s by %s", card_id, channel, patient_id, issued_by or "-")
    return _card_dict(row), token


def get_card(store, card_id: str) -> dict:
    """The card's record (no personal data beyond references and the masked phone)."""
    with store.read() as tx:
        return _card_dict(_get_row(tx, card_id))


def card_status(store, card_id: str) -> str:
    """``active``, ``frozen`` or ``revoked``."""
    return get_card(store, card_id)["status"]


def check_holder(store, card_id: str, token: str | None) -> bool:
    """True when ``token`` is the holder token of the card or of its guardian's card (constant time)."""
    if not token or len(token) > 200:
        return False
    digest = _hash_token(token)
    with store.read() as tx:
        row = _get_row(tx, card_id)
        ok = hmac.compare_digest(row.holder_token_hash, digest)
        if row.guardian_card:
            g = tx.conn.execute(
                select(card_card.c.holder_token_hash, card_card.c.status).where(card_card.c.card_id == row.guardian_card)
            ).first()
            if g is not None and g.status != "revoked":
                ok = hmac.compare_digest(g.holder_token_hash, digest) or ok
    return ok


_TRANSITIONS = {
    ("active", "frozen"),
    ("frozen", "active"),
    ("active", "revoked"),
    ("frozen", "revoked"),
}


def set_status(store, card_id: str, status: str, reason: str | None = None, actor: str | None = None) -> dict:
    """Freeze, unfreeze or revoke a card. Revocation is final; a revoked person can be re-issued a card."""
    if status not in STATUSES:
        raise FhirError(400, "invalid", f"status must be one of {', '.join(STATUSES)}", "status")
    with store.write() as tx:
        row = _get_row(tx, card_id)
        if row.status == status:
            return _card_dict(row)
        if (row.status, status) not in _TRANSITIONS:
            raise FhirError(409, "business-rule", f"健康卡状态不能从 {row.status} 变为 {status}")
        values = {"status": status, "status_reason": (reason or None), "updated_us": now_us()}
        if status == "revoked":
            values["live_subject"] = None
        tx.conn.execute(update(card_card).where(card_card.c.card_id == card_id).values(**values))
        row = _get_row(tx, card_id)
    log.info("card %s -> %s by %s", card_id, status, actor or "-")
    return _card_dict(row)


def reissue_card(store, card_id: str, *, issued_by: str | None = None) -> tuple[dict, str]:
    """A new card (new id, new holder token) for the same person; the old card and all its codes die."""
    with store.read() as tx:
        old = _get_row(tx, card_id)
    if old.replaced_by:
        raise FhirError(409, "business-rule", f"健康卡已被 {old.replaced_by} 替换")
    return issue_card(
        store,
        old.patient,
        issued_by=issued_by,
        channel="reissue",
        guardian_card=old.guardian_card,
        relationship=old.relationship,
        replaces=card_id,
    )


def dependants(store, card_id: str) -> list[dict]:
    """Cards managed by this card's holder (children, elderly parents)."""
    with store.read() as tx:
        _get_row(tx, card_id)
        rows = tx.conn.execute(
            select(card_card).where(card_card.c.guardian_card == card_id, card_card.c.status != "revoked")
        ).all()
    return [_card_dict(r) for r in rows]


# ---------------------------------------------------------------------------------------------- codes
def make_qr(store, card_id: str, now: float | None = None) -> tuple[str, int]:
    """A fresh dynamic code for an active card: ``(qr_text, expires_at_seconds)``."""
    svc = service_for(store)
    with store.read() as tx:
        row = _get_row(tx, card_id)
    if row.status == "frozen":
        raise FhirError(409, "business-rule", "健康卡已冻结 (card frozen)", details_code="card-frozen")
    if row.status == "revoked":
        raise FhirError(409, "business-rule", "健康卡已注销 (card revoked)", details_code="card-revoked")
    return sign_code(svc.keys.signer(), codec.card_id_to_ref(card_id), svc.ttl, now=now)


def qr_svg(text: str, scale: int = 4) -> str:
    """SVG markup of the code (level M, fixed so scanners see the version the format promises)."""
    import segno

    return segno.make(text, error="m", boost_error=False).svg_inline(scale=scale, border=4)


def qr_png(text: str, scale: int = 5) -> bytes:
    import io

    import segno

    buf = io.BytesIO()
    segno.make(text, error="m", boost_error=False).save(buf, kind="png", scale=scale, border=4)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- verification
@dataclass
class ScanContext:
    institution: str
    terminal: str
    purpose: str
    full_identity: bool = True  # caller may see the full resident ID


def _check_context(ctx: ScanContext) -> None:
    if not _ORG_ID.match(ctx.institution or ""):
        raise FhirError(400, "invalid", "institution must be an Organization id", "institution")
    if ctx.terminal not in TERMINALS:
        raise FhirError(400, "invalid", f"terminal must be one of {', '.join(TERMINALS)}", "terminal")
    if ctx.purpose not in PURPOSES:
        raise FhirError(400, "invalid", f"purpose must be one of {', '.join(PURPOSES)}", "purpose")


def _institution_known(store, svc: CardService, institution: str) -> bool:
    hit = svc._org_cache.get(institution)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    with store.read() as tx:
        found = tx.read("Organization", institution)
    known = found is not None and not found.deleted
    # Positive answers are cached longer than negative ones (a newly registered institution works soon).
    svc._org_cache[institution] = (known, time.monotonic() + (300 if known else 5))
    if len(svc._org_cache) > 20000:
        svc._org_cache.clear()
    return known


def _writer(svc: CardService):
    w = svc._writer
    if w is None:
        with svc._lock:
            if svc._writer is None:
                from hutong.card.batch import ScanWriter

                svc._writer = ScanWriter(svc.store, svc.replay_policy)
            w = svc._writer
    return w


def _check_scan(store, svc: CardService, qr_text: str, ctx: ScanContext, ts: int):
    """The checks that need no write: ``(code, None)`` or ``(code_or_None, refusal_item)``."""
    from hutong.card.batch import ScanItem

    _check_context(ctx)
    now_s = ts / 1_000_000
    try:
        code: VerifiedCode = check_code(qr_text, svc.keys.verify_keys(), now=now_s)
    except CardRefusal as refusal:
        reason = refusal.reason
        code = None
        if reason == "unknown-key":
            svc.keys.invalidate()  # maybe another process just rotated; re-read before refusing for good
            try:
                code = check_code(qr_text, svc.keys.verify_keys(), now=now_s)
            except CardRefusal as again:
                reason = again.reason
        if code is None:
            return None, ScanItem(ts, day_of(ts), ctx.institution, ctx.terminal, ctx.purpose, refusal=reason)
    if not _institution_known(store, svc, ctx.institution):
        return code, ScanItem(ts, day_of(ts), ctx.institution, ctx.terminal, ctx.purpose, card_id=code.card_id,
                              kid=code.kid, refusal="unknown-institution")
    return code, ScanItem(ts, day_of(ts), ctx.institution, ctx.terminal, ctx.purpose, card_id=code.card_id,
                          kid=code.kid, nonce=code.nonce, expires_us=code.expires_at * 1_000_000)


def _refusal_for(reason: str, ctx: ScanContext) -> CardRefusal:
    if reason == "unknown-institution":
        return CardRefusal("unknown-institution", ctx.institution)
    return CardRefusal(reason)


def verify_scan(store, qr_text: str, ctx: ScanContext, now: float | None = None) -> dict:
    """Verify a scanned code at an institution and identify the resident.

    Checks format, key, signature, times, the institution, card status and the replay policy; every scan
    (accepted or refused) is written to ``card_scan`` (group-committed by ``batch.ScanWriter``) before the
    answer is returned. Raises ``CardRefusal`` for a refused code.
    """
    svc = service_for(store)
    ts = now_us() if now is None else int(now * 1_000_000)
    code, item = _check_scan(store, svc, qr_text, ctx, ts)
    refusal, row = _writer(svc).submit(item)
    if refusal:
        raise _refusal_for(refusal, ctx)
    _maybe_purge(store, svc, ts)
    return _identify(store, row, code, ctx)


async def verify_scan_async(store, qr_text: str, ctx: ScanContext) -> dict:
    """``verify_scan`` for the event loop: signature checks inline, database work off the loop.

    The group-commit writer's future is awaited, so no worker thread is held while the batch commits;
    institution and identity lookups go to the thread pool only when not cached.
    """
    from starlette.concurrency import run_in_threadpool

    svc = service_for(store)
    ts = now_us()
    if ctx.institution in svc._org_cache or not _ORG_ID.match(ctx.institution or ""):
        code, item = _check_scan(store, svc, qr_text, ctx, ts)
    else:
        code, item = await run_in_threadpool(_check_scan, store, svc, qr_text, ctx, ts)
    refusal, row = await _writer(svc).submit_async(item)
    if refusal:
        raise _refusal_for(refusal, ctx)
    patient_id = row.patient.split("/", 1)[1]
    hit = svc._identity_cache.get(patient_id)
    if hit is None or hit[0] <= time.monotonic():
        await run_in_threadpool(_linked_cached, store, svc, patient_id)
    if svc._verifications % 2000 == 1999:
        await run_in_threadpool(_maybe_purge, store, svc, ts)
    else:
        svc._verifications += 1
    return _identify(store, row, code, ctx)


#: Seconds a process reuses a person's linked Patient records for verification answers. Card status and
#: replay are always checked in the database; only demographics may lag by this much.
IDENTITY_CACHE_S = 10.0


def _linked_cached(store, svc: CardService, patient_id: str) -> list[dict]:
    hit = svc._identity_cache.get(patient_id)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]
    patients = identity.linked_patients(store, patient_id)
    if len(svc._identity_cache) > 50000:
        svc._identity_cache.clear()
    svc._identity_cache[patient_id] = (now + IDENTITY_CACHE_S, patients)
    return patients


def _identify(store, row, code: VerifiedCode, ctx: ScanContext) -> dict:
    patient_id = row.patient.split("/", 1)[1]
    patients = _linked_cached(store, service_for(store), patient_id)
    main = patients[0] if patients else {}
    name = identity.display_name(main)
    rid = identity.best_resident_id(patients)
    public_terminal = ctx.terminal in ("kiosk", "mobile-app")
    show_full_id = ctx.full_identity and not public_terminal
    record = identity.institution_record(patients, ctx.institution)
    return {
        "result": "accepted",
        "card_id": code.card_id,
        "card_status": row.status,
        "patient": row.patient,
        "person": row.subject if row.subject.startswith("Person/") else None,
        "name": mask_name(name) if public_terminal else name,
        "gender": main.get("gender"),
        "birth_date": main.get("birthDate"),
        "resident_id": (rid if show_full_id else mask_resident_id(rid)) if rid else None,
        "resident_id_masked": not show_full_id,
        "institution_record": record,
        "guardian_card": row.guardian_card,
        "code": {
            "kid": code.kid,
            "alg": code.alg,
            "issued_at": iso(code.issued_at),
            "expires_at": iso(code.expires_at),
        },
    }


def _maybe_purge(store, svc: CardService, ts: int) -> None:
    """Every 2,000 accepted scans, drop replay rows expired an hour ago and verification codes a day old."""
    svc._verifications += 1
    if svc._verifications % 2000:
        return
    try:
        with store.write() as tx:
            tx.conn.execute(delete(card_code_use).where(card_code_use.c.expires_us < ts - 3_600_000_000))
            tx.conn.execute(delete(card_vcode).where(card_vcode.c.expires_us < ts - 86_400_000_000))
    except Exception:  # noqa: BLE001 - housekeeping must never fail a verification
        log.exception("purging used card codes failed")


# ---------------------------------------------------------------------------------------------- self-registration
def _check_phone(phone: str) -> str:
    digits = re.sub(r"[\s\-]", "", phone or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    if not _PHONE.match(digits):
        raise FhirError(400, "invalid", "手机号码格式不正确 (mobile number must be 11 digits)", "phone")
    return digits


def start_registration(
    store,
    id_number: str,
    name: str,
    phone: str,
    *,
    guardian_card: str | None = None,
    guardian_token: str | None = None,
    relationship: str | None = None,
) -> dict:
    """Send a phone verification code for a resident's (or a dependant's) self-registration.

    The reply never says whether the resident ID and name matched a record (no enumeration): that is
    decided when the code comes back. For a dependant, ``guardian_card`` + its holder token identify the
    guardian, and ``phone`` must be a phone on the dependant's record (that is how the guardian proves the
    relationship without visiting an institution).
    """
    svc = service_for(store)
    rid = normalize_resident_id(id_number)
    if not is_valid_resident_id(rid):
        raise FhirError(400, "invalid", "居民身份证号码无效 (invalid resident ID number)", "id_number")
    name = (name or "").strip()
    if not 1 <= len(name) <= 40:
        raise FhirError(400, "invalid", "姓名不能为空 (name required)", "name")
    digits = _check_phone(phone)
    purpose = "register"
    if guardian_card is not None:
        if not check_holder(store, guardian_card, guardian_token):
            raise FhirError(403, "forbidden", "监护人凭证无效 (guardian token required)", "guardian_token")
        if relationship not in RELATIONSHIPS:
            raise FhirError(400, "invalid", f"relationship must be one of {', '.join(RELATIONSHIPS)}", "relationship")
        purpose = "dependant"
    phone_hash = svc.keyed_hash("phone", digits)
    ts = now_us()
    matched = _match_resident(store, rid, name)
    request_id = secrets.token_hex(16)
    code = f"{secrets.randbelow(10**6):06d}"
    with store.write() as tx:
        recent = tx.conn.execute(
            select(func.count())
            .select_from(card_vcode)
            .where(card_vcode.c.phone_hash == phone_hash, card_vcode.c.created_us > ts - 3_600_000_000)
        ).scalar_one()
        if recent >= VCODE_MAX_PER_PHONE_PER_HOUR:
            raise FhirError(429, "throttled", "验证码发送过于频繁，请稍后再试 (too many codes for this phone)")
        tx.conn.execute(
            insert(card_vcode).values(
                request_id=request_id,
                purpose=purpose,
                phone_hash=phone_hash,
                subject_hash=svc.keyed_hash("subject", f"{rid}|{name}"),
                code_hash=svc.keyed_hash("vcode", f"{request_id}|{code}"),
                guardian_card=guardian_card,
                payload=orjson.dumps(
                    {"patient": matched, "relationship": relationship, "phone_masked": mask_phone(digits)}
                ).decode(),
                created_us=ts,
                expires_us=ts + VCODE_TTL_S * 1_000_000,
                attempts=0,
                used=0,
            )
        )
    svc.sender.send(digits, code, purpose)
    log.info("card registration %s: code sent to %s (ID %s)", request_id, mask_phone(digits), mask_resident_id(rid))
    return {
        "registration_id": request_id,
        "phone": mask_phone(digits),
        "expires_at": iso((ts + VCODE_TTL_S * 1_000_000) / 1_000_000),
    }


def _match_resident(store, rid: str, name: str) -> str | None:
    """The Patient id matched by resident ID and name (one person), or None."""
    candidates = []
    for pid in identity.find_patients_by_resident_id(store, rid):
        patient = identity.read_patient(store, pid)
        if patient is not None and identity.name_matches(patient, name):
            candidates.append(pid)
    if not candidates:
        return None
    candidates.sort()
    subjects = {identity.subject_for_patient(store, pid): pid for pid in candidates}
    if len(subjects) > 1:
        # The index says these are different people with the same ID and name: do not guess.
        return None
    # Records the index has not linked yet are each their own person; the lowest id is the deterministic choice.
    return candidates[0]


def complete_registration(store, registration_id: str, code: str) -> tuple[dict, str]:
    """Check the phone code and issue the card: ``(card, holder_token)``."""
    svc = service_for(store)
    if not re.fullmatch(r"[0-9a-f]{32}", registration_id or ""):
        raise FhirError(404, "not-found", "注册请求不存在 (unknown registration)", "registration_id")
    if not re.fullmatch(r"\d{6}", code or ""):
        raise FhirError(400, "invalid", "验证码为6位数字 (code must be 6 digits)", "code")
    ts = now_us()
    with store.write() as tx:
        row = tx.conn.execute(select(card_vcode).where(card_vcode.c.request_id == registration_id)).first()
        if row is None:
            raise FhirError(404, "not-found", "注册请求不存在 (unknown registration)", "registration_id")
        if row.used or row.expires_us < ts or row.attempts >= VCODE_MAX_ATTEMPTS:
            raise FhirError(410, "expired", "验证码已失效，请重新获取 (code expired or used)", "code")
        good = hmac.compare_digest(row.code_hash, svc.keyed_hash("vcode", f"{registration_id}|{code}"))
        tx.conn.execute(
            update(card_vcode)
            .where(card_vcode.c.request_id == registration_id)
            .values(attempts=row.attempts + 1, used=1 if good else 0)
        )
    if not good:
        raise FhirError(422, "security", "验证码错误 (wrong code)", "code")
    payload = orjson.loads(row.payload or "{}")
    patient_id = payload.get("patient")
    if not patient_id:
        raise FhirError(
            422, "not-found", "未找到与身份证号和姓名匹配的居民档案，请到医疗机构办理 (no matching resident record)"
        )
    phone_masked = payload.get("phone_masked")
    if row.purpose == "dependant":
        patient = identity.read_patient(store, patient_id) or {}
        if not any(hmac.compare_digest(svc.keyed_hash("phone", p), row.phone_hash) for p in identity.phones(patient)):
            raise FhirError(
                403,
                "forbidden",
                "该手机号不在被监护人档案中，请到医疗机构办理 (phone not on the dependant's record)",
            )
        return _issue_with_phone(store, f"Patient/{patient_id}", "guardian", row, phone_masked, payload)
    return _issue_with_phone(store, f"Patient/{patient_id}", "self", row, phone_masked, payload)


def _issue_with_phone(store, patient_ref, channel, row, phone_masked, payload) -> tuple[dict, str]:
    card, token = issue_card(
        store,
        patient_ref,
        issued_by="self-registration",
        channel=channel,
        guardian_card=row.guardian_card,
        relationship=payload.get("relationship"),
    )
    with store.write() as tx:
        tx.conn.execute(
            update(card_card)
            .where(card_card.c.card_id == card["card_id"])
            .values(phone_hash=row.phone_hash, phone_masked=phone_masked)
        )
    card["phone"] = phone_masked
    return card, token


# ---------------------------------------------------------------------------------------------- statistics
def scans_per_institution_per_day(
    store, since: str | None = None, until: str | None = None, institution: str | None = None
) -> list[dict]:
    """Scan counts per institution and Asia/Shanghai day (``YYYY-MM-DD`` bounds, inclusive)."""
    s = card_scan.c
    accepted = func.sum(case((s.result == "accepted", 1), else_=0))
    stmt = select(s.institution, s.day, func.count().label("scans"), accepted.label("accepted")).group_by(
        s.institution, s.day
    )
    if since:
        stmt = stmt.where(s.day >= since)
    if until:
        stmt = stmt.where(s.day <= until)
    if institution:
        stmt = stmt.where(s.institution == institution)
    stmt = stmt.order_by(s.day, s.institution)
    with store.read() as tx:
        rows = tx.conn.execute(stmt).all()
    return [
        {"institution": r.institution, "day": r.day, "scans": int(r.scans), "accepted": int(r.accepted or 0),
         "refused": int(r.scans) - int(r.accepted or 0)}
        for r in rows
    ]


def refusals_by_reason(
    store, since: str | None = None, until: str | None = None, institution: str | None = None
) -> list[dict]:
    """Refused scans per reason (``YYYY-MM-DD`` bounds, inclusive), most frequent first."""
    s = card_scan.c
    stmt = select(s.result, func.count().label("n")).where(s.result != "accepted").group_by(s.result)
    if since:
        stmt = stmt.where(s.day >= since)
    if until:
        stmt = stmt.where(s.day <= until)
    if institution:
        stmt = stmt.where(s.institution == institution)
    with store.read() as tx:
        rows = tx.conn.execute(stmt).all()
    out = [{"reason": r.result, "count": int(r.n)} for r in rows]
    out.sort(key=lambda d: (-d["count"], d["reason"]))
    return out
