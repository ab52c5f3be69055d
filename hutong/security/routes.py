"""HTTP for security: SMART discovery, the token endpoint, the node's JWKS, client administration,
the audit trail (auditors, and residents' own access log) and security events."""

from __future__ import annotations

from typing import Literal

import anyio
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.security import audit
from hutong.security.scopes import ScopeError
from hutong.security.service import security_of
from hutong.security.tokens import CLIENT_ALGS, OAuthError

router = APIRouter(tags=["security 安全与审计"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def public_base(request: Request) -> str:
    """The node's base URL as clients see it (``HUTONG_PUBLIC_URL`` behind a proxy)."""
    configured = request.app.state.settings.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


def smart_configuration(base: str) -> dict:
    """The SMART discovery document (SMART App Launch 2.x, Backend Services)."""
    return {
        "issuer": base,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ALGS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.read", "system/*.cruds", "system/*.rs", "system/*.*", "system/Patient.rs",
                             "system/Observation.rs", "hutong/*"],
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": [],
    }


@router.get("/.well-known/smart-configuration", summary="SMART configuration (discovery)")
def smart_config(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    return JSONResponse(smart_configuration(public_base(request)))


@router.get("/.well-known/jwks.json", summary="The node's public keys for its access tokens")
def node_jwks(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    return JSONResponse(security_of(request.app.state.node).keys.jwks(),
                        headers={"Cache-Control": "public, max-age=300"})


@router.post("/auth/token", summary="OAuth2 token endpoint (client credentials, private_key_jwt)",
             description="SMART Backend Services: `grant_type=client_credentials`, `client_assertion_type="
                         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, `client_assertion` a JWT signed "
                         "with the client's registered key (RS384/ES384), `scope`. Errors are RFC 6749 §5.2 JSON.")
async def token(request: Request, caller: Caller = Depends(permit(PUBLIC))):
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return _oauth_error(OAuthError("invalid_request", "send the request as application/x-www-form-urlencoded"))
    try:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
    except Exception:  # noqa: BLE001 - a malformed form is the client's error
        return _oauth_error(OAuthError("invalid_request", "the form body could not be read"))
    node = request.app.state.node
    service = security_of(node)
    base = public_base(request)
    try:
        answer = await anyio.to_thread.run_sync(service.tokens.issue, values, f"{base}/auth/token", f"{base}/fhir")
    except OAuthError as exc:
        kind = "token-replay" if "replayed" in exc.description else "token-refused"
        address = request.client.host if request.client else ""
        who = _assertion_issuer(values.get("client_assertion", ""))
        await anyio.to_thread.run_sync(service.events.record, kind, who, address, exc.description)
        if exc.error == "invalid_client":
            service.protection.failed_credentials(address, who or "?")
        return _oauth_error(exc)
    return JSONResponse(answer, headers=_NO_STORE)


def _assertion_issuer(assertion: str) -> str:
    """The (unverified) ``iss`` of an assertion, for the security event of a refusal."""
    import base64

    try:
        payload = assertion.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("iss", ""))[:80] if isinstance(claims, dict) else ""
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return ""


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hutong"'  # RFC 6749 §5.2 for invalid_client
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


# ---------------------------------------------------------------------------------------------- clients
class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    scope: str = Field(min_length=1, max_length=2000)
    jwks: dict | None = None
    jwks_url: str | None = Field(None, max_length=500)
    institution: str | None = Field(None, pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    tenant: str | None = Field(None, pattern=r"^\d{2,6}$")
    roles: str = Field("system", pattern=r"^[a-z,]{1,200}$")


class KeysIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jwks: dict | None = None
    jwks_url: str | None = Field(None, max_length=500)


def _tokens(request: Request):
    return security_of(request.app.state.node).tokens


@router.get("/api/security/clients", summary="Registered client systems")
def list_clients(request: Request, caller: Caller = Depends(permit("security.clients"))):
    return {"clients": [c.public() for c in _tokens(request).clients()]}


@router.post("/api/security/clients", status_code=201, summary="Register a client system (SMART Backend Services)")
def add_client(body: ClientIn, request: Request, caller: Caller = Depends(permit("security.clients"))):
    try:
        client_id = _tokens(request).add_client(body.name, body.scope, jwks=body.jwks, jwks_url=body.jwks_url,
                                                institution=body.institution, tenant=body.tenant, roles=body.roles)
    except (ValueError, ScopeError) as exc:
        raise FhirError(400, "invalid", str(exc)) from None
    return _tokens(request).client(client_id).public()


@router.post("/api/security/clients/{client_id}/rotate", summary="Replace a client's keys")
def rotate_client(client_id: str, body: KeysIn, request: Request,
                  caller: Caller = Depends(permit("security.clients"))):
    try:
        _tokens(request).rotate_client(client_id, jwks=body.jwks, jwks_url=body.jwks_url)
    except ValueError as exc:
        raise FhirError(400, "invalid", str(exc)) from None
    except KeyError:
        raise FhirError(404, "not-found", "no such client") from None
    return _tokens(request).client(client_id).public()


@router.post("/api/security/clients/{client_id}/{action}", summary="Disable or enable a client")
def set_client_status(client_id: str, action: Literal["disable", "enable"], request: Request,
                      caller: Caller = Depends(permit("security.clients"))):
    try:
        _tokens(request).set_status(client_id, "disabled" if action == "disable" else "active")
    except KeyError:
        raise FhirError(404, "not-found", "no such client") from None
    return _tokens(request).client(client_id).public()


@router.get("/api/security/whoami", summary="The caller as the node sees it")
def whoami(caller: Caller = Depends(permit("security.whoami"))):
    return {"client_id": caller.client_id, "roles": sorted(caller.roles), "institution": caller.institution,
            "tenant": caller.tenant, "auth": caller.auth,
            "scopes": sorted(caller.scopes) if caller.scopes is not None else None}


# ---------------------------------------------------------------------------------------------- audit
@router.get("/api/security/audit", summary="Search the audit trail (auditors)")
def audit_search(request: Request, caller: Caller = Depends(permit("audit.read")),
                 patient: str | None = Query(None, max_length=64), agent: str | None = Query(None, max_length=200),
                 institution: str | None = Query(None, max_length=64),
                 action: Literal["C", "R", "U", "D", "E"] | None = None,
                 since: str | None = Query(None, description="FHIR instant or date"),
                 until: str | None = Query(None), break_glass: bool | None = None,
                 count: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=1_000_000)):
    node = request.app.state.node
    security_of(node).audit.drain()
    events = audit.search(node.store, patient=patient, agent=agent, institution=institution, action=action,
                          since_us=_time(since), until_us=_time(until), break_glass=break_glass, limit=count,
                          offset=offset)
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": e} for e in events]}


@router.get("/api/security/audit/verify", summary="Verify the audit hash chain")
def audit_verify(request: Request, caller: Caller = Depends(permit("audit.verify"))):
    node = request.app.state.node
    security_of(node).audit.drain()
    result = audit.verify(node.store)
    return {"ok": result.ok, "checked": result.checked, "first_bad": result.first_bad, "problem": result.problem}


@router.get("/api/security/my-access", summary="Who opened my record and when (residents)")
def my_access(request: Request, caller: Caller = Depends(permit("security.my_access")),
              patient: str | None = Query(None, max_length=64)):
    if not caller.patient:
        raise FhirError(403, "forbidden", "only a signed-in resident has an access log")
    allowed = {caller.patient}
    if patient and patient not in allowed:
        raise FhirError(403, "forbidden", "a resident sees the access log of their own record only")
    node = request.app.state.node
    security_of(node).audit.drain()
    return {"patient": caller.patient, "accesses": audit.access_log(node.store, patient or caller.patient)}


@router.get("/api/security/events", summary="Security events by kind and day",
            description="Counts by Asia/Shanghai day and kind over the last `days` days (`counts`), totals by kind "
                        "(`totals`, every kind listed), and the kinds the node detects (`kinds`).")
def security_events(request: Request, caller: Caller = Depends(permit("security.events")),
                    days: int = Query(30, ge=1, le=400)):
    return events_summary(security_of(request.app.state.node).events, days)


@router.get("/api/security/events/recent", summary="The latest security events")
def security_events_recent(request: Request, caller: Caller = Depends(permit("security.events")),
                           kind: str | None = Query(None, max_length=40), count: int = Query(50, ge=1, le=500)):
    from hutong.core.clock import instant

    events = security_of(request.app.state.node).events.recent(count, kind)
    return {"events": [{**e, "time": instant(e.pop("ts_us"))} for e in events]}


def events_summary(events, days: int) -> dict:
    """Counts by day and kind, and totals by kind, over the last ``days`` days (API and page)."""
    from hutong.core.clock import now_us
    from hutong.security.events import KINDS

    since = now_us() - days * 86_400_000_000
    return {"days": days, "kinds": list(KINDS), "counts": events.counts(since), "totals": events.totals(since)}


def _time(value: str | None) -> int | None:
    if not value:
        return None
    from datetime import datetime

    from hutong.core.clock import SHANGHAI, to_us

    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, "invalid", f"not a date or instant: {value[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return to_us(dt)


def _json(value) -> bytes:
    return orjson.dumps(value)
