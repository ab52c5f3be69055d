"""Institutions as recognition needs them: level, city platform and medical consortia.

They are read from the store's ``Organization`` resources (what the registry keeps) and
``OrganizationAffiliation`` memberships of medical consortia (医联体), and rebuilt only when either
type changed. The level is the ``institution-level`` coding of ``Organization.type``; the city is
the ``city-platform`` extension (else the first four digits of the division code).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import select

from hutong.recognition import vocab as V
from hutong.recognition.catalog import type_fingerprint
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
    """An ``Institution`` from an Organization resource."""
    level = next((c.get("code") for t in org.get("type") or [] for c in t.get("coding") or []
                  if c.get("system") == V.LEVEL_SYSTEM), None)
    city = None
    division = None
    for e in org.get("extension") or []:
        if e.get("url") == V.PLATFORM_EXT:
            city = (e.get("valueCoding") or {}).get("code")
        elif e.get("url") == V.DIVISION_EXT:
            division = e.get("valueCode")
    if city is None and division:
        city = str(division)[:4]
    return Institution(org.get("id") or "", org.get("name") or "", level, city, consortia)


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


def current_directory(tx) -> Directory:
    """The institutions as stored now, rebuilt only when an Organization or affiliation changed."""
    fp = type_fingerprint(tx.conn, "Organization") + type_fingerprint(tx.conn, "OrganizationAffiliation")
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
