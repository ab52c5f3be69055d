"""The policy: which role may do what. One table a reviewer can read in one screen.

Permissions are the strings routes declare (``Depends(permit("card.verify"))``) and the route
table's FHIR rows carry (``Patient.r``: read, ``.s`` search, ``.c`` create, ``.u`` update, ``.d``
delete; ``*.s`` a search across types). A pattern ending in ``*`` covers every permission with that
prefix. A **client system** (SMART access token) holds what its scopes grant (``system/*.rs``,
``hutong/card.verify``; ``hutong/scopes.py``) and nothing more, whatever its role. A **person**
(signed-in session, or a configured trusted gateway) holds what their roles grant here.

Data-level rules (tenant, resident compartment, care relationship) are applied by
``hutong/security/scoping.py`` inside the queries; this table only says which actions a role may
attempt at all.
"""

from __future__ import annotations

from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.security.scopes import grants

# role            permissions (patterns)
POLICY: dict[str, tuple[str, ...]] = {
    "operator": (        # platform and city operators: run the platform, manage cards, review matches
        "*.r", "*.s", "*.c", "*.u", "*.d", "bundle",
        "web.console", "web.workstation", "card.*", "mpi.*", "bulk.export", "federation.*",
        "reportread.*", "triage.ask", "stats.*", "security.clients", "security.events",
        "registry.*", "epidemic.review", "epidemic.dashboard", "recognition.*", "quality.*",
        "consult.read", "consult.assign", "consult.coordinate", "consult.stats", "consult.admin",
    ),
    "clinician": (       # doctors: read and write clinical data, open the shared record, verify cards
        "*.r", "*.s", "*.c", "*.u", "bundle",
        "web.workstation", "share.record", "card.verify", "card.read", "mpi.read",
        "reportread.interpret", "reportread.critical.read", "reportread.critical.ack", "triage.ask",
        "security.break_glass", "registry.read", "registry.clinic.status", "epidemic.report",
        "recognition.hook", "recognition.feedback", "recognition.results",
        "consult.read", "consult.message", "consult.answer", "consult.prescribe", "consult.prescription.review",
        "consult.refer", "consult.telemed", "consult.schedule",
        # an institution's own statistical forms (the stats routes keep entry to the caller's institution)
        "stats.report.read", "stats.report.enter",
    ),
    "resident": (        # residents: their own record (compartment), card, services
        "*.r", "*.s", "web.portal", "card.qr", "card.read", "card.status", "triage.ask", "reportread.interpret",
        "security.my_access", "registry.read", "consult.ask", "consult.read", "consult.message",
    ),
    "statistician": (    # statistics offices: aggregates and counts, no personal record
        "web.console", "card.stats", "stats.*", "reportread.critical.read", "registry.read",
        "epidemic.dashboard", "quality.read", "quality.export", "consult.stats", "recognition.stats.read",
    ),
    "auditor": (         # auditors: the audit trail, break-the-glass review, security events
        "web.console", "audit.*", "security.events",
    ),
    "terminal": (        # kiosks and scanners at an institution
        "card.verify",
    ),
}

#: What a card's holder token alone allows (the card routes check the token against the card).
CARD_HOLDER = ("card.qr", "card.read", "card.status")

#: Permissions every authenticated caller holds (a Bundle's entries are each checked on their own).
ANY_CALLER = ("bundle", "security.whoami")


def _matches(pattern: str, permission: str) -> bool:
    if pattern == permission:
        return True
    if pattern.endswith("*") and permission.startswith(pattern[:-1]):
        return True
    # "*.r" covers every type's read
    if pattern.startswith("*.") and permission.endswith(pattern[1:]):
        return True
    return False


def role_allows(roles: frozenset[str], permission: str) -> bool:
    """Whether any of ``roles`` grants ``permission`` in the table."""
    return any(_matches(p, permission) for role in roles for p in POLICY.get(role, ()))


def allows(caller: Caller, permission: str) -> bool:
    """Whether ``caller`` may attempt an action needing ``permission``."""
    if caller.auth == "internal":
        return True
    if not caller.authenticated:
        return False
    if caller.auth == "card-holder":
        return permission in CARD_HOLDER
    if permission in ANY_CALLER:
        return True
    if caller.scopes is not None:
        return grants(caller.scopes, permission)
    if "system" in caller.roles:  # a gateway-declared system caller
        return True
    return role_allows(caller.roles, permission)


def challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="hutong"'}


def authorize(caller: Caller, permission: str, call=None) -> None:
    """Raise 401 (no credentials) or 403 (not allowed) as an OperationOutcome; return when allowed."""
    if permission == "public":
        return
    if allows(caller, permission):
        if call is not None:
            from hutong.security.scoping import narrow

            narrow(caller, permission, call)
        return
    if not caller.authenticated:
        raise FhirError(401, "login", "authentication required: send a Bearer access token "
                        "(SMART Backend Services, POST /auth/token) or sign in", headers=challenge())
    raise FhirError(403, "forbidden", f"the caller may not perform this action (needs {permission})")
