"""Fixtures for the triage tests: one service with the shipped model for the whole session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def triager():
    from hutong.triage.service import Triager

    return Triager.load()
