"""The application event API: publish in one process, receive in another (with NATS, and without it
through the database); committed changes as live events; bad subjects refused."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys

import pytest

from hutong.core.errors import FhirError
from hutong.federation.events import EventBus, subject_matches

_PUBLISH = """
import sys
from hutong.api.app import node_store
from hutong.config import load_settings
from hutong.federation.events import EventBus
settings = load_settings(data_dir=sys.argv[1], database_url=sys.argv[2], nats_url=sys.argv[3], events_stream="T")
store = node_store(settings)
bus = EventBus(store, settings)
for i in range(3):
    bus.publish_sync("consult.room.r1", {"n": i, "text": "您好"})
bus.publish_sync("consult.other.r2", {"n": 99})
bus.close()
store.close()
"""


def _publish_from_another_process(store, nats_url: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", _PUBLISH, str(store.settings.data_dir), store.settings.database_url or "",
                    nats_url], env=env, check=True, timeout=60)


async def _collect(bus: EventBus, pattern: str, action, want: int, timeout: float = 20) -> list:
    got: list = []
    done = asyncio.Event()

    async def handler(event):
        got.append(event)
        if len(got) >= want:
            done.set()

    sub = await bus.subscribe(pattern, handler)
    await asyncio.to_thread(action)
    await asyncio.wait_for(done.wait(), timeout)
    await asyncio.sleep(0.3)  # nothing more should arrive
    await sub.unsubscribe()
    return got


@pytest.mark.parametrize("with_nats", [False, True], ids=["database", "nats"])
def test_events_cross_processes(store, request, with_nats):
    url = request.getfixturevalue("nats_server").url if with_nats else ""
    settings = dataclasses.replace(store.settings, nats_url=url, events_stream="T")
    bus = EventBus(store, settings)
    try:
        got = asyncio.run(_collect(bus, "consult.room.*", lambda: _publish_from_another_process(store, url), 3))
        assert bus.mode == ("nats" if with_nats else "database")
    finally:
        bus.close()
    assert [e.payload for e in got] == [{"n": 0, "text": "您好"}, {"n": 1, "text": "您好"}, {"n": 2, "text": "您好"}]
    assert all(e.subject == "consult.room.r1" for e in got) and len({e.id for e in got}) == 3


def test_events_across_nodes_on_one_broker(tmp_path, nats_server):
    """Two nodes (own databases) on one broker: an event published on one reaches the other."""
    from hutong.api.app import node_store
    from hutong.config import load_settings

    stores = [node_store(load_settings(data_dir=tmp_path / n, nats_url=nats_server.url, events_stream="T",
                                       workers=False)) for n in ("a", "b")]
    buses = [EventBus(s, s.settings) for s in stores]
    try:
        got = asyncio.run(_collect(buses[1], "consult.>", lambda: buses[0].publish_sync("consult.x.y", {"k": 1}), 1))
        assert [(e.subject, e.payload) for e in got] == [("consult.x.y", {"k": 1})]
        assert got[0].node != buses[1]._event("a", {}).node  # it came from the other node
    finally:
        for b in buses:
            b.close()
        for s in stores:
            s.close()


def test_change_events_without_a_broker(store):
    settings = dataclasses.replace(store.settings, nats_url="")
    bus = EventBus(store, settings)

    def write():
        with store.write("2201") as tx:
            tx.create({"resourceType": "Communication", "status": "completed"})
            tx.create({"resourceType": "Patient"})

    async def main():
        got, done = [], asyncio.Event()

        async def handler(event):
            got.append(event)
            done.set()

        sub = await bus.subscribe_changes(handler, res_type="Communication")
        await asyncio.to_thread(write)
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(0.3)
        await sub.unsubscribe()
        return got

    try:
        got = asyncio.run(main())
    finally:
        bus.close()
    assert [(e.payload["type"], e.payload["op"], e.payload["tenant"]) for e in got] == [
        ("Communication", "create", "2201")]


def test_bad_subjects_and_payloads_are_refused(store):
    bus = EventBus(store, dataclasses.replace(store.settings, nats_url=""))
    try:
        for bad in ("", "a..b", "a b", "a.>.b", "x" * 201):
            with pytest.raises(FhirError) as err:
                bus.publish_sync(bad, {})
            assert err.value.status == 400
        with pytest.raises(FhirError):
            bus.publish_sync("a.b", ["not", "an", "object"])
        with pytest.raises(FhirError):
            bus.publish_sync("a.b", {"big": "x" * 300_000})
    finally:
        bus.close()


def test_subject_matching():
    assert subject_matches("a.*", "a.b") and not subject_matches("a.*", "a.b.c")
    assert subject_matches("a.>", "a.b.c") and not subject_matches("a.>", "a")
    assert subject_matches("a.b", "a.b") and not subject_matches("a.b", "a.c")
