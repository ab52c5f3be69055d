"""The relay: every committed change of the outbox reaches JetStream once, in commit order, and
after a crash or a broker outage resumes from its recorded position without loss or visible repeats."""

from __future__ import annotations

import asyncio
import dataclasses

import orjson
import pytest

from hutong.federation import jetstream
from hutong.federation.follow import PerNodeOrder, stream_messages
from hutong.federation.identity import node_id
from hutong.federation.relay import POSITION, Relay


def _patients(store, n: int, start: int = 0) -> None:
    with store.write("2201") as tx:
        for i in range(start, start + n):
            tx.create({"resourceType": "Patient", "id": f"p{i}", "gender": "female"}, res_id=f"p{i}")


def _settings(store, nats_url: str, **kw):
    return dataclasses.replace(store.settings, nats_url=nats_url, events_stream="T", **kw)


async def _drain(relay: Relay) -> int:
    total = 0
    while True:
        n = await relay.publish_batch()
        total += n
        if n == 0:
            return total


async def _read_all(url: str, stream: str = "T") -> list[tuple[int, dict]]:
    nc = await jetstream.connect(url, name="test-reader")
    try:
        js = nc.jetstream()
        return [(s, orjson.loads(d)) async for s, d in stream_messages(js, "hutong.change.>", stream=stream,
                                                                        idle_s=0.5)]
    finally:
        await nc.close()


def test_every_event_once_in_commit_order(store, nats_server):
    _patients(store, 120)
    with store.write("2202") as tx:  # updates and a deletion of another tenant in between
        tx.update("Patient", "p3", {"resourceType": "Patient", "gender": "male"})
        tx.delete("Patient", "p4")
    _patients(store, 30, start=120)
    relay = Relay(store, _settings(store, nats_server.url), batch=50)

    async def main():
        published = await _drain(relay)
        await relay._disconnect()
        return published, await _read_all(nats_server.url)

    published, msgs = asyncio.run(main())
    events = store.outbox.read(0, 10_000)
    assert published == len(events) == 152
    assert [m["seq"] for _, m in msgs] == [e.seq for e in events]
    assert {m["node"] for _, m in msgs} == {node_id(store)}
    first = msgs[0][1]
    assert first["prev"] == 0 and all(b["prev"] == a["seq"] for (_, a), (_, b) in zip(msgs, msgs[1:], strict=False))
    deleted = next(m for _, m in msgs if m["op"] == "delete")
    assert (deleted["tenant"], deleted["type"], deleted["id"], deleted["version"]) == ("2202", "Patient", "p4", 2)
    assert store.outbox.position(POSITION) == events[-1].seq


def test_subjects_by_tenant_and_type(store, nats_server):
    _patients(store, 3)
    with store.write("2203") as tx:
        tx.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})

    async def main():
        relay = Relay(store, _settings(store, nats_server.url))
        await _drain(relay)
        await relay._disconnect()
        nc = await jetstream.connect(nats_server.url, name="t")
        js = nc.jetstream()
        obs = [orjson.loads(d) async for _, d in stream_messages(js, "hutong.change.2203.>", stream="T", idle_s=0.5)]
        pats = [orjson.loads(d) async for _, d in stream_messages(js, "hutong.change.*.Patient", stream="T", idle_s=0.5)]
        await nc.close()
        return obs, pats

    obs, pats = asyncio.run(main())
    assert [(m["tenant"], m["type"]) for m in obs] == [("2203", "Observation")]
    assert len(pats) == 3 and all(m["tenant"] == "2201" for m in pats)


def test_crash_before_recording_is_deduplicated_by_the_broker(store, nats_server):
    """A relay that published but died before recording its position publishes again: within the
    duplicate window the broker acknowledges the repeats as duplicates and stores nothing twice."""
    _patients(store, 40)
    settings = _settings(store, nats_server.url)

    async def main():
        relay = Relay(store, settings)
        await _drain(relay)
        await relay._disconnect()
        store.outbox.rewind(POSITION, 0)  # the crash: published, position never recorded
        again = Relay(store, settings)
        await _drain(again)
        await again._disconnect()
        return again.status, await _read_all(nats_server.url)

    status, msgs = asyncio.run(main())
    assert status.published == 40 and status.duplicates == 40
    assert len(msgs) == 40


def test_repeats_after_the_window_are_dropped_by_consumers(store, nats_server):
    """Past the broker's duplicate window a repeat is stored again; the consumer's per-node position
    drops it, so the consumer still sees every event exactly once and in order."""
    _patients(store, 25)
    settings = _settings(store, nats_server.url, events_duplicate_window_s=1)

    async def main():
        relay = Relay(store, settings)
        await _drain(relay)
        await relay._disconnect()
        store.outbox.rewind(POSITION, 10)  # crashed long ago after publishing 11..25
        await asyncio.sleep(1.6)  # the window has passed
        _patients(store, 5, start=25)
        again = Relay(store, settings)
        await _drain(again)
        await again._disconnect()
        return await _read_all(nats_server.url)

    msgs = asyncio.run(main())
    assert len(msgs) == 25 + 15 + 5  # the broker stored the late repeats
    order = PerNodeOrder()
    seen = [m["seq"] for _, m in msgs if order.check(m["node"], m["seq"], m["prev"]) != "duplicate"]
    assert seen == [e.seq for e in store.outbox.read(0, 1000)]
    verdicts = [PerNodeOrder().check("n", 5, 4), PerNodeOrder({"n": 2}).check("n", 5, 4)]
    assert verdicts == ["gap", "gap"] and PerNodeOrder({"n": 4}).check("n", 5, 4) == "new"


def test_broker_outage_queues_in_the_outbox(store, nats_server):
    """With the broker down the relay publishes nothing and loses nothing; when it is back the
    relay resumes where it was."""
    settings = _settings(store, nats_server.url)
    _patients(store, 20)

    async def main():
        stop = asyncio.Event()
        relay = Relay(store, settings, poll_s=0.05)
        task = asyncio.create_task(relay.run(stop))
        await _until(lambda: relay.status.position == store.outbox.last_seq())
        nats_server.kill()
        _patients(store, 30, start=20)
        await _until(lambda: relay.status.down_since_us > 0)
        assert relay.status.position < store.outbox.last_seq()
        nats_server.start()
        await _until(lambda: relay.status.position == store.outbox.last_seq(), 30)
        stop.set()
        await task
        return await _read_all(nats_server.url)

    msgs = asyncio.run(main())
    assert [m["seq"] for _, m in msgs] == [e.seq for e in store.outbox.read(0, 1000)]


async def _until(check, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.05)
