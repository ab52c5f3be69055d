"""SMART Backend Services: registered clients, the token endpoint's checks (RFC 7523 client
assertions, ``private_key_jwt``), and the node's short-lived signed access tokens.

Every refusal is an ``OAuthError`` whose ``error`` is an RFC 6749 §5.2 code; the route answers it as
OAuth2 JSON. Assertion failures are ``invalid_client`` (RFC 7523 §3.2 requires that code for client
authentication by JWT), with a description naming the failed check.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert, select, update

from hutong.core.caller import Caller
from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.security import scopes as scope_mod
from hutong.security.keys import ALG, NodeKeys
from hutong.security.tables import security_client, security_jti

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Client assertion signature algorithms (SMART requires RS384 and ES384).
CLIENT_ALGS = ("RS384", "ES384", "RS256", "ES256", "PS384")
#: An assertion may expire at most this far ahead (SMART: no more than five minutes).
MAX_ASSERTION_S = 300
LEEWAY_S = 30
JWKS_URL_TTL_S = 300


class OAuthError(Exception):
    """A refusal of the token endpoint (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    jwks: dict | None
    jwks_url: str | None
    scope: frozenset[str]
    roles: frozenset[str]
    institution: str | None
    tenant: str | None
    status: str

    def public(self) -> dict:
        return {"client_id": self.client_id, "name": self.name, "scope": " ".join(sorted(self.scope)),
                "roles": sorted(self.roles), "institution": self.institution, "tenant": self.tenant,
                "status": self.status, "jwks_url": self.jwks_url,
                "kids": [k.get("kid") for k in (self.jwks or {}).get("keys", [])]}


def _row_client(row) -> Client:
    return Client(row.client_id, row.name, orjson.loads(row.jwks) if row.jwks else None, row.jwks_url,
                  frozenset(row.scope.split()), frozenset(r for r in row.roles.split(",") if r),
                  row.institution, row.tenant, row.status)


def check_jwks(jwks: dict) -> dict:
    """A public JWKS, checked: keys import, each has a ``kid``, no private parts."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("a JWKS is an object with a non-empty 'keys' array")
    for key in jwks["keys"]:
        if not isinstance(key, dict) or not key.get("kid"):
            raise ValueError("every key of the JWKS needs a 'kid'")
        if "d" in key:
            raise ValueError(f"key {key['kid']!r} holds a private part: register public keys only")
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"the JWKS does not import: {exc}") from None
    return jwks


class TokenService:
    """Clients, the token endpoint and access-token checking for one node."""

    def __init__(self, store, settings, keys: NodeKeys | None = None, fetch_jwks=None):
        self.store = store
        self.settings = settings
        self.keys = keys or NodeKeys(store)
        self.ttl_s = int(getattr(settings, "security_token_ttl_s", 300))
        self._fetch = fetch_jwks or _fetch_jwks
        self._url_keys: dict[str, tuple[float, dict]] = {}
        self._verified: dict[str, tuple[int, Caller]] = {}
        self._status: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ clients
    def add_client(self, name: str, scope: str, *, jwks: dict | None = None, jwks_url: str | None = None,
                   institution: str | None = None, tenant: str | None = None, roles: str = "system",
                   client_id: str | None = None) -> str:
        """Register a client; returns its id."""
        if (jwks is None) == (jwks_url is None):
            raise ValueError("give the client's keys as a JWKS or as a JWKS URL (one of them)")
        if jwks is not None:
            check_jwks(jwks)
        if jwks_url is not None and not jwks_url.startswith("https://") and not _loopback(jwks_url):
            raise ValueError("a JWKS URL must be https:// (http:// only on loopback, for tests)")
        scope_mod.parse_scope(scope)
        client_id = client_id or "c-" + secrets.token_hex(8)
        now = now_us()
        with self.store.write() as tx:
            tx.conn.execute(insert(security_client).values(
                client_id=client_id, name=name, jwks=orjson.dumps(jwks).decode() if jwks else None,
                jwks_url=jwks_url, scope=scope, roles=roles, institution=institution, tenant=tenant,
                status="active", created_us=now, updated_us=now))
        return client_id

    def client(self, client_id: str) -> Client | None:
        with self.store.read() as tx:
            row = tx.conn.execute(select(security_client).where(security_client.c.client_id == client_id)).first()
        return _row_client(row) if row else None

    def clients(self) -> list[Client]:
        with self.store.read() as tx:
            rows = tx.conn.execute(select(security_client).order_by(security_client.c.created_us)).all()
        return [_row_client(r) for r in rows]

    def rotate_client(self, client_id: str, *, jwks: dict | None = None, jwks_url: str | None = None) -> None:
        """Replace a client's registered keys (the new JWKS may hold old and new keys during a rollover)."""
        if (jwks is None) == (jwks_url is None):
            raise ValueError("give the new keys as a JWKS or as a JWKS URL")
        if jwks is not None:
            check_jwks(jwks)
        self._set(client_id, jwks=orjson.dumps(jwks).decode() if jwks else None, jwks_url=jwks_url)
        self._url_keys.clear()

    def set_status(self, client_id: str, status: str) -> None:
        self._set(client_id, status=status)
        with self._lock:
            self._status.pop(client_id, None)
            self._verified.clear()

    def _set(self, client_id: str, **values) -> None:
        with self.store.write() as tx:
            n = tx.conn.execute(update(security_client).where(security_client.c.client_id == client_id)
                                .values(updated_us=now_us(), **values)).rowcount
        if not n:
            raise KeyError(client_id)

    # ------------------------------------------------------------------------------ token endpoint
    def issue(self, form: dict[str, str], token_url: str, fhir_base: str) -> dict:
        """Answer a client-credentials token request (``form`` is the decoded body)."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials is supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion") or ""
        if not assertion:
            raise OAuthError("invalid_request", "client_assertion is missing")
        client, claims = self._check_assertion(assertion, token_url)
        requested = form.get("scope", "").strip()
        try:
            wanted = scope_mod.parse_scope(requested) if requested else client.scope
            granted = scope_mod.narrow(wanted, client.scope)
        except (scope_mod.ScopeError, FhirError) as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        if not granted:
            raise OAuthError("invalid_scope", "no scope requested")
        token = self.mint(client.client_id, granted, roles=client.roles, institution=client.institution,
                          tenant=client.tenant, audience=fhir_base)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.ttl_s,
                "scope": " ".join(sorted(granted))}

    def _check_assertion(self, assertion: str, token_url: str) -> tuple[Client, dict]:
        try:
            compact = jws.extract_compact(assertion.encode())
            header = compact.headers()
            unverified = orjson.loads(compact.payload)
        except (JoseError, ValueError, TypeError):
            raise OAuthError("invalid_client", "client_assertion is not a compact JWS", 401) from None
        if not isinstance(unverified, dict):
            raise OAuthError("invalid_client", "client_assertion claims are not a JSON object", 401)
        alg = header.get("alg")
        if alg not in CLIENT_ALGS:
            raise OAuthError("invalid_client", f"alg {str(alg)[:20]!r} is not accepted (use RS384 or ES384)", 401)
        iss, sub = unverified.get("iss"), unverified.get("sub")
        if not isinstance(iss, str) or iss != sub:
            raise OAuthError("invalid_client", "iss and sub must both be the client id", 401)
        client = self.client(iss)
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.status != "active":
            raise OAuthError("invalid_client", "the client is disabled", 401)
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise OAuthError("invalid_client", "jku is not the client's registered JWKS URL", 401)
        kid = header.get("kid")
        if not kid:
            raise OAuthError("invalid_client", "the assertion header has no kid", 401)
        jwks = client.jwks if client.jwks is not None else self._jwks_at(client.jwks_url or "")
        keys = [k for k in jwks.get("keys", []) if k.get("kid") == kid]
        if not keys:
            raise OAuthError("invalid_client", f"unknown kid {str(kid)[:40]!r}", 401)
        try:
            token = jwt.decode(assertion, KeySet.import_key_set({"keys": keys}), algorithms=[alg])
        except JoseError:
            raise OAuthError("invalid_client", "the assertion's signature does not verify", 401) from None
        claims = token.claims
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            raise OAuthError("invalid_client", "the assertion has no exp", 401)
        if exp < now - LEEWAY_S:
            raise OAuthError("invalid_client", "the assertion has expired", 401)
        if exp > now + MAX_ASSERTION_S + LEEWAY_S:
            raise OAuthError("invalid_client", "the assertion's exp is more than 5 minutes ahead", 401)
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if token_url not in auds:
            raise OAuthError("invalid_client", f"aud must be the token URL {token_url}", 401)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            raise OAuthError("invalid_client", "the assertion has no jti", 401)
        self._use_jti(client.client_id, jti, int(exp * 1_000_000))
        return client, claims

    def _use_jti(self, client_id: str, jti: str, exp_us: int) -> None:
        now = now_us()
        try:
            with self.store.write() as tx:
                tx.conn.execute(delete(security_jti).where(security_jti.c.exp_us < now - LEEWAY_S * 1_000_000))
                tx.conn.execute(insert(security_jti).values(client_id=client_id, jti=jti, exp_us=exp_us))
        except FhirError as exc:
            if exc.status == 409:
                raise OAuthError("invalid_client", "jti was already used (replayed assertion)", 401) from None
            raise

    def _jwks_at(self, url: str) -> dict:
        got = self._url_keys.get(url)
        if got is not None and got[0] > time.monotonic():
            return got[1]
        try:
            jwks = check_jwks(self._fetch(url))
        except Exception as exc:  # noqa: BLE001 - any failure to fetch is the client's problem, said plainly
            raise OAuthError("invalid_client", f"the client's JWKS URL could not be read: {str(exc)[:120]}", 401) from None
        self._url_keys[url] = (time.monotonic() + JWKS_URL_TTL_S, jwks)
        return jwks

    # ------------------------------------------------------------------------------ access tokens
    def mint(self, client_id: str, scopes: frozenset[str], *, roles: frozenset[str] = frozenset({"system"}),
             institution: str | None = None, tenant: str | None = None, audience: str = "",
             ttl_s: int | None = None) -> str:
        """A signed access token (ES256, the node's key)."""
        now = int(time.time())
        claims = {"iss": "hutong", "sub": client_id, "aud": audience or "hutong", "iat": now,
                  "exp": now + (ttl_s or self.ttl_s), "jti": secrets.token_urlsafe(12),
                  "scope": " ".join(sorted(scopes)), "roles": ",".join(sorted(roles))}
        if institution:
            claims["inst"] = institution
        if tenant:
            claims["tenant"] = tenant
        key = self.keys.signing()
        return jwt.encode({"alg": ALG, "kid": key.kid, "typ": "at+jwt"}, claims, key, algorithms=[ALG])

    def caller(self, token: str) -> Caller:
        """The caller an access token stands for; 401 FhirError when it is not valid."""
        now = now_us()
        got = self._verified.get(token)
        if got is not None and got[0] > now:
            caller = got[1]
        else:
            try:
                decoded = jwt.decode(token, self.keys.keyset(), algorithms=[ALG])
            except (JoseError, ValueError, TypeError):
                raise _unauthorized("invalid_token", "the access token does not verify") from None
            claims = decoded.claims
            exp = claims.get("exp")
            if not isinstance(exp, (int, float)) or exp * 1_000_000 <= now:
                raise _unauthorized("invalid_token", "the access token has expired")
            if claims.get("iss") != "hutong" or not isinstance(claims.get("sub"), str):
                raise _unauthorized("invalid_token", "the access token was not issued by this node")
            caller = Caller(client_id=claims["sub"], institution=claims.get("inst"),
                            roles=frozenset(r for r in str(claims.get("roles", "system")).split(",") if r),
                            tenant=claims.get("tenant"), scopes=frozenset(str(claims.get("scope", "")).split()),
                            auth="token")
            with self._lock:
                if len(self._verified) > 20_000:
                    self._verified.clear()
                self._verified[token] = (int(exp * 1_000_000), caller)
        if self._client_status(caller.client_id) not in ("active", None):
            raise _unauthorized("invalid_token", "the client is disabled")
        return caller

    def _client_status(self, client_id: str) -> str | None:
        got = self._status.get(client_id)
        mono = time.monotonic()
        if got is not None and got[0] > mono:
            return got[1]
        with self.store.read() as tx:
            status = tx.conn.execute(select(security_client.c.status)
                                     .where(security_client.c.client_id == client_id)).scalar()
        # None: a token minted for an unregistered id (the node's own bootstrap): valid while signed.
        self._status[client_id] = (mono + 10.0, status)
        return status


def _unauthorized(error: str, description: str) -> FhirError:
    return FhirError(401, "login", description,
                     headers={"WWW-Authenticate": f'Bearer realm="hutong", error="{error}", '
                                                  f'error_description="{description}"'})


def _loopback(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))


def _fetch_jwks(url: str) -> dict:
    import httpx

    r = httpx.get(url, timeout=5.0, follow_redirects=False)
    r.raise_for_status()
    if len(r.content) > 256 * 1024:
        raise ValueError("JWKS document too large")
    return r.json()
