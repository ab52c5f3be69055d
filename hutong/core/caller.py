"""Who is calling: the ``Caller`` every layer is handed (established in ``hutong/api/caller.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Roles known to the platform; pages, masking and the security policy use these words.
ROLES = frozenset({"system", "operator", "clinician", "resident", "statistician", "terminal", "auditor"})


@dataclass(frozen=True)
class Caller:
    """A client system or a person, with the institution, role(s) and tenant they act for.

    ``Caller()`` is the node itself (internal work: demo loading, consumers); a request's caller is
    only ever made by ``hutong.api.caller.authenticate``. ``scopes`` are the SMART scopes of an access
    token (None: not limited by scopes, e.g. a person signed in to the pages); ``patient`` is the
    Patient a resident is; ``auth`` says how the caller proved who they are."""

    client_id: str = "anonymous"
    institution: str | None = None  # Organization id of the calling institution
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"system"}))
    tenant: str | None = None
    scopes: frozenset[str] | None = None
    patient: str | None = None
    #: ``internal`` (the node itself), ``token`` (SMART access token), ``session`` (signed-in person),
    #: ``gateway`` (a configured trusted gateway), ``none`` (no credentials).
    auth: str = "internal"

    def has_role(self, role: str) -> bool:
        return role in self.roles or "system" in self.roles

    @property
    def authenticated(self) -> bool:
        return self.auth != "none"


#: The caller of a request that carried no valid credentials.
ANONYMOUS = Caller(client_id="anonymous", roles=frozenset(), auth="none")
