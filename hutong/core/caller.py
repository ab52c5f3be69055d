"""Who is calling: the ``Caller`` every layer is handed (established in ``hutong/api/caller.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Roles known to the platform; pages, masking and the security policy use these words.
ROLES = frozenset({"system", "operator", "clinician", "resident", "statistician", "terminal"})


@dataclass(frozen=True)
class Caller:
    """A client system or a person, with the institution, role(s) and tenant they act for."""

    client_id: str = "anonymous"
    institution: str | None = None  # Organization id of the calling institution
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"system"}))
    tenant: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles or "system" in self.roles
