"""The federation's background tasks log an outage once, not per retry, and say when it is over.

(The node's log-volume check, tests/reliability/test_outage.py, saw the relay logging every retry
while PostgreSQL was stopped.)"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from hutong.federation.localnats import free_port
from hutong.federation.outage import Outage, describe, is_database_failure
from hutong.federation.relay import Relay
from hutong.store.errors import unavailable


def _settings(store, nats_url: str):
    return dataclasses.replace(store.settings, nats_url=nats_url, events_stream="T")


def _federation_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hutong.federation"]


async def _run_for(relay: Relay, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


def test_database_outage_is_one_warning_and_one_recovery_line(store, nats_server, caplog, monkeypatch):
    with store.write("2201") as tx:
        tx.create({"resourceType": "Patient", "gender": "female"})
    relay = Relay(store, _settings(store, nats_server.url), poll_s=0.05)
    real_read = store.outbox.read
    state = {"down": True, "calls": 0}

    def read(after, limit):
        if state["down"]:
            state["calls"] += 1
            raise unavailable("the database is unreachable or the connection was lost: retry shortly")
        return real_read(after, limit)

    monkeypatch.setattr(store.outbox, "read", read)
    caplog.set_level(logging.INFO, logger="hutong.federation")

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(2.5)
        down_status = relay.status.as_dict()
        state["down"] = False
        for _ in range(100):
            await asyncio.sleep(0.1)
            if relay.status.published:
                break
        stop.set()
        await task
        return down_status

    down_status = asyncio.run(main())
    assert state["calls"] >= 4  # it kept retrying
    assert down_status["down_since_us"] > 0 and "database" in down_status["last_error"]
    assert down_status["connected"]  # a database outage does not drop the broker connection
    records = _federation_records(caplog)
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in records]
    assert "relay: the database unavailable" in warnings[0].getMessage()
    assert warnings[0].exc_info is None  # a known cause: one line, no traceback
    back = [r.getMessage() for r in records if "back after" in r.getMessage()]
    assert len(back) == 1 and "relay: the database" in back[0], [r.getMessage() for r in records]
    assert relay.status.published == 1 and relay.status.down_since_us == 0


def test_broker_outage_is_one_warning(store, caplog):
    relay = Relay(store, _settings(store, f"nats://127.0.0.1:{free_port()}"), ack_timeout=0.5)
    caplog.set_level(logging.INFO, logger="hutong.federation")
    asyncio.run(_run_for(relay, 2.5))
    records = _federation_records(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "relay: the NATS broker unavailable" in records[0].getMessage()
    assert relay.broker_outage.failures >= 3 and not relay.status.connected


def test_outage_counts_quietly_and_hides_statement_text(caplog):
    log = logging.getLogger("hutong.federation.test")
    caplog.set_level(logging.INFO, logger="hutong.federation.test")
    outage = Outage(log, "the thing", "work waits")
    leaky = RuntimeError("(psycopg.errors.X) boom [SQL: INSERT ...] [parameters: ('220402196203143172',)]")
    assert outage.failed(leaky) is True
    assert outage.failed(leaky) is False and outage.failed(unavailable("busy")) is False
    outage.ok()
    outage.ok()  # nothing to report twice
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "3 failed attempts" in lines[1]
    assert not any("2204021962" in line for line in lines)
    assert describe(leaky) == "RuntimeError"
    assert is_database_failure(unavailable("x")) and not is_database_failure(ConnectionRefusedError())
