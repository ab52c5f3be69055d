"""Shared fixtures: a fresh store on each backend, and a live HTTP server on it.

Every storage test runs on SQLite and on PostgreSQL. PostgreSQL comes from
``HUTONG_TEST_PG_URL`` (default ``postgresql://127.0.0.1:5432/test``); each test gets its own
schema, dropped afterwards. Set ``HUTONG_TEST_SKIP_PG=1`` only on a machine without PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hutong.config import load_settings

PG_URL = os.environ.get("HUTONG_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
SKIP_PG = os.environ.get("HUTONG_TEST_SKIP_PG") == "1"
BACKENDS = ["sqlite"] if SKIP_PG else ["sqlite", "postgres"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _pg_sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only third-party data folder (``../shared/data``); tests using it skip without it."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@contextmanager
def fresh_database(backend: str, tmp_path: Path):
    """Settings for a fresh, empty database on ``backend`` (``sqlite`` or ``postgres``)."""
    if backend == "sqlite":
        yield load_settings(data_dir=tmp_path / "data", database_url="", workers=False)
        return
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(_pg_sqlalchemy_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        yield load_settings(data_dir=tmp_path / "data", database_url=url, workers=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The storage backend under test; every test using it runs on each."""
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    """A fresh ``Store`` on each backend (SQLite, PostgreSQL)."""
    from hutong.api.app import node_store

    with fresh_database(backend, tmp_path) as settings:
        st = node_store(settings)
        try:
            yield st
        finally:
            st.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A uvicorn server on a free loopback port, run in a thread."""

    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def server_store(store):
    """The store behind the ``server`` fixture (same object)."""
    return store


@pytest.fixture
def server(server_store):
    """Base URL (``http://127.0.0.1:PORT``) of a live Hutong server on a fresh store (both backends)."""
    from hutong.api.app import create_app

    app = create_app(store=server_store)
    with LiveServer(app) as live:
        yield live.url


@pytest.fixture
def fhir(server):
    """An ``httpx.Client`` pointed at the live server's FHIR base."""
    import httpx

    with httpx.Client(base_url=server + "/fhir", timeout=180) as client:
        yield client
