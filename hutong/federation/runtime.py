"""Start and stop the federation's background work with the node (``Capability.startup``/``shutdown``)."""

from __future__ import annotations

import logging
from pathlib import Path

from hutong.federation import jetstream
from hutong.federation.config import FederationConfig
from hutong.federation.delivery import Delivery
from hutong.federation.downlink import Downlink
from hutong.federation.events import event_bus
from hutong.federation.relay import Relay
from hutong.federation.stream_ingest import StreamIngest
from hutong.federation.uplink import Uplink
from hutong.federation.worker import FederationWorker, LeaderLock

log = logging.getLogger("hutong.federation")


def tasks_for(node, config: FederationConfig) -> dict:
    """The background tasks this node runs (by role and settings)."""
    settings, store = node.settings, node.store
    tasks: dict = {}
    if jetstream.configured(settings.nats_url):
        relay = Relay(store, settings)
        store.add_commit_listener(relay.wake)
        node.services["federation.relay"] = relay
        tasks["relay"] = relay.run
    if config.role == "city":
        uplink = Uplink(store, settings, config)
        store.add_commit_listener(uplink.wake)
        node.services["federation.uplink"] = uplink
        tasks["uplink"] = uplink.run
        if config.province_url:
            downlink = Downlink(store, config)
            node.services["federation.downlink"] = downlink
            tasks["downlink"] = downlink.run
    delivery = Delivery(store, settings, bus=event_bus(node))
    node.services["federation.delivery"] = delivery
    tasks["subscriptions"] = delivery.run
    if config.role == "province" and config.shared_nats_url:
        follower = StreamIngest(store, settings, config)
        node.services["federation.stream_ingest"] = follower
        tasks["stream_ingest"] = follower.run
    return tasks


def startup(node) -> None:
    """Check the federation settings, say how events travel, and start the background tasks."""
    config = FederationConfig.from_settings(node.settings, node.store.known_types())
    node.services["federation.config"] = config
    if not node.settings.workers:
        return  # tests and tools: nothing runs in the background
    mode = event_bus(node).start()
    if mode != "nats":
        log.warning("events: no NATS broker at %r: in-process change-log consumers only; application events "
                    "cross this node's worker processes through the database", node.settings.nats_url)
    tasks = tasks_for(node, config)
    worker = FederationWorker(LeaderLock(node.store, Path(node.settings.data_dir)), tasks)
    node.services["federation.worker"] = worker
    worker.start()


def shutdown(node) -> None:
    worker = node.services.pop("federation.worker", None)
    if worker is not None:
        worker.stop()
    bus = node.services.get("events")
    if bus is not None:
        bus.close()
