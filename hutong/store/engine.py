"""Database engines for both backends and schema creation/migration."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, insert, select

from hutong.store import schema

#: Modules that add capability tables to ``schema.metadata``; imported when present.
CAPABILITY_TABLE_MODULES = [
    "hutong.search.tables",
    "hutong.mpi.tables",
    "hutong.card.tables",
]

#: Bump when the core tables change; ``migrate`` brings older databases forward.
CORE_SCHEMA_VERSION = 1


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` tuned for the store (SQLite WAL + explicit write locks, or PostgreSQL)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=8,
            max_overflow=16,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Let us emit BEGIN ourselves so writers take the lock up front (no upgrade deadlocks).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-65536")
            # Checkpoint every ~64 MB of WAL instead of 4 MB: index pages rewritten by many
            # transactions are then copied back once, not once per transaction.
            cur.execute("PRAGMA wal_autocheckpoint=16384")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        return engine
    # No pre-ping: it costs a round trip per checkout on the read path; stale connections are
    # recycled instead and a failed request is retried by the client.
    return create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_recycle=1800)


def load_capability_tables() -> None:
    """Import every capability's table module so its tables join ``schema.metadata``."""
    for name in CAPABILITY_TABLE_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            importlib.import_module(name)


def create_schema(engine: Engine) -> None:
    """Create missing tables and record schema versions (idempotent)."""
    load_capability_tables()
    schema.metadata.create_all(engine, checkfirst=True)
    with engine.connect() as conn:
        conn.info["write"] = True
        with conn.begin():
            have = conn.execute(
                select(schema.schema_version.c.version).where(schema.schema_version.c.component == "core")
            ).scalar()
            if have is None:
                conn.execute(insert(schema.schema_version).values(component="core", version=CORE_SCHEMA_VERSION))
            elif have > CORE_SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema version {have} is newer than this Hutong ({CORE_SCHEMA_VERSION})"
                )
