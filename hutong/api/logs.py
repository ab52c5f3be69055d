"""Logging of a node: one format, and repeated lines collapsed.

During a database outage every request fails the same way; logging each one wrote 112,668 lines
in 15 seconds. ``RepeatFilter`` lets the first of a kind through, holds back the same message
(logger, level and message template) for ``window_s`` seconds, and then reports how many were
held back.
"""

from __future__ import annotations

import logging
import threading
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RepeatFilter(logging.Filter):
    """Collapse repeats of the same log message within a time window."""

    def __init__(self, window_s: float = 10.0):
        super().__init__()
        self.window_s = window_s
        self._seen: dict[tuple, list] = {}  # key -> [window start, suppressed count]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return False
            held = entry[1] if entry is not None else 0
            self._seen[key] = [now, 0]
            if len(self._seen) > 10_000:
                self._seen.clear()
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.window_s:g} s)"
        return True


_configured = False


def configure_logging(level: int = logging.INFO) -> None:
    """Give the process one log format and collapse repeats (idempotent)."""
    global _configured
    if _configured:
        return
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=FORMAT)
    repeat = RepeatFilter()
    for handler in root.handlers:
        handler.addFilter(repeat)
    for name in ("uvicorn.error", "uvicorn"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(repeat)
    _configured = True


def log_background_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed round of a background loop (consumer, runner, delivery) that will retry.

    A database that is away or busy (a 503 ``FhirError``) is an expected, transient state: one
    line, no traceback, and ``RepeatFilter`` collapses the repeats. Anything else is a defect and
    is logged with its traceback."""
    from hutong.core.errors import FhirError

    if isinstance(exc, FhirError) and exc.status == 503:
        log.warning("%s: %s; will retry", what, exc.diagnostics)
    else:
        log.error("%s; will retry", what, exc_info=exc)
