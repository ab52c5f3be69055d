"""Fences: the visibility rules a caller's searches carry *inside* their SQL.

A ``Fence`` (made by the security capability: city tenants, consent) answers, for an alias of the
``resource`` table and a resource type, an SQL condition that holds for the rows the caller may see
(None: every row of that type). The search layer adds it wherever a resource can reach an answer or
influence one: the matches (so ``total`` and paging count only visible rows), ``_include`` and
``_revinclude``, the targets of a chain and the sources of ``_has`` (so a hidden resource cannot be
used to probe), ``$everything`` and Bulk Data export. Search does not import the security capability:
it only calls the fence it is handed.

Export jobs run later, without the request: a resolver (``register_owner_fence``) gives the fence of
a job's owner from the owner's stored registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy import and_, false, select

from hutong.store.schema import resource as R


class Fence(Protocol):
    """What a caller may see, as SQL."""

    def visible(self, r, res_type: str | None):
        """Condition on ``r`` (an alias of ``resource``) true for visible rows; ``res_type`` None: rows of any
        type (the condition reads ``r.c.res_type``). None: no restriction."""


class AllOf:
    """Several fences at once (a row is visible when every fence lets it through)."""

    def __init__(self, fences):
        self.fences = [f for f in fences if f is not None]

    def visible(self, r, res_type: str | None):
        conds = [c for c in (f.visible(r, res_type) for f in self.fences) if c is not None]
        if not conds:
            return None
        return conds[0] if len(conds) == 1 else and_(*conds)


def combine(*fences) -> Fence | None:
    """One fence for all the given ones (None when none is given)."""
    found = [f for f in fences if f is not None]
    if not found:
        return None
    return found[0] if len(found) == 1 else AllOf(found)


def on_row(fence: Fence | None, res_type: str | None, r=R):
    """The fence's condition on the resource row ``r`` (None: unrestricted)."""
    return None if fence is None else fence.visible(r, res_type)


def visible_ids(fence: Fence | None, res_type: str, id_col):
    """Condition ``id_col IN (visible ids of res_type)`` (None: unrestricted)."""
    if fence is None:
        return None
    r = R.alias()
    cond = fence.visible(r, res_type)
    if cond is None:
        return None
    return id_col.in_(select(r.c.res_id).where(r.c.res_type == res_type, r.c.deleted == false(), cond))


def is_visible(conn, fence: Fence | None, res_type: str, res_id: str) -> bool:
    """Whether the current (or deleted) resource ``res_type/res_id`` is visible; unknown ids: True (the
    handler answers 404 itself)."""
    if fence is None:
        return True
    cond = fence.visible(R, res_type)
    if cond is None:
        return True
    row = conn.execute(select(R.c.res_id, cond.label("ok")).where(R.c.res_type == res_type, R.c.res_id == res_id)).first()
    return row is None or bool(row[1])


_owner_fence: Callable[[object, str], Fence | None] | None = None


def register_owner_fence(resolver: Callable[[object, str], Fence | None] | None) -> None:
    """Install the resolver ``(store, owner) -> Fence | None`` used by jobs that outlive their request."""
    global _owner_fence
    _owner_fence = resolver


def owner_fence(store, owner: str) -> Fence | None:
    """The fence of a job's owner (None: no resolver installed, or no restriction)."""
    return _owner_fence(store, owner) if _owner_fence is not None else None
