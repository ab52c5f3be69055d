"""Who calls the CDS services: the JWT a hospital system signs for each request (CDS Hooks 2.0,
"Trusting CDS Clients").

The client sends ``Authorization: Bearer <JWT>``; the header names ``alg`` (ES384 or RS384, as
CDS Hooks requires; ES256/RS256 are accepted too), ``kid`` and optionally ``jku``; the claims are
``iss`` (a registered client), ``aud`` (this service's URL), ``exp`` (at most five minutes ahead),
``iat`` and ``jti`` (used once). The keys come from the client's **registered** ``jku`` (a ``jku``
in the token must equal it) or from a key set registered inline; a key set fetched from a ``jku``
is cached for five minutes and fetched again once for an unknown ``kid`` (key rotation). The
caller is then the registered client, acting for its registered institution.

Until the security capability enforces authentication node-wide, a request without a token is
answered for the node's ordinary caller unless ``HUTONG_RECOGNITION_CDS_REQUIRE_JWT`` is on; a
token that is present is always checked, and a bad one is refused (401).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from hutong.core.caller import Caller
from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.recognition.tables import recognition_cds_client, recognition_cds_jti

ALGORITHMS = ["ES384", "RS384", "ES256", "RS256"]
MAX_LIFETIME_S = 300
_JWKS_TTL_S = 300
_jwks_cache: dict[str, tuple[float, KeySet]] = {}
_lock = threading.Lock()


def _refuse(why: str) -> FhirError:
    return FhirError(401, "security", f"CDS 客户端身份验证失败 / CDS client not trusted: {why}")


def register_client(store, iss: str, institution: str, *, jku: str | None = None, jwks: dict | None = None) -> None:
    """Register (or replace) a hospital system allowed to call the CDS services."""
    if not (jku or jwks):
        raise ValueError("a client needs a jku or an inline key set")
    _clients.pop(iss, None)
    if jwks is not None:
        KeySet.import_key_set(jwks)  # refuse a malformed key set now, not at the first call
    c = recognition_cds_client.c
    with store.write() as tx:
        tx.conn.execute(delete(recognition_cds_client).where(c.iss == iss))
        tx.conn.execute(insert(recognition_cds_client).values(
            iss=iss, jku=jku, jwks=json.dumps(jwks) if jwks else None, institution=institution, active=True,
            created_us=now_us()))
    _clients.pop(iss, None)


def _fetch(jku: str) -> KeySet:
    try:
        r = httpx.get(jku, timeout=3.0, headers={"Accept": "application/json"})
        r.raise_for_status()
        return KeySet.import_key_set(r.json())
    except (httpx.HTTPError, ValueError, JoseError, TypeError) as exc:
        raise _refuse(f"the client's key set at its jku could not be read ({type(exc).__name__})") from None


def _keys(jku: str, kid: str | None, *, refresh: bool = False) -> KeySet:
    with _lock:
        hit = _jwks_cache.get(jku)
    if hit is None or refresh or time.monotonic() - hit[0] > _JWKS_TTL_S:
        ks = _fetch(jku)
        with _lock:
            _jwks_cache[jku] = (time.monotonic(), ks)
        return ks
    return hit[1]


def _has_kid(ks: KeySet, kid: str | None) -> bool:
    return kid is None or any(k.kid == kid for k in ks.keys)


@dataclass(frozen=True)
class Replay:
    """A verified token's ``jti``, to be recorded as used in the transaction of the answer (a token
    works once: recording it there saves a write per call, and a replay rolls the answer back)."""

    iss: str
    jti: str
    expires_us: int


@dataclass(frozen=True)
class _Client:
    institution: str
    jku: str | None
    keys: KeySet | None  # the inline key set, parsed once


_CLIENT_TTL_S = 30.0
_clients: dict[str, tuple[float, _Client]] = {}
_last_sweep = [0.0]
_SWEEP_EVERY_S = 60.0


def _client(store, iss: str) -> _Client | None:
    """The registered client ``iss`` (cached for half a minute in this process; ``register_client``
    clears the cache, other processes see a change within that half minute)."""
    mono = time.monotonic()
    hit = _clients.get(iss)
    if hit is not None and hit[0] > mono:
        return hit[1]
    c = recognition_cds_client.c
    with store.read() as tx:
        row = tx.conn.execute(select(recognition_cds_client).where(c.iss == iss, c.active.is_(True))).first()
    if row is None:
        _clients.pop(iss, None)
        return None
    client = _Client(row.institution, row.jku, KeySet.import_key_set(json.loads(row.jwks)) if row.jwks else None)
    with _lock:
        if len(_clients) > 10_000:
            _clients.clear()
        _clients[iss] = (mono + _CLIENT_TTL_S, client)
    return client


def record(tx, replay: Replay | None) -> None:
    """Record a token's ``jti`` as used, inside ``tx`` (a write transaction); 401 when it was used
    already (the whole transaction then rolls back). Expired ones are swept about once a minute."""
    if replay is None:
        return
    j = recognition_cds_jti.c
    mono = time.monotonic()
    if mono - _last_sweep[0] > _SWEEP_EVERY_S:
        _last_sweep[0] = mono
        # a minute past expiry: a token is still accepted a few seconds after its exp (clock skew)
        tx.conn.execute(delete(recognition_cds_jti).where(j.expires_us < now_us() - 60_000_000))
    try:  # the primary key refuses a jti used before (no lookup first: one round trip less)
        tx.conn.execute(insert(recognition_cds_jti).values(iss=replay.iss, jti=replay.jti, expires_us=replay.expires_us))
    except IntegrityError:  # used before (or by a concurrent request): the whole answer rolls back
        raise _refuse("this token was already used (jti)") from None


def authorize(store, authorization: str | None, audience: set[str], fallback: Caller, *, require: bool) -> Caller:
    """``verify`` and record the token's ``jti`` in a transaction of its own."""
    caller, replay = verify(store, authorization, audience, fallback, require=require)
    if replay is not None:
        try:
            with store.write() as tx:
                record(tx, replay)
        except FhirError as exc:
            if exc.status == 409:  # the store's answer to a unique-key race
                raise _refuse("this token was already used (jti)") from None
            raise
    return caller


def verify(store, authorization: str | None, audience: set[str], fallback: Caller, *,
           require: bool) -> tuple[Caller, Replay | None]:
    """The caller of a CDS service request — the verified client, or ``fallback`` when no token
    came and none is required — and the token's ``jti`` to ``record`` in the answer's transaction.
    Raises 401 for a missing (when required) or untrustworthy token."""
    if not authorization:
        if require:
            raise _refuse("a signed JWT (Authorization: Bearer …) is required")
        return fallback, None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refuse("Authorization must be 'Bearer <JWT>'")
    token = token.strip()
    try:
        compact = jws.extract_compact(token.encode())
        header = compact.protected
        unverified = json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeDecodeError):
        raise _refuse("not a compact JWS") from None
    if header.get("alg") not in ALGORITHMS:
        raise _refuse(f"alg must be one of {', '.join(ALGORITHMS)}")
    iss = unverified.get("iss") if isinstance(unverified, dict) else None
    if not isinstance(iss, str):
        raise _refuse("iss is missing")
    client = _client(store, iss)
    if client is None:
        raise _refuse("iss is not a registered client")
    kid = header.get("kid")
    if client.keys is not None:
        ks = client.keys
    else:
        if header.get("jku") not in (None, client.jku):
            raise _refuse("the token's jku is not the client's registered jku")
        ks = _keys(client.jku, kid)
        if not _has_kid(ks, kid):
            ks = _keys(client.jku, kid, refresh=True)
    if not _has_kid(ks, kid):
        raise _refuse("no key with that kid in the client's key set")
    try:
        verified = jwt.decode(token, ks, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise _refuse(f"bad signature ({type(exc).__name__})") from None
    claims = verified.claims
    now = int(time.time())
    aud = claims.get("aud")
    auds = set(aud) if isinstance(aud, list) else {aud}
    if not auds & audience:
        raise _refuse("aud is not this service's URL")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp < now - 5:
        raise _refuse("the token has expired (exp)")
    if exp > now + MAX_LIFETIME_S + 30:
        raise _refuse("exp is more than five minutes ahead")
    iat = claims.get("iat")
    if iat is not None and (not isinstance(iat, int | float) or iat > now + 60):
        raise _refuse("iat is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
        raise _refuse("jti is required")
    caller = Caller(client_id=iss, institution=client.institution, roles=frozenset({"system"}), tenant=fallback.tenant)
    return caller, Replay(iss, jti, int(exp * 1_000_000))
