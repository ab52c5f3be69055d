"""What a production node refuses to start with (``HUTONG_ENV=production``)."""

from __future__ import annotations

from hutong.security.demo import is_production

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class StartRefused(RuntimeError):
    """The node's configuration is not fit for production."""


def production_problems(settings) -> list[str]:
    """Why a production node would refuse to start (empty: fine)."""
    if not is_production(settings):
        return []
    problems = []
    if not settings.web_secret or len(settings.web_secret) < 32:
        problems.append("HUTONG_WEB_SECRET must be set to a random secret of at least 32 characters")
    if not settings.card_kek:
        problems.append("HUTONG_CARD_KEK must be set (the card signing keys' key-encryption key)")
    gateway = getattr(settings, "security_gateway_key", "")
    if gateway and len(gateway) < 32:
        problems.append("HUTONG_SECURITY_GATEWAY_KEY must be at least 32 characters")
    if settings.host not in _LOOPBACK and not getattr(settings, "security_behind_proxy", False) \
            and not getattr(settings, "tls_cert", ""):
        problems.append(f"binding {settings.host} without TLS: set HUTONG_TLS_CERT/HUTONG_TLS_KEY or declare "
                        "HUTONG_SECURITY_BEHIND_PROXY=1 with HUTONG_PUBLIC_URL https://…")
    if getattr(settings, "security_behind_proxy", False) and not settings.public_url.startswith("https://"):
        problems.append("behind a proxy HUTONG_PUBLIC_URL must be the https:// URL clients use")
    return problems


def check_production(settings, store=None) -> None:
    problems = production_problems(settings)
    if store is not None and is_production(settings):
        from sqlalchemy import select

        from hutong.security.demo import DEMO_CLIENT, DEMO_USERS
        from hutong.security.tables import security_client, security_user

        with store.read() as tx:
            if tx.conn.execute(select(security_client.c.client_id)
                               .where(security_client.c.client_id == DEMO_CLIENT,
                                      security_client.c.status == "active")).first() or \
               tx.conn.execute(select(security_user.c.username)
                               .where(security_user.c.username.in_(list(DEMO_USERS)),
                                      security_user.c.disabled.is_(False))).first():
                problems.append("demo accounts exist: disable them (hutong clients disable demo-system) first")
    if problems:
        raise StartRefused("production start refused:\n  - " + "\n  - ".join(problems))
