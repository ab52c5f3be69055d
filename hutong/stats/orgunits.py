"""The organisation-unit hierarchy for reporting: province → city → county → institution.

An institution is an ``Organization`` of the registry; its place comes from its division code
(GB/T 2260: the ``division-code`` extension on the Organization or its address, as the registry
and the simulator write it, else the ``partOf`` parent's), reduced to province (2 digits), city (4)
and county (6). Units above institutions are named by their division codes (``22``, ``2201``,
``220102``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hutong.china import divisions

DIVISION_EXTENSION_SUFFIX = "/StructureDefinition/division-code"


@dataclass(frozen=True)
class Place:
    org: str
    name: str
    province: str
    city: str
    county: str


def _division_code(org: dict) -> str | None:
    for ext in org.get("extension", []) or []:
        if str(ext.get("url", "")).endswith(DIVISION_EXTENSION_SUFFIX) and isinstance(ext.get("valueCode"), str):
            return ext["valueCode"]
    for addr in org.get("address", []) or []:
        for ext in addr.get("extension", []) or []:
            if str(ext.get("url", "")).endswith(DIVISION_EXTENSION_SUFFIX) and isinstance(ext.get("valueCode"), str):
                return ext["valueCode"]
    return None


def place_of(tx, org_id: str, _depth: int = 0) -> Place | None:
    """Where institution ``org_id`` sits (None when there is no such Organization)."""
    stored = tx.read("Organization", org_id)
    if stored is None or stored.deleted:
        return None
    org = stored.resource
    code = _division_code(org)
    if code is None and _depth < 5:
        parent = (org.get("partOf") or {}).get("reference", "")
        if parent.startswith("Organization/"):
            up = place_of(tx, parent.split("/", 1)[1], _depth + 1)
            if up is not None:
                return Place(org_id, org.get("name", org_id), up.province, up.city, up.county)
    code = (code or "").strip()
    digits = code if code.isdigit() else ""
    return Place(org_id, org.get("name", org_id), digits[:2], digits[:4] if len(digits) >= 4 else "",
                 digits[:6] if len(digits) >= 6 else "")


def unit_level(unit: str | None) -> str:
    """``province``, ``city``, ``county`` or ``institution`` for a unit code (None: the province)."""
    if not unit:
        return "province"
    if unit.isdigit() and len(unit) in (2, 4, 6):
        return {2: "province", 4: "city", 6: "county"}[len(unit)]
    return "institution"


def unit_name(unit: str) -> str:
    """A division's short name (``长春市``), or the code itself."""
    return divisions.division_name(unit) or divisions.division_name(unit.ljust(6, "0")) or unit
