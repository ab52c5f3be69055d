"""Database engines for both backends and schema creation/migration."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from sqlalchemy import Engine, Table, create_engine, event, insert, select
from sqlalchemy.exc import DBAPIError

from hutong.store import schema

#: Bump when the core tables change; ``migrate`` brings older databases forward.
CORE_SCHEMA_VERSION = 1


def make_engine(url: str, *, echo: bool = False, lock_timeout_s: float = 10.0,
                statement_timeout_s: float = 60.0) -> Engine:
    """An engine for ``url`` tuned for the store (SQLite WAL + explicit write locks, or PostgreSQL).

    Waits are bounded: a writer waits at most ``lock_timeout_s`` for the write lock (SQLite's write
    gate, PostgreSQL's ``lock_timeout``) and a statement runs at most ``statement_timeout_s``
    (PostgreSQL); past that the request is answered 503 with Retry-After instead of queueing."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            check_sqlite_file(Path(path))
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": lock_timeout_s},
            pool_size=8,
            max_overflow=16,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # The driver issues no BEGIN of its own: the store emits BEGIN IMMEDIATE for writes (the lock
            # taken up front, no upgrade deadlocks) and BEGIN for snapshot reads (``begin_transaction``).
            # No "begin" connection event does it, because any connection event listener makes
            # SQLAlchemy dispatch events around every statement (about 90 µs each).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(lock_timeout_s * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA cache_size=-32768")
            # No checkpoint inside a commit: it would run while the committing writer holds the write
            # gate, and every other writer (and every health-card scan) would wait for a 64 MB copy.
            # The ``Checkpointer`` thread does it outside the gate instead.
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        if path and path != ":memory:":
            engine.hutong_write_gate = WriteGate(path + ".writelock", lock_timeout_s)
            engine.hutong_checkpointer = Checkpointer(path)
            engine.hutong_checkpointer.start()
        return engine
    # No pre-ping: it costs a round trip per checkout on the read path. A connection found dead is
    # invalidated with the rest of the pool; the request gets 503 and a read is retried once
    # (``hutong/fhir/rest.py:perform``). A checkout waits at most 5 s for a free connection.
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_recycle=1800, pool_timeout=5)

    @event.listens_for(engine, "connect")
    def _on_pg_connect(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {int(lock_timeout_s * 1000)}")
            cur.execute(f"SET statement_timeout = {int(statement_timeout_s * 1000)}")
            cur.execute(f"SET idle_in_transaction_session_timeout = {int(max(statement_timeout_s, 60) * 1000)}")
        dbapi_conn.commit()

    return engine


class Checkpointer:
    """Copies the SQLite write-ahead log back into the database from a thread of its own, outside
    the write gate: ``PRAGMA wal_checkpoint(PASSIVE)`` every half second (it never blocks readers or
    writers; what a long-running reader still needs is copied at a later round)."""

    INTERVAL_S = 0.5

    def __init__(self, path: str):
        self.path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hutong-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import sqlite3

        conn = None
        try:
            while not self._stop.wait(self.INTERVAL_S):
                try:
                    if conn is None:
                        if not os.path.exists(self.path):
                            continue
                        conn = sqlite3.connect(self.path, timeout=1, check_same_thread=False, isolation_level=None)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    if conn is not None:
                        conn.close()
                    conn = None  # the file went away or is busy: try again next round
        finally:
            if conn is not None:
                conn.close()


def dispose_engine(engine: Engine) -> None:
    """Close the engine's connections and stop its checkpoint thread."""
    checkpointer = getattr(engine, "hutong_checkpointer", None)
    if checkpointer is not None:
        checkpointer.stop()
    engine.dispose()


class StoreUnusable(RuntimeError):
    """The database exists but cannot be this node's store (empty, corrupted, someone else's)."""


RESTORE_HINT = ("Stop every Hutong process on it, move the file aside and restore the last backup "
                "(docs/operations.md, 'Restore'); do not start on an empty file in its place unless "
                "you mean to start over.")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that exists but is not a SQLite database (a zero-byte file, a truncated or
    overwritten one): SQLite would silently treat the first as a new, empty store."""
    if not path.exists():
        return
    size = path.stat().st_size
    if size == 0:
        raise StoreUnusable(f"{path} exists but is empty (0 bytes): not a Hutong database. {RESTORE_HINT}")
    with open(path, "rb") as fh:
        head = fh.read(100)
    if not head.startswith(_SQLITE_MAGIC):
        raise StoreUnusable(f"{path} is not a SQLite database (its header is wrong). {RESTORE_HINT}")
    page = int.from_bytes(head[16:18], "big") or 65536
    if size % page:
        raise StoreUnusable(f"{path} is truncated ({size:,} bytes is not a whole number of {page}-byte pages). "
                            f"{RESTORE_HINT}")


#: Up to this size the start-up check reads the whole database (``PRAGMA quick_check``); above it,
#: only the schema and both ends of the main tables (a full check of a large store takes minutes).
FULL_CHECK_BYTES = 256 * 1024 * 1024


def check_integrity(engine: Engine) -> None:
    """The start-up check of an existing SQLite store (see ``FULL_CHECK_BYTES``)."""
    if engine.dialect.name != "sqlite":
        return
    path = engine.url.database
    if not path or path == ":memory:" or not Path(path).exists():
        return
    import sqlite3

    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "schema_version" not in tables:
                raise StoreUnusable(f"{path} is a SQLite database but not a Hutong store "
                                    f"(it has tables {', '.join(sorted(tables)[:5])} and no schema_version). "
                                    f"{RESTORE_HINT}")
            if Path(path).stat().st_size <= FULL_CHECK_BYTES:
                problems = [r[0] for r in raw.execute("PRAGMA quick_check(5)")]
                if problems != ["ok"]:
                    raise StoreUnusable(f"{path} is damaged: {'; '.join(problems)[:500]}. {RESTORE_HINT}")
            else:
                for table in ("resource", "resource_version", "change_event"):
                    if table in tables:
                        raw.execute(f"SELECT * FROM {table} ORDER BY rowid LIMIT 1").fetchall()
                        raw.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 1").fetchall()
    except (sqlite3.DatabaseError, DBAPIError) as exc:
        raise StoreUnusable(f"{path} cannot be read as a database ({getattr(exc, 'orig', exc)}). "
                            f"{RESTORE_HINT}") from exc


class GateTimeout(Exception):
    """The write lock was not free within the configured time (answered 503)."""

    def __init__(self, seconds: float):
        super().__init__(f"the write lock was not free within {seconds:g} s")


class WriteGate:
    """Queue SQLite writers (threads and worker processes) on an exclusive ``flock`` of a lock
    file beside the database.

    SQLite lets one writer in at a time; the others wait in its busy handler, which polls with
    sleeps of up to 100 ms, so a writer often sleeps long after the lock was released. Waiting
    in the kernel instead wakes the next writer as soon as the previous one commits. SQLite's
    own locking still guards the data; this only decides who waits how.
    """

    def __init__(self, path: str, timeout_s: float = 10.0):
        self.path = path
        self.timeout_s = timeout_s
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self):
        deadline = time.monotonic() + self.timeout_s
        if not self._lock.acquire(timeout=self.timeout_s):
            raise GateTimeout(self.timeout_s)
        try:
            if self._depth == 0:
                if self._fd is None or self._pid != os.getpid():  # a forked child needs its own file
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                self._flock(deadline)
            self._depth += 1
        except BaseException:
            self._lock.release()
            raise
        return self

    def _flock(self, deadline: float) -> None:
        """Take the file lock by the deadline: blocking flock cannot time out, so after a first
        try the wait polls in steps growing from 0.2 to 2 ms (writers hold it for milliseconds)."""
        step = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise GateTimeout(self.timeout_s) from None
                time.sleep(step)
                step = min(step * 1.5, 0.002)

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()


def begin_transaction(conn, write: bool) -> None:
    """Start the database transaction of ``conn`` (inside ``conn.begin()``): SQLite's driver runs in
    autocommit mode, so the store says BEGIN itself; PostgreSQL's driver begins implicitly.

    Code outside the store must use ``Store.write()``/``Store.read()``: a bare ``engine.connect()``
    with ``conn.begin()`` is not a transaction on SQLite."""
    if conn.dialect.name == "sqlite":
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def write_gate(engine: Engine):
    """The engine's ``WriteGate`` (SQLite files), or a no-op context (PostgreSQL, in-memory)."""
    gate = getattr(engine, "hutong_write_gate", None)
    return gate if gate is not None else nullcontext()


def create_schema(engine: Engine, tables: Sequence[Table] = ()) -> None:
    """Create the core tables and ``tables`` (the capabilities') where missing, and record schema
    versions (idempotent)."""
    wanted = list(schema.CORE_TABLES) + [t for t in tables if t not in schema.CORE_TABLES]
    # Under the write gate: worker processes starting together on a new SQLite file would otherwise
    # race on the journal-mode switch and the first CREATE TABLEs ("database is locked").
    with write_gate(engine):
        check_integrity(engine)
        _create(engine, wanted)


def _create(engine: Engine, wanted: list[Table]) -> None:
    schema.metadata.create_all(engine, tables=wanted, checkfirst=True)
    with engine.connect() as conn:
        with conn.begin():
            begin_transaction(conn, write=True)
            have = conn.execute(
                select(schema.schema_version.c.version).where(schema.schema_version.c.component == "core")
            ).scalar()
            if have is None:
                conn.execute(insert(schema.schema_version).values(component="core", version=CORE_SCHEMA_VERSION))
            elif have > CORE_SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema version {have} is newer than this Hutong ({CORE_SCHEMA_VERSION})"
                )
