"""Security as a capability: token endpoint and discovery, sign-in pages, audit and events APIs,
the security middleware, the commands, and the permissions its own routes use."""

from hutong.capability import Capability, Middleware, NavEntry
from hutong.security import audit_pages, cli, pages, routes, tables
from hutong.security.middleware import SecurityLayer


def _startup(node) -> None:
    from hutong.security.scoping import install
    from hutong.security.service import security_of
    from hutong.security.startup import check_production

    check_production(node.settings)
    security_of(node).start()
    install()  # export jobs get their owner's tenant and consent fence


def _shutdown(node) -> None:
    service = node.services.get("security")
    if service is not None:
        service.close()


CAPABILITY = Capability(
    name="security",
    summary="安全与审计 security: SMART Backend Services tokens, sign-in, the policy, the BALP audit trail",
    routers=[routes.router, pages.router, audit_pages.router],
    middleware=[Middleware(SecurityLayer, "outer")],
    cli=cli.register,
    startup=_startup,
    shutdown=_shutdown,
    nav=[
        NavEntry("resident", "/portal/access-log", "谁查看了我的档案", "security.my_access", order=80),
        NavEntry("console", "/console/security", "安全事件", "security.events", order=95),
        NavEntry("console", "/console/audit", "审计日志", "audit.read", order=96),
    ],
    permissions={
        "security.clients": "register, rotate and disable client systems",
        "security.events": "see security events (failed sign-ins, replays, scraping) by kind and day",
        "security.whoami": "see how the node identifies the caller",
        "security.my_access": "a resident: see who opened their record and when",
        "security.break_glass": "a doctor: open a record outside a care relationship, with a stated reason",
        "audit.read": "search the audit trail",
        "audit.verify": "verify the audit hash chain",
        "audit.review": "review break-the-glass accesses",
    },
    tables=tables.TABLES,
)
