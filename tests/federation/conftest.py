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
