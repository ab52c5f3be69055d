"""The FHIR id pattern, and server-assigned resource ids: time-ordered UUIDs (RFC 9562 version 7).

Random (version 4) ids scatter every insert across the primary-key and ``res_id`` index
B-trees, so each new resource dirties its own page in each of them; ids that grow with time
append to the right-hand edge instead. On ingest this cuts the pages written per commit
several times over on both SQLite and PostgreSQL. Ids stay unguessable enough for FHIR
(74 random bits) but are not secrets: access control never relies on them.
"""

from __future__ import annotations

import os
import re
import threading
import time

#: FHIR R4 ``id``: 1-64 of ``[A-Za-z0-9-.]`` (the one pattern: routes, models and validation use it).
ID_PATTERN = r"[A-Za-z0-9\-\.]{1,64}"
ID_RE = re.compile(f"^{ID_PATTERN}$")


def is_id(value) -> bool:
    """Whether ``value`` is a valid FHIR id."""
    return isinstance(value, str) and ID_RE.match(value) is not None

_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """A new time-ordered UUID string: 48-bit Unix milliseconds, 12 bits of sub-millisecond time
    (monotonic within this process), version 7, variant, 62 random bits."""
    global _last
    with _lock:
        # 1/4096 ms steps; bumped past the last value so ids from this process never go backwards.
        tick = max(time.time_ns() * 4096 // 1_000_000, _last + 1)
        _last = tick
    ms, sub = divmod(tick, 4096)
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sub << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
