"""Fixtures for the assessment's tests."""

import pytest

from tests.quality.province import Clock


@pytest.fixture
def clock(monkeypatch):
    """Stamp the store's writes at a chosen day (``clock.at("2026-11-02")``)."""
    return Clock(monkeypatch)


@pytest.fixture
def assessed(store):
    """The ``store`` fixture with the assessment's consumer registered (the node does this at start)."""
    from hutong.quality import measure

    store.register_consumer(measure.CONSUMER.name, measure.CONSUMER.handler, measure.CONSUMER.types)
    return store
