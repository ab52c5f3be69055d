"""Fixtures of the federation tests: a private NATS broker, settings that point at it."""

from __future__ import annotations

import pytest

from hutong.federation.localnats import NATS_SERVER, PrivateNats


@pytest.fixture
def nats_server(tmp_path):
    """A private nats-server with JetStream on a free port (skips when nats-server is not installed)."""
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed: the JetStream tests need it (apt-get install nats-server)")
    server = PrivateNats(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _cluster_credentials(monkeypatch):
    """httpx requests of a test to a local cluster's node processes carry the cluster's gateway key."""
    from hutong.federation import localcluster
    from tests.conftest import forget_credentials, register_gateway

    start, stop = localcluster.NodeProcess.start, localcluster.NodeProcess.stop

    def started(self):
        out = start(self)
        register_gateway(self.url, localcluster.CLUSTER_GATEWAY_KEY)
        return out

    def stopped(self):
        forget_credentials(self.url)
        return stop(self)

    monkeypatch.setattr(localcluster.NodeProcess, "start", started)
    monkeypatch.setattr(localcluster.NodeProcess, "stop", stopped)
