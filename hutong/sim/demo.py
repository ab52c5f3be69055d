"""The small demo province loaded at first start (``hutong serve --demo``; ``make run`` uses it)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from hutong.store import Store, schema

log = logging.getLogger("hutong.demo")


def store_is_empty(store: Store) -> bool:
    with store.read() as tx:
        return tx.conn.execute(select(schema.resource.c.res_id).limit(1)).first() is None


def ensure_demo_loaded(store: Store, seed: int = 7) -> bool:
    """Generate and load the demo province into an empty store; returns True when it loaded."""
    if not store_is_empty(store):
        return False
    from hutong.bulk.load import import_paths
    from hutong.sim import generate_demo

    out = store.settings.data_dir / "demo-province"
    log.info("generating the demo province into %s", out)
    generate_demo(out, seed=seed)
    summary = import_paths(store, [out], progress=True)
    log.info("demo province loaded: %s resources", summary.resources)
    store.run_consumers()
    return True
