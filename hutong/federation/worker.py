"""Where the federation's background tasks run: one thread with its own asyncio loop, in the one
process of the node that holds the leader lock.

The relay, the uplink to the province, the downlink from it, the province's JetStream ingest and
Subscription delivery each run as a task of that loop; a task that fails is logged and restarted
after a pause. Several worker processes (``hutong serve --workers N``), or a separate
``hutong federation run`` process, compete for the lock; the others wait and take over when the
holder exits. The lock is an ``flock`` beside a SQLite database, or a PostgreSQL session advisory
lock (which also covers processes on other hosts sharing one database).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

from hutong.federation.identity import node_id
from hutong.federation.outage import Outage, is_database_failure
from hutong.store import Store

log = logging.getLogger("hutong.federation")

Task = Callable[[asyncio.Event], Awaitable[None]]


class LeaderLock:
    """Held by at most one process per database at a time (``try_acquire`` / ``release``)."""

    def __init__(self, store: Store, data_dir: Path, name: str = "federation"):
        self.store = store
        self.path = Path(data_dir) / f"{name}.lock"
        # PostgreSQL advisory locks are per database, not per schema: nodes kept in schemas of one
        # database (tests, a small deployment) would share one lock. The node's id is per schema.
        self.key = int.from_bytes(hashlib.sha1(f"{name}:{node_id(store)}".encode()).digest()[:7], "big")
        self._fd: int | None = None
        self._conn = None

    def try_acquire(self) -> bool:
        if self._fd is not None or self._conn is not None:
            return True
        if self.store.is_postgres:
            conn = self.store.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None


class FederationWorker:
    """Runs ``tasks`` (each ``async task(stop)``) on a background loop while this process leads."""

    RETRY_S = 3.0

    def __init__(self, lock: LeaderLock | None, tasks: dict[str, Task]):
        self.lock = lock
        self.tasks = tasks
        self.leading = False
        self._stop_threading = threading.Event()
        self._thread = threading.Thread(target=self._main, name="hutong-federation", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop_threading.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        if self._thread.ident is not None:
            self._thread.join(timeout=timeout)

    def run_forever(self) -> None:
        """Run in the calling (main) thread (``hutong federation run``) until SIGTERM or SIGINT."""
        self._signals = True
        self._main()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if getattr(self, "_signals", False):
            import signal

            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._stop.set)
        if self._stop_threading.is_set():
            return
        while self.lock is not None and not self.lock.try_acquire():
            try:
                await asyncio.wait_for(self._stop.wait(), self.RETRY_S)
                return
            except TimeoutError:
                continue
        self.leading = True
        try:
            await asyncio.gather(*(self._guard(name, task) for name, task in self.tasks.items()))
        finally:
            self.leading = False
            if self.lock is not None:
                self.lock.release()

    async def _guard(self, name: str, task: Task) -> None:
        outage = Outage(log, f"federation task {name}: the database", "the task restarts when it is back")
        while not self._stop.is_set():
            try:
                await task(self._stop)
                return
            except Exception as exc:  # noqa: BLE001 - one failing task must not stop the others
                if is_database_failure(exc):  # once per outage, not per restart
                    outage.failed(exc)
                else:  # a defect: its traceback (RepeatFilter collapses repeats of it)
                    log.exception("federation task %s failed; restarting in %.0f s", name, self.RETRY_S)
                try:
                    await asyncio.wait_for(self._stop.wait(), self.RETRY_S)
                except TimeoutError:
                    pass
