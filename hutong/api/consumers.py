"""Change-log consumers run inside a server process (one process per data folder runs them)."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from hutong.api.logs import log_background_failure
from hutong.store import Store

log = logging.getLogger("hutong.api")


class ConsumerWorker:
    """Runs the store's change-log consumers in a background thread, woken by commits and every second.

    With several worker processes only one runs them (the holder of an exclusive ``flock`` on
    ``consumers.lock`` in the data folder; the others retry every few seconds and take over if it
    exits): the outbox would keep them exactly-once anyway, but each runner would load every
    consumer's working set (the patient index's pinyin tables, for one) into its own memory.
    """

    RETRY_S = 5.0
    #: Events per consumer transaction, and the pause after each batch (as long as the batch took, at
    #: most 50 ms): the consumers share a web worker's GIL, and catching up in one long stretch would
    #: stall the requests of that process.
    BATCH = 100
    PAUSE_SHARE = 1.0
    MAX_PAUSE_S = 0.05

    def __init__(self, store: Store, lock_path: Path | None = None):
        self.store = store
        self.lock_path = lock_path
        self._lock_fd: int | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hutong-consumers", daemon=True)

    def start(self) -> None:
        self.store.add_commit_listener(self._wake.set)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def is_runner(self) -> bool:
        """True when this process runs the consumers (takes the lock if it is free)."""
        if self.lock_path is None or self._lock_fd is not None:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _pause(self, busy_s: float) -> None:
        self._stop.wait(min(self.MAX_PAUSE_S, busy_s * self.PAUSE_SHARE))

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.is_runner():
                self._stop.wait(self.RETRY_S)
                continue
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.store.run_consumers(batch_size=self.BATCH, between=self._pause)
            except Exception as exc:  # a failing consumer must not kill the thread; it retries next round
                log_background_failure(log, "change-log consumer failed", exc)
