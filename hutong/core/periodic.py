"""A piece of background work run every few seconds in a daemon thread (escalation checks and the like)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Periodic:
    """Runs ``work()`` every ``interval`` seconds until ``stop()``; a failing round is logged and the
    next round retries."""

    def __init__(self, name: str, interval: float, work: Callable[[], object], log: logging.Logger, what: str):
        self.interval, self._work, self._log, self._what = interval, work, log, what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._work()
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
                self._log.exception("%s failed", self._what)
