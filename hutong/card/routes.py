"""HTTP API of the electronic health card (电子居民健康卡) under ``/api/card`` and the resident page ``/card``.

Fixed paths (hospital systems rely on them): ``POST /api/card/cards``, ``GET /api/card/cards/{card_id}``,
``POST /api/card/cards/{card_id}/status``, ``GET /api/card/cards/{card_id}/qr``, ``POST /api/card/verify``,
``GET /api/card/keys``. The routes only parse, authorise and format; ``service.py`` does the work.

Who may do what: staff callers (roles ``operator``/``clinician``, or ``system``) issue cards and manage
status; a resident proves they hold a card with its holder token (header ``X-Card-Token``), returned once
at issue; a guardian's token also works for their dependants' cards. Anyone may verify a code and read
the JWKS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hutong.api.caller import PUBLIC, permit
from hutong.api.plain import PlainRoute
from hutong.card import codec, service
from hutong.card.verify import REFUSAL_SYSTEM, REFUSALS, CardRefusal
from hutong.card.vocab import CardStatus, Purpose, Relationship, Terminal
from hutong.core.caller import Caller
from hutong.core.clock import iso_utc
from hutong.core.errors import FhirError
from hutong.core.ids import ID_PATTERN

router = APIRouter(tags=["health card 电子健康卡"])

_HERE = Path(__file__).resolve().parent
CARD_ID_PATTERN = r"^[a-z2-7]{16}$"
ORG_PATTERN = rf"^{ID_PATTERN}$"
#: An institution given as an id or as a reference, like every other reference in the API.
ORG_REF_PATTERN = rf"^(Organization/)?{ID_PATTERN}$"

_REFUSAL_DOC = "\n".join(f"- `{k}` (HTTP {v[0]}): {v[2]}" for k, v in REFUSALS.items())


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IssueRequest(_Model):
    """Issue a card for a Patient whose identity the institution or operator has checked in person."""

    patient: str = Field(..., pattern=rf"^Patient/{ID_PATTERN}$", examples=["Patient/p1"],
                         description="Reference to the resident's Patient record")
    guardian_card: str | None = Field(None, pattern=CARD_ID_PATTERN,
                                      description="Card id of the guardian who will manage this dependant's card")
    relationship: Relationship | None = Field(
        None, description="The dependant's relationship to the guardian")
    phone: str | None = Field(None, pattern=r"^(\+86)?1[3-9]\d{9}$", description="Resident's mobile number (stored hashed)")


class CardOut(BaseModel):
    card_id: str = Field(..., description="Opaque random card id (the card reference in every code)")
    status: CardStatus
    status_reason: str | None = None
    patient: str = Field(..., description="Patient the card was issued for")
    subject: str = Field(..., description="The person: Person/{id} from the patient index, else Patient/{id}")
    channel: str
    guardian_card: str | None = None
    relationship: str | None = None
    phone: str | None = Field(None, description="Masked phone number")
    replaces: str | None = None
    replaced_by: str | None = None
    issued_at: str
    updated_at: str
    page: str = Field(..., description="Resident page path (append #t=HOLDER_TOKEN)")


class IssuedCard(CardOut):
    holder_token: str = Field(..., description="Secret that lets the holder fetch codes; shown once, store it")


class StatusRequest(_Model):
    status: CardStatus = Field(..., description="frozen: lost phone; revoked: final")
    reason: str | None = Field(None, max_length=200)


class QrOut(BaseModel):
    card_id: str
    qr_text: str = Field(..., description="The signed code to render as a QR (alphanumeric, 157 characters)")
    expires_at: str = Field(..., description="UTC instant after which verifiers refuse the code")
    expires_in: int = Field(..., description="Seconds until expiry")
    ttl: int = Field(..., description="Configured lifetime (HUTONG_CARD_QR_TTL_SECONDS)")
    svg: str | None = Field(None, description="Inline SVG of the QR, when asked with embed=svg")


class VerifyRequest(_Model):
    qr_text: str = Field(..., min_length=1, max_length=512, description="The scanned text")
    institution: str = Field(..., pattern=ORG_REF_PATTERN, examples=["Organization/h1", "h1"],
                             description="The verifying institution: its Organization id or reference")
    terminal: Terminal
    purpose: Purpose

    @field_validator("institution")
    @classmethod
    def _institution_id(cls, value: str) -> str:
        return value.removeprefix("Organization/")


class InstitutionRecord(BaseModel):
    patient: str
    system: str | None = None
    value: str


class CodeInfo(BaseModel):
    kid: str
    alg: str
    issued_at: str
    expires_at: str


class VerifyOut(BaseModel):
    result: Literal["accepted"]
    card_id: str
    card_status: str
    patient: str
    person: str | None = None
    name: str = Field(..., description="Full name; masked (张*) on kiosk and mobile-app terminals")
    gender: str | None = None
    birth_date: str | None = None
    resident_id: str | None = Field(None, description="Resident ID, masked unless the caller's role allows it")
    resident_id_masked: bool
    institution_record: InstitutionRecord | None = Field(
        None, description="The verifying institution's own record number for the person, if it has one")
    guardian_card: str | None = None
    code: CodeInfo


class RegisterStart(_Model):
    id_number: str = Field(..., min_length=15, max_length=20, description="居民身份证号码")
    name: str = Field(..., min_length=1, max_length=40, description="姓名")
    phone: str = Field(..., pattern=r"^(\+86)?1[3-9]\d{9}$", description="Mobile number receiving the code")
    guardian_card: str | None = Field(None, pattern=CARD_ID_PATTERN,
                                      description="For a dependant: the guardian's card (send its X-Card-Token)")
    relationship: Relationship | None = None


class RegisterStarted(BaseModel):
    registration_id: str
    phone: str = Field(..., description="Masked phone the code was sent to")
    expires_at: str


class RegisterComplete(_Model):
    registration_id: str = Field(..., pattern=r"^[0-9a-f]{32}$")
    code: str = Field(..., pattern=r"^\d{6}$")


class ScanCount(BaseModel):
    institution: str
    day: str
    scans: int
    accepted: int
    refused: int


class RefusalCount(BaseModel):
    reason: str
    count: int


class Jwks(BaseModel):
    keys: list[dict]


def startup(node) -> None:
    """Create the first signing key at start-up so the first resident does not pay for it."""
    import logging

    try:
        service.service_for(node.store).keys.signer()
    except Exception:  # noqa: BLE001 - e.g. a wrong KEK: the API reports it per request, the node still starts
        logging.getLogger("hutong.card").exception("health card keys are not usable")


def _store(request: Request):
    return request.app.state.store


def _is_staff(caller: Caller) -> bool:
    return caller.has_role("operator") or caller.has_role("clinician")


def _require_staff(caller: Caller) -> None:
    if not _is_staff(caller):
        raise FhirError(403, "forbidden", "需要机构或运营人员权限 (operator or clinician role required)")


def _require_holder_or_staff(store, card_id: str, caller: Caller, token: str | None) -> None:
    if token:
        if not service.check_holder(store, card_id, token):
            raise FhirError(403, "forbidden", "健康卡凭证无效 (invalid holder token)")
        return
    if not _is_staff(caller):
        raise FhirError(403, "forbidden", "需要健康卡凭证 (X-Card-Token required)")


def _card_id(card_id: str) -> str:
    if not codec.is_card_id(card_id):
        raise FhirError(404, "not-found", "健康卡不存在 (unknown card id)")
    return card_id


_TOKEN_HEADER = Header(None, alias="X-Card-Token", max_length=200, description="Holder token of the card or its guardian")

_ERRORS = {
    400: {"description": "Malformed request (OperationOutcome)"},
    403: {"description": "Not allowed (OperationOutcome)"},
    404: {"description": "Unknown card (OperationOutcome)"},
    409: {"description": "Conflicts with the card's state (OperationOutcome)"},
}


@router.post("/api/card/cards", response_model=IssuedCard, status_code=201, responses=_ERRORS,
             summary="Issue a health card (institution or operator)",
             description="Issue a card for a known Patient after an in-person identity check. One live card per "
                         "person (409 names the existing card). The `holder_token` is returned only here.")
def issue(body: IssueRequest, request: Request, caller: Caller = Depends(permit("card.issue"))):
    _require_staff(caller)
    card, token = service.issue_card(
        _store(request),
        body.patient,
        issued_by=caller.institution or caller.client_id,
        channel="institution",
        guardian_card=body.guardian_card,
        relationship=body.relationship,
        phone=body.phone.removeprefix("+86") if body.phone else None,
    )
    return JSONResponse({**card, "holder_token": token}, status_code=201,
                        headers={"Location": f"/api/card/cards/{card['card_id']}"})


@router.get("/api/card/cards/{card_id}", response_model=CardOut, responses=_ERRORS, summary="Read a card",
            description="The card record: status, person and patient references, masked phone. Staff or holder.")
def read_card(card_id: str, request: Request, caller: Caller = Depends(permit("card.read")),
              x_card_token: str | None = _TOKEN_HEADER):
    store = _store(request)
    _card_id(card_id)
    _require_holder_or_staff(store, card_id, caller, x_card_token)
    return service.get_card(store, card_id)


@router.post("/api/card/cards/{card_id}/status", response_model=CardOut, responses=_ERRORS,
             summary="Freeze, unfreeze or revoke a card",
             description="Staff may make any allowed change (active⇄frozen, →revoked, revocation is final). "
                         "A holder may freeze their own card (lost phone).")
def change_status(card_id: str, body: StatusRequest, request: Request, caller: Caller = Depends(permit("card.status")),
                  x_card_token: str | None = _TOKEN_HEADER):
    store = _store(request)
    _card_id(card_id)
    if not _is_staff(caller):
        _require_holder_or_staff(store, card_id, caller, x_card_token)
        if body.status != "frozen":
            raise FhirError(403, "forbidden", "持卡人只能冻结健康卡 (holders may only freeze)")
    return service.set_status(store, card_id, body.status, body.reason, actor=caller.institution or caller.client_id)


@router.post("/api/card/cards/{card_id}/reissue", response_model=IssuedCard, status_code=201, responses=_ERRORS,
             summary="Re-issue a card (new id, same person)",
             description="Revokes the card (and so every code made for it) and issues a new one to the same person.")
def reissue(card_id: str, request: Request, caller: Caller = Depends(permit("card.issue"))):
    _require_staff(caller)
    _card_id(card_id)
    card, token = service.reissue_card(_store(request), card_id, issued_by=caller.institution or caller.client_id)
    return JSONResponse({**card, "holder_token": token}, status_code=201)


@router.get("/api/card/cards/{card_id}/dependants", response_model=list[CardOut], responses=_ERRORS,
            summary="Cards managed by this card's holder (children, elderly parents)")
def list_dependants(card_id: str, request: Request, caller: Caller = Depends(permit("card.read")),
                    x_card_token: str | None = _TOKEN_HEADER):
    store = _store(request)
    _card_id(card_id)
    _require_holder_or_staff(store, card_id, caller, x_card_token)
    return service.dependants(store, card_id)


@router.get("/api/card/cards/{card_id}/qr", response_model=QrOut, responses={
    **_ERRORS, 200: {"content": {"application/json": {}, "image/svg+xml": {}, "image/png": {}},
                     "description": "JSON by default; the QR image with format=svg|png"}},
    summary="A fresh dynamic QR code",
    description="Signs a new short-lived code (lifetime `HUTONG_CARD_QR_TTL_SECONDS`, 60 s by default). JSON with "
                "`qr_text` and `expires_at`; `format=svg` or `format=png` returns the image (expiry in the "
                "`X-Card-Expires-At` header). Needs the holder token (or staff). Frozen or revoked cards: 409.")
def qr(card_id: str, request: Request, caller: Caller = Depends(permit("card.qr")),
       format: Literal["json", "svg", "png"] = Query("json", description="json, svg or png"),
       embed: Literal["svg"] | None = Query(None, description="embed=svg adds inline SVG to the JSON"),
       x_card_token: str | None = _TOKEN_HEADER):
    store = _store(request)
    _card_id(card_id)
    _require_holder_or_staff(store, card_id, caller, x_card_token)
    text, exp = service.make_qr(store, card_id)
    headers = {"Cache-Control": "no-store", "X-Card-Expires-At": iso_utc(exp)}
    if format == "svg":
        return Response(service.qr_svg(text), media_type="image/svg+xml", headers=headers)
    if format == "png":
        return Response(service.qr_png(text), media_type="image/png", headers=headers)
    import time

    body = {
        "card_id": card_id,
        "qr_text": text,
        "expires_at": iso_utc(exp),
        "expires_in": max(0, int(exp - time.time())),
        "ttl": service.service_for(store).ttl,
        "svg": service.qr_svg(text) if embed == "svg" else None,
    }
    return JSONResponse(body, headers=headers)


async def verify(body: VerifyRequest, caller: Caller, node) -> Response:
    """Verify a scanned code at an institution (the platform's busiest request: a plain route)."""
    if caller.institution and caller.institution != body.institution:
        raise CardRefusal("institution-mismatch")
    ctx = service.ScanContext(body.institution, body.terminal, body.purpose, full_identity=_is_staff(caller))
    result = await service.verify_scan_async(node.store, body.qr_text, ctx)
    return Response(orjson.dumps(result), media_type="application/json")


VERIFY = PlainRoute(
    "POST", "/api/card/verify", "card.verify", verify, request_model=VerifyRequest, response_model=VerifyOut,
    tags=("health card 电子健康卡",),
    summary="Verify a scanned code at an institution",
    description="Checks the code (signature, key, expiry), the card's status and the replay policy, logs the "
                "scan, and returns the resident's identity with the institution's own record number. Refusals "
                f"are OperationOutcomes whose `issue.details.coding` (system `{REFUSAL_SYSTEM}`) names the "
                f"reason:\n\n{_REFUSAL_DOC}",
    responses={400: {"description": "Malformed request or code"}, 404: {"description": "Unknown card"},
               409: {"description": "Card frozen/revoked or code replayed"}, 422: {"description": "Code refused"}},
)


@router.get("/api/card/keys", response_model=Jwks, summary="Verification keys (JWKS trust list)",
            description="Public keys that verify codes, for offline verifiers. Ed25519 keys are OKP/Ed25519 JWKs "
                        "(alg EdDSA); SM2 keys are EC JWKs with crv \"SM2\" (alg SM2SM3, SM3 digest, default "
                        "distinguishing ID 1234567812345678). `nbf`/`exp`: signing start and end of verification life.")
def keys(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    svc = service.service_for(_store(request))
    svc.keys.signer()  # make sure a key exists before the first code is asked for
    return JSONResponse(svc.keys.jwks(), media_type="application/jwk-set+json",
                        headers={"Cache-Control": "public, max-age=300"})


@router.post("/api/card/keys/rotate", response_model=Jwks, summary="Rotate the signing key (operator)",
             description="Creates a new signing key; the old one keeps verifying for `grace_seconds` (default one day).")
def rotate(request: Request, caller: Caller = Depends(permit("card.keys.rotate")),
           grace_seconds: int = Query(86400, ge=0, le=30 * 86400)):
    if not caller.has_role("operator"):
        raise FhirError(403, "forbidden", "operator role required")
    svc = service.service_for(_store(request))
    svc.keys.rotate(grace_seconds)
    return JSONResponse(svc.keys.jwks(), media_type="application/jwk-set+json")


@router.post("/api/card/register", response_model=RegisterStarted, status_code=202, responses={
    **_ERRORS, 429: {"description": "Too many codes for this phone"}},
    summary="Self-registration step 1: send a phone verification code",
    description="A resident gives their resident ID number, name and mobile number; a 6-digit code is sent to "
                "the phone. For a dependant, also give `guardian_card` and send the guardian's `X-Card-Token`; the "
                "phone must then be one recorded on the dependant's record. The reply never says whether the "
                "ID and name matched a record.")
def register_start(body: RegisterStart, request: Request, x_card_token: str | None = _TOKEN_HEADER,
                   caller: Caller = Depends(permit(PUBLIC))):
    started = service.start_registration(
        _store(request), body.id_number, body.name, body.phone,
        guardian_card=body.guardian_card, guardian_token=x_card_token, relationship=body.relationship,
    )
    return JSONResponse(started, status_code=202)


@router.post("/api/card/register/confirm", response_model=IssuedCard, status_code=201, responses={
    **_ERRORS, 410: {"description": "Code expired or used"}, 422: {"description": "Wrong code or no match"}},
    summary="Self-registration step 2: confirm the code and receive the card",
    description="Checks the code (5 attempts, 5 minutes), matches the resident in the patient index and issues "
                "the card. The `holder_token` is returned only here.")
def register_confirm(body: RegisterComplete, request: Request, caller: Caller = Depends(permit(PUBLIC))):
    card, token = service.complete_registration(_store(request), body.registration_id, body.code)
    return JSONResponse({**card, "holder_token": token}, status_code=201)


def _day(value: str | None, name: str) -> str | None:
    import re

    if value is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise FhirError(400, "invalid", f"{name} must be YYYY-MM-DD", name)
    return value


def _require_stats(caller: Caller) -> None:
    if not (caller.has_role("statistician") or caller.has_role("operator")):
        raise FhirError(403, "forbidden", "statistician or operator role required")


@router.get("/api/card/stats/scans", response_model=list[ScanCount], summary="Scans per institution per day",
            description="Counts of scans (accepted and refused) per institution and Asia/Shanghai day.")
def stats_scans(request: Request, caller: Caller = Depends(permit("card.stats")),
                since: str | None = Query(None, description="First day, YYYY-MM-DD"),
                until: str | None = Query(None, description="Last day, YYYY-MM-DD"),
                institution: str | None = Query(None, pattern=ORG_PATTERN)):
    _require_stats(caller)
    return service.scans_per_institution_per_day(_store(request), _day(since, "since"), _day(until, "until"), institution)


@router.get("/api/card/stats/refusals", response_model=list[RefusalCount], summary="Refused scans by reason")
def stats_refusals(request: Request, caller: Caller = Depends(permit("card.stats")),
                   since: str | None = Query(None), until: str | None = Query(None),
                   institution: str | None = Query(None, pattern=ORG_PATTERN)):
    _require_stats(caller)
    return service.refusals_by_reason(_store(request), _day(since, "since"), _day(until, "until"), institution)


# ---------------------------------------------------------------------------------------------- resident page
_STATIC = {
    "card.js": "application/javascript; charset=utf-8",
    "card.css": "text/css; charset=utf-8",
}


@router.get("/card/static/{name}", include_in_schema=False)
def static_asset(name: str, caller: Caller = Depends(permit(PUBLIC))):
    media = _STATIC.get(name)
    if media is None:
        raise FhirError(404, "not-found", "no such asset")
    return Response((_HERE / "static" / name).read_bytes(), media_type=media,
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/card/{card_id}", response_class=HTMLResponse, summary="Resident page: the live health-card QR",
            description="Mobile page (zh-CN) showing the card's QR, refreshed before it expires. Open it as "
                        "`/card/{card_id}#t=HOLDER_TOKEN`; the token stays in the browser.")
def card_page(card_id: str, caller: Caller = Depends(permit(PUBLIC))):
    _card_id(card_id)
    html = (_HERE / "templates" / "card.html").read_text(encoding="utf-8").replace("{{CARD_ID}}", card_id)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
