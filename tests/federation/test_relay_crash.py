"""Killing the relay process and the broker mid-stream (SIGKILL, while a writer keeps committing):
the stream ends with every committed event exactly once, in commit order."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import orjson
import pytest

from hutong.federation import jetstream
from hutong.federation.follow import PerNodeOrder, stream_messages
from hutong.federation.relay import POSITION

pytestmark = pytest.mark.slow


class Writer(threading.Thread):
    """Commits small transactions of Patients until stopped."""

    def __init__(self, store):
        super().__init__(daemon=True)
        self.store = store
        self.stop = threading.Event()
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            with self.store.write("2201") as tx:
                for _ in range(5):
                    tx.create({"resourceType": "Patient", "gender": "other"})
                    self.n += 1
            time.sleep(0.005)


def _relay_process(store, url: str) -> subprocess.Popen:
    env = dict(os.environ, HUTONG_EVENTS_STREAM="T", PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, "-m", "hutong.cli", "federation", "run", "--data-dir", str(store.settings.data_dir),
            "--nats", url]
    if store.settings.database_url:
        args += ["--database-url", store.settings.database_url]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_position(store, at_least: int, relay: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while store.outbox.position(POSITION) < at_least:
        if time.time() > deadline or relay.poll() is not None:
            relay.kill()
            _, err = relay.communicate(timeout=10)
            pytest.fail(f"relay position {store.outbox.position(POSITION)} did not reach {at_least}; "
                        f"relay stderr: {err.decode(errors='replace')[-3000:]}")
        time.sleep(0.1)


def test_kill_relay_and_broker_mid_stream(store, nats_server):
    writer = Writer(store)
    writer.start()
    relay = _relay_process(store, nats_server.url)
    try:
        _wait_position(store, 50, relay)
        relay.send_signal(signal.SIGKILL)  # crash 1: the relay, mid-batch
        relay.wait(10)
        time.sleep(0.5)
        relay = _relay_process(store, nats_server.url)
        _wait_position(store, store.outbox.last_seq(), relay)
        nats_server.kill()  # crash 2: the broker
        time.sleep(1.0)
        nats_server.start()
        _wait_position(store, store.outbox.last_seq(), relay)
        relay.send_signal(signal.SIGKILL)  # crash 3: the relay again, and the broker with it
        nats_server.kill()
        time.sleep(0.5)
        nats_server.start()
        relay = _relay_process(store, nats_server.url)
        time.sleep(0.5)
    finally:
        writer.stop.set()
        writer.join(10)
    last = store.outbox.last_seq()
    _wait_position(store, last, relay)
    relay.send_signal(signal.SIGTERM)
    relay.wait(20)

    async def read():
        nc = await jetstream.connect(nats_server.url, name="reader")
        js = nc.jetstream()
        out = [orjson.loads(d) async for _, d in stream_messages(js, "hutong.change.>", stream="T", idle_s=1.0)]
        await nc.close()
        return out

    msgs = asyncio.run(read())
    committed = [e.seq for e in store.outbox.read(0, 1_000_000)]
    assert len(committed) == writer.n > 100
    order = PerNodeOrder()
    verdicts = [order.check(m["node"], m["seq"], m["prev"]) for m in msgs]
    assert [m["seq"] for m, v in zip(msgs, verdicts, strict=True) if v != "duplicate"] == committed
    assert "gap" not in verdicts
    # The restarts all came within the duplicate window: the broker itself stored nothing twice.
    assert verdicts.count("duplicate") == 0
