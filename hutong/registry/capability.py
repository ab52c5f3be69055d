"""The facility and practitioner registry as a capability of the node."""

from hutong.capability import Capability, Consumer, NavEntry
from hutong.registry import checks, cli, clinics, pages, routes, tables


def _startup(node) -> None:
    """A node started with the demo province also gets the real 2020 fever-clinic list (idempotent)."""
    if (node.settings.data_dir / "demo-province").is_dir():
        from hutong.registry.seed import import_fever_clinics

        import_fever_clinics(node.store)

CAPABILITY = Capability(
    name="registry",
    summary="机构/人员注册 registry (IHE mCSD): institutions, departments, practitioners; 发热门诊导航",
    routers=[routes.router, pages.router],
    consumers=[Consumer(clinics.CONSUMER, clinics.consume,
                        frozenset({"HealthcareService", "Location", "Organization"}))],
    cli=cli.register,
    startup=_startup,
    tables=tables.TABLES,
    write_checks=checks.WRITE_CHECKS,
    nav=[NavEntry("resident", "/fever-clinics", "发热门诊导航", order=60),
         NavEntry("public", "/fever-clinics", "发热门诊导航", order=60),
         NavEntry("console", "/console/registry/fever-clinics", "发热门诊状态", "registry.clinic.status", order=60)],
    permissions={
        "registry.read": "read the registry's institutions, departments and practitioners (API)",
        "registry.clinic.status": "set a fever clinic's status (an institution: only its own clinics)",
    },
)
