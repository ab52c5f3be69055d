"""Development mode's demo accounts: an operator, a doctor, a resident and a system client, written
to ``DATA_DIR/demo-credentials.json`` and printed at start-up. Production refuses them."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from hutong.security.tables import security_client, security_user

CREDENTIALS = "demo-credentials.json"
DEMO_CLIENT = "demo-system"
DEMO_USERS = {  # username: (roles, institution, patient)
    "demo-operator": ("operator", None, None),
    "demo-doctor": ("clinician", "demo-h1", None),
    "demo-resident": ("resident", None, "demo-p1"),
}
DEMO_SCOPE = "system/*.* hutong/*"


class ProductionRefusal(RuntimeError):
    """Something development-only was asked of a production node."""


def is_production(settings) -> bool:
    return (getattr(settings, "env", "") or os.environ.get("HUTONG_ENV", "")).lower() == "production"


def credentials_path(settings) -> Path:
    return Path(settings.data_dir) / CREDENTIALS


def ensure_demo_accounts(store) -> dict:
    """Create the demo accounts once (or read them back); returns the credentials document."""
    from hutong.security.sessions import Sessions
    from hutong.security.tokens import TokenService

    settings = store.settings
    if is_production(settings):
        raise ProductionRefusal("demo accounts are refused in production (HUTONG_ENV=production)")
    path = credentials_path(settings)
    with store.read() as tx:
        have_client = tx.conn.execute(select(security_client.c.client_id)
                                      .where(security_client.c.client_id == DEMO_CLIENT)).scalar()
        have_users = set(tx.conn.execute(select(security_user.c.username)
                                         .where(security_user.c.username.in_(list(DEMO_USERS)))).scalars())
    if have_client and have_users == set(DEMO_USERS) and path.exists():
        return orjson.loads(path.read_bytes())
    doc = orjson.loads(path.read_bytes()) if path.exists() else {}
    if not have_client:
        key = ECKey.generate_key("P-384", parameters={"kid": "demo-" + secrets.token_hex(4), "alg": "ES384"})
        TokenService(store, settings).add_client("Demo system client 演示系统", DEMO_SCOPE,
                                                 jwks={"keys": [key.as_dict(private=False)]}, client_id=DEMO_CLIENT)
        doc["system_client"] = {"client_id": DEMO_CLIENT, "scope": DEMO_SCOPE, "alg": "ES384",
                                "private_jwk": key.as_dict(private=True)}
    sessions = Sessions(store, settings)
    users = doc.setdefault("users", {})
    for username, (roles, institution, patient) in DEMO_USERS.items():
        if username in have_users:
            continue
        password = secrets.token_urlsafe(12)
        totp = sessions.add_user(username, password, roles, display=username, institution=institution,
                                 patient=patient)
        users[username] = {"password": password, "roles": roles, "totp_secret": totp, "institution": institution,
                           "patient": patient}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.chmod(path, 0o600)
    return doc


def demo_assertion(settings, token_url: str) -> str:
    """A fresh client assertion (RFC 7523, ES384) of the demo system client, for ``curl``."""
    if is_production(settings):
        raise ProductionRefusal("the demo client is refused in production")
    path = credentials_path(settings)
    if not path.exists():
        raise ProductionRefusal(f"no demo credentials in {path}: start the node once in development mode")
    client = orjson.loads(path.read_bytes())["system_client"]
    key = ECKey.import_key(client["private_jwk"])
    now = int(time.time())
    claims = {"iss": client["client_id"], "sub": client["client_id"], "aud": token_url, "exp": now + 240,
              "iat": now, "jti": secrets.token_urlsafe(16)}
    return jwt.encode({"alg": "ES384", "kid": client["private_jwk"]["kid"], "typ": "JWT"}, claims, key,
                      algorithms=["ES384"])


def usage(doc: dict, base: str, data_dir: str = "DATA_DIR") -> str:
    """How to use the demo credentials (printed by ``hutong serve`` in development mode)."""
    lines = ["", "Development mode: demo accounts (also in demo-credentials.json of the data folder)"]
    for username, user in doc.get("users", {}).items():
        extra = (f" + TOTP code (hutong auth totp --data-dir {data_dir} --user {username})"
                 if user.get("totp_secret") else "")
        lines.append(f"  {user['roles']:<10} login {base}/login  user {username}  password {user['password']}{extra}")
    client = doc.get("system_client", {})
    lines += [
        f"  system     client {client.get('client_id')} (SMART Backend Services, scope {client.get('scope')})",
        "  get a token:",
        f"    curl -s {base}/auth/token -d grant_type=client_credentials \\",
        "      -d client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \\",
        f"      -d client_assertion=$(hutong auth assertion --data-dir {data_dir} --token-url "
        f"{base}/auth/token) -d 'scope=system/*.rs'",
        f"  or simply: hutong auth token --data-dir {data_dir}",
        "",
    ]
    return "\n".join(lines)
