"""Connecting to NATS and keeping the JetStream stream as the settings describe it."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.js import api

from hutong.config import Settings

log = logging.getLogger("hutong.federation")


def configured(url: str | None) -> str:
    """The broker URL a setting names, or "" when it names none (empty, ``none`` or ``off``)."""
    url = (url or "").strip()
    return "" if url.lower() in ("", "none", "off") else url


def servers(url: str) -> list[str]:
    return [u.strip() for u in url.split(",") if u.strip()]


async def connect(url: str, *, name: str, connect_timeout: float = 2.0, reconnect: bool = True, **kw):
    """A NATS connection to ``url`` (comma-separated cluster URLs). Raises when none answers.

    ``reconnect``: the client reconnects by itself after a broker outage (the relay relies on that
    and on its recorded position, not on the client's buffer, for what was not acknowledged)."""
    async def _quiet(_exc):  # the relay logs outages itself, once, not every retry
        return None

    # Without reconnecting, the first connection must fail fast when no broker answers (the caller
    # retries with its own backoff and logs the outage). nats-py loops over refused servers for ever
    # when max_reconnect_attempts is 0, so allow one attempt per server, and bound the whole call.
    pool = servers(url)
    attempt = nats.connect(
        servers=pool, name=name, connect_timeout=connect_timeout, allow_reconnect=reconnect,
        max_reconnect_attempts=-1 if reconnect else 1, reconnect_time_wait=0.5, error_cb=_quiet,
        # The client buffers nothing while disconnected: what it did not send is re-sent from the outbox.
        pending_size=0 if not reconnect else 2 * 1024 * 1024, **kw)
    # With reconnecting, only later reconnections are unbounded: the first must fail within the
    # bound too (nats-py would otherwise retry a refused first connection for ever).
    return await asyncio.wait_for(attempt, (connect_timeout + 1.0) * len(pool))


def stream_config(settings: Settings, name: str | None = None, subjects: list[str] | None = None) -> api.StreamConfig:
    """The stream of this node's events: limits and retention from the settings (docs/federation.md)."""
    prefix = settings.events_subject_prefix
    return api.StreamConfig(
        name=name or settings.events_stream,
        subjects=subjects or [f"{prefix}.change.>", f"{prefix}.app.>", f"{prefix}.federation.>", f"{prefix}.node.>"],
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,  # a full stream drops its oldest messages, never refuses a publish
        storage=api.StorageType.FILE,
        max_age=float(settings.events_max_age_hours * 3600),
        max_bytes=settings.events_max_bytes,
        max_msgs=settings.events_max_msgs,
        duplicate_window=float(settings.events_duplicate_window_s),
        num_replicas=settings.events_replicas,
    )


async def ensure_stream(js, config: api.StreamConfig) -> api.StreamInfo:
    """Create the stream, or bring an existing one's limits in line with ``config``."""
    try:
        info = await js.stream_info(config.name)
    except nats.js.errors.NotFoundError:
        return await js.add_stream(config)
    have = info.config
    wanted = (config.max_age, config.max_bytes, config.max_msgs, config.duplicate_window, sorted(config.subjects or []))
    current = (have.max_age, have.max_bytes, have.max_msgs, have.duplicate_window, sorted(have.subjects or []))
    if wanted != current:
        log.info("updating JetStream stream %s limits", config.name)
        return await js.update_stream(config)
    return info
