"""Compartments (R4 CompartmentDefinitions) as conditions on the ``resource`` table."""

from __future__ import annotations

from sqlalchemy import false, or_, select, tuple_

from hutong.search.params import registry
from hutong.search.query import bad
from hutong.search.tables import sp_reference
from hutong.store.schema import resource as R


def resource_types(value: str | None) -> list[str] | None:
    """A ``_type`` parameter as a list of known resource types (None when absent)."""
    if not value:
        return None
    reg = registry()
    types = [t.strip() for t in value.split(",") if t.strip()]
    for t in types:
        if not reg.is_type(t):
            raise bad(f"_type: unknown resource type {t[:64]!r}", "_type")
    return types


def compartment_pairs(comp_type: str = "Patient") -> list[tuple[str, str]]:
    """``(resource type, reference parameter)`` pairs that put a resource into the compartment."""
    reg = registry()
    comp = reg.compartments[comp_type]
    return sorted({(t, c) for t, ps in comp.items() for p in ps for c in reg.store_codes(t, p)})


def compartment_types(comp_type: str = "Patient") -> list[str]:
    """The resource types that can be in the compartment (the compartment's own type included)."""
    return sorted(set(registry().compartments[comp_type]) | {comp_type})


def compartment_filter(comp_type: str, ids: list[str] | None, types: list[str] | None):
    """Condition on ``resource`` rows: in the compartment of ``comp_type`` ``ids`` (all when ``None``)."""
    t = sp_reference
    pairs = [pt for pt in compartment_pairs(comp_type) if types is None or pt[0] in types]
    conds = []
    if pairs:
        sub = select(t.c.res_type, t.c.res_id).where(
            t.c.target_type == comp_type, tuple_(t.c.res_type, t.c.param).in_(pairs)
        )
        if ids is not None:
            sub = sub.where(t.c.target_id.in_(ids))
        conds.append(tuple_(R.c.res_type, R.c.res_id).in_(sub))
    if types is None or comp_type in types:
        self_cond = R.c.res_type == comp_type
        if ids is not None:
            self_cond = self_cond & R.c.res_id.in_(ids)
        conds.append(self_cond)
    if not conds:
        return false()
    return or_(*conds)
