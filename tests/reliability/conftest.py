"""Real server processes for the reliability tests (kill -9 needs a process of its own)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, _free_port, forget_credentials, fresh_database, register_credentials


def server_env(settings, **extra) -> dict:
    env = {**os.environ, "HUTONG_DATA_DIR": str(settings.data_dir), "HUTONG_DATABASE_URL": settings.database_url,
           "HUTONG_SECURITY_GATEWAY_KEY": settings.security_gateway_key,
           "PYTHONPATH": str(REPO), **{k: str(v) for k, v in extra.items()}}
    return env


@contextmanager
def server_process(settings, workers: int = 2, **extra):
    """``uvicorn hutong.api.asgi:app`` with ``workers`` processes in a process group of its own;
    yields ``(base_url, popen)``. The group is killed at the end whatever happened."""
    port = _free_port()
    log = open(Path(settings.data_dir).parent / f"server-{port}.log", "wb")
    proc = start(settings, port, workers, log, **extra)
    base = f"http://127.0.0.1:{port}"
    try:
        from hutong.api.app import node_store

        store = node_store(settings)  # the servers' database: the bootstrap client's token is valid there
        try:
            register_credentials(base, store)
        finally:
            store.close()
        yield base, proc
    finally:
        forget_credentials(base)
        kill(proc)
        log.close()


def _wait_port_free(port: int, seconds: float = 20) -> None:
    """Wait until ``port`` can be bound again: processes of a server killed a moment ago may still be
    exiting (on a loaded machine), and a restart on the same port would then fail to bind."""
    import socket

    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.2)


def start(settings, port: int, workers: int, log, **extra) -> subprocess.Popen:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    _wait_port_free(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hutong.api.asgi:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log",
         "--http", "hutong.api.protocol:GuardedHttpToolsProtocol"],
        env=server_env(settings, **extra), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
    except RuntimeError as exc:  # say why: the server's own last words
        log.flush()
        tail = Path(log.name).read_bytes()[-3000:].decode("utf-8", "replace") if hasattr(log, "name") else ""
        raise RuntimeError(f"{exc}; server log ends:\n{tail}") from None
    return proc


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                time.sleep(0.5)  # the other workers
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the whole process group (supervisor and workers)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture
def settings(backend, tmp_path):
    """Settings for a fresh database on each backend (the servers of a test share it)."""
    with fresh_database(backend, tmp_path) as s:
        from hutong.api.app import node_store

        node_store(s).close()  # create the schema once, before several processes start on it
        yield s
