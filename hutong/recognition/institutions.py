"""Institutions as recognition needs them: level, city platform and medical consortia.

They are read from the store's ``Organization`` resources as the registry (``hutong/registry``)
reads them: the level is the ``institution-level`` coding of ``Organization.type``, the city the
``city-platform`` extension (else the division code's), medical consortia (医联体) the
``consortium-member`` extensions; ``OrganizationAffiliation`` memberships (mCSD's way) count too.
Rebuilt only when an Organization or affiliation changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import select

from hutong.recognition import vocab as V
from hutong.recognition.catalog import fingerprints
from hutong.registry import service as registry
from hutong.store.schema import resource


@dataclass(frozen=True)
class Institution:
    """One institution: id, name, level code (``3A`` …), city platform code, consortia ids."""

    id: str
    name: str
    level: str | None
    city: str | None
    consortia: frozenset[str]

    @property
    def tier(self) -> str:
        return V.LEVEL_TIER.get(self.level or "", "primary")


def institution_from(org: dict, consortia: frozenset[str] = frozenset()) -> Institution:
    """An ``Institution`` from an Organization resource, read the registry's way
    (``hutong.registry.service.institution_from``: level, city platform, consortium-member
    extensions), plus consortium memberships given as OrganizationAffiliations."""
    reg = registry.institution_from(org)
    city = reg.platform or (str(reg.division)[:4] if reg.division else None)
    return Institution(reg.id, reg.name, reg.level, city, frozenset(reg.consortia) | consortia)


def _memberships(tx) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rid in tx.search_ids("OrganizationAffiliation", [("role", f"{V.AFFILIATION_SYSTEM}|{V.CONSORTIUM_CODE}")]):
        s = tx.read("OrganizationAffiliation", rid)
        if s is None or s.deleted:
            continue
        aff = s.resource
        if aff.get("active") is False:
            continue
        consortium = ((aff.get("organization") or {}).get("reference") or "").removeprefix("Organization/")
        member = ((aff.get("participatingOrganization") or {}).get("reference") or "").removeprefix("Organization/")
        if consortium and member:
            out.setdefault(member, set()).add(consortium)
            out.setdefault(consortium, set()).add(consortium)
    return out


class Directory:
    """Every institution by id (built from one snapshot)."""

    def __init__(self, by_id: dict[str, Institution]):
        self.by_id = by_id

    def get(self, org_id: str | None) -> Institution | None:
        return self.by_id.get(org_id or "")


_CACHE: dict[int, tuple[tuple, Directory]] = {}


def current_directory(tx, f: dict[str, int | None] | None = None) -> Directory:
    """The institutions as stored now, rebuilt only when an Organization or affiliation changed
    (``f``: the ``fingerprints`` already read in this transaction)."""
    f = f or fingerprints(tx.conn)
    fp = (f["Organization"], f["OrganizationAffiliation"])
    hit = _CACHE.get(id(tx.store))
    if hit is not None and hit[0] == fp:
        return hit[1]
    members = _memberships(tx)
    by_id: dict[str, Institution] = {}
    r = resource.c
    for content, in tx.conn.execute(select(r.content).where(r.res_type == "Organization", r.deleted.is_(False))):
        org = orjson.loads(content)
        by_id[org["id"]] = institution_from(org, frozenset(members.get(org["id"], ())))
    d = Directory(by_id)
    _CACHE[id(tx.store)] = (fp, d)
    return d


def same_scope(scope: str, a: Institution, b: Institution) -> bool:
    """Whether a result from ``a`` is within ``scope`` of an order at ``b``."""
    if scope == "province":
        return True
    if scope == "city":
        return a.city is not None and a.city == b.city
    if scope == "consortium":
        return bool(a.consortia & b.consortia)
    return False
