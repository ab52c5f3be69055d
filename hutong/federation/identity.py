"""This node's identity: a random id kept in its database (``federation_node``)."""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select

from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.federation.tables import federation_node
from hutong.store import Store

_CACHE: dict[int, str] = {}


def node_id(store: Store) -> str:
    """The node id of ``store``'s database, made on first use (the same in every process of the node)."""
    key = id(store)
    found = _CACHE.get(key)
    if found is not None:
        return found
    c = federation_node.c
    with store.read() as tx:
        found = tx.conn.execute(select(c.node_id).where(c.key == "node")).scalar()
    if found is None:
        try:
            with store.write() as tx:
                found = tx.conn.execute(select(c.node_id).where(c.key == "node")).scalar()
                if found is None:
                    found = uuid.uuid4().hex
                    tx.conn.execute(insert(federation_node).values(key="node", node_id=found, created_us=now_us()))
        except FhirError:  # another process created it first (the store answers a unique-key race with 409)
            with store.read() as tx:
                found = tx.conn.execute(select(c.node_id).where(c.key == "node")).scalar()
            if found is None:
                raise
    _CACHE[key] = found
    return found
