"""Node secrets kept in the database (``web_secret``), so every worker and every node sharing the
database signs and checks with the same key. ``HUTONG_WEB_SECRET`` overrides the stored root."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

from sqlalchemy import insert, select

from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.web.tables import web_secret

_cache: dict[tuple[int, str], bytes] = {}
_lock = threading.Lock()


def node_secret(store, name: str) -> bytes:
    """The 32-byte secret called ``name`` (created at first use; the same in every worker)."""
    key = (id(store), name)
    got = _cache.get(key)
    if got is not None:
        return got
    configured = getattr(store.settings, "web_secret", "") or ""
    if configured:
        got = hmac.new(configured.encode(), f"hutong-web-{name}".encode(), hashlib.sha256).digest()
    else:
        got = _stored(store, name)
    with _lock:
        _cache[key] = got
    return got


def _stored(store, name: str) -> bytes:
    with store.read() as tx:
        row = tx.conn.execute(select(web_secret.c.value).where(web_secret.c.name == name)).scalar()
    if row is None:
        try:
            with store.write() as tx:
                tx.conn.execute(insert(web_secret).values(name=name, value=os.urandom(32).hex(), created_us=now_us()))
        except FhirError:
            pass  # another worker created it first: use theirs
        with store.read() as tx:
            row = tx.conn.execute(select(web_secret.c.value).where(web_secret.c.name == name)).scalar()
    return bytes.fromhex(row)
