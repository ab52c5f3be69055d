"""Reading a node's events back from JetStream, exactly once: resume by stream sequence, drop
repeats by (node, seq), notice gaps by ``prev``.

A follower keeps two positions in its own database, committed with whatever it does with the
events: the stream sequence it has read through (to resume the broker's delivery there) and, per
origin node, the last change ``seq`` it accepted (to drop a repeat the broker let through, when
the relay re-published after more than the duplicate window).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from nats.js import api

Verdict = Literal["new", "duplicate", "gap"]


class PerNodeOrder:
    """Consumer-side de-duplication and gap detection by (node, seq, prev)."""

    def __init__(self, positions: dict[str, int] | None = None):
        self.positions: dict[str, int] = dict(positions or {})

    def check(self, node: str, seq: int, prev: int) -> Verdict:
        """``duplicate`` (seen already), ``gap`` (new, but events between were never seen) or ``new``;
        ``new`` and ``gap`` move the node's position to ``seq``."""
        last = self.positions.get(node, 0)
        if seq <= last:
            return "duplicate"
        self.positions[node] = seq
        return "gap" if prev > last else "new"


async def stream_messages(js, subject: str, start_seq: int = 1, *, idle_s: float = 1.0,
                          stream: str | None = None) -> AsyncIterator[tuple[int, bytes]]:
    """``(stream_seq, data)`` of the stream's messages on ``subject`` from ``start_seq`` on, in order,
    until none arrives for ``idle_s`` (an ordered consumer: the client re-creates it on any gap)."""
    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, start_seq))
    sub = await js.subscribe(subject, ordered_consumer=True, config=config, stream=stream)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_s)
            except TimeoutError:
                return
            yield msg.metadata.sequence.stream, msg.data
    finally:
        await sub.unsubscribe()
