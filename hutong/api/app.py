"""The FastAPI application: FHIR REST at ``/fhir``, capability APIs, pages, OpenAPI at ``/docs``."""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import logging
import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hutong import __version__
from hutong.api.fast_read import ReadFastPath
from hutong.api.responses import FHIR_JSON, fhir_response, internal_error_response, outcome_response
from hutong.config import Settings, load_settings
from hutong.core.errors import FhirError, Issue, operation_outcome
from hutong.store import Store

log = logging.getLogger("hutong.api")

#: Capability route modules included before the generic FHIR routes (order matters).
CAPABILITY_ROUTE_MODULES = [
    "hutong.mpi.routes",
    "hutong.card.routes",
    "hutong.search.routes",
]


class BodyLimit:
    """ASGI middleware refusing bodies larger than ``limit`` bytes with 413, before they are read whole."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._refuse(send)
        seen = 0
        refused = False

        async def limited_receive():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    raise FhirError(413, "too-costly", f"request body exceeds {self.limit} bytes")
            return message

        try:
            await self.app(scope, limited_receive, send)
        except FhirError:
            if refused:
                await self._refuse(send)
            else:
                raise

    async def _refuse(self, send):
        body = orjson.dumps(operation_outcome(Issue("error", "too-costly", f"request body exceeds {self.limit} bytes")))
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class ConsumerWorker:
    """Runs the store's change-log consumers in a background thread, woken by commits and every second.

    With several worker processes only one runs them (the holder of an exclusive ``flock`` on
    ``consumers.lock`` in the data folder; the others retry every few seconds and take over if it
    exits): the outbox would keep them exactly-once anyway, but each runner would load every
    consumer's working set (the patient index's pinyin tables, for one) into its own memory.
    """

    RETRY_S = 5.0
    #: Events per consumer transaction, and the pause after each batch (as long as the batch took, at
    #: most 50 ms): the consumers share a web worker's GIL, and catching up in one long stretch would
    #: stall the requests of that process.
    BATCH = 100
    PAUSE_SHARE = 1.0
    MAX_PAUSE_S = 0.05

    def __init__(self, store: Store, lock_path: Path | None = None):
        self.store = store
        self.lock_path = lock_path
        self._lock_fd: int | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hutong-consumers", daemon=True)

    def start(self) -> None:
        self.store.add_commit_listener(self._wake.set)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def is_runner(self) -> bool:
        """True when this process runs the consumers (takes the lock if it is free)."""
        if self.lock_path is None or self._lock_fd is not None:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _pause(self, busy_s: float) -> None:
        self._stop.wait(min(self.MAX_PAUSE_S, busy_s * self.PAUSE_SHARE))

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.is_runner():
                self._stop.wait(self.RETRY_S)
                continue
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.store.run_consumers(batch_size=self.BATCH, between=self._pause)
            except Exception:  # a failing consumer must not kill the thread; it retries next round
                log.exception("change-log consumer failed; will retry")


def _capability_modules():
    for name in CAPABILITY_ROUTE_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            yield importlib.import_module(name)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the application on ``store`` (or a store opened from ``settings``)."""
    settings = settings or (store.settings if store is not None else load_settings())
    own_store = store is None
    store = store or Store.open(settings)
    modules = list(_capability_modules())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = None
        for module in modules:
            startup = getattr(module, "startup", None)
            if startup is not None:
                startup(app)
        if settings.workers:
            data_dir = Path(settings.data_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
            worker = ConsumerWorker(store, data_dir / "consumers.lock")
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            if own_store:
                store.close()

    app = FastAPI(
        title="Hutong (互通) regional health information platform",
        version=__version__,
        description=(
            "FHIR R4 (4.0.1) REST API at `/fhir` and capability APIs under `/api`. "
            "Errors are FHIR OperationOutcome resources. 区域全民健康信息平台。"
        ),
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings

    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError):
        return outcome_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        issues = []
        for err in exc.errors()[:20]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            issues.append(Issue("error", "invalid", f"{loc or 'request'}: {err.get('msg', 'invalid')}", [loc] if loc else []))
        if not issues:
            issues = [Issue("error", "invalid", "invalid request")]
        return fhir_response(operation_outcome(issues), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}.get(
            exc.status_code, "processing"
        )
        text = exc.detail if isinstance(exc.detail, str) else "request failed"
        return fhir_response(operation_outcome(Issue("error", code, text)), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("unhandled error")
        return internal_error_response()

    @app.get("/health", tags=["platform"], summary="Liveness and readiness")
    def health():
        with store.read() as tx:
            tx.conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__, "backend": store.engine.dialect.name}

    for module in modules:
        app.include_router(module.router)

    from hutong.api.fhir_routes import router as fhir_router

    app.include_router(fhir_router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(ReadFastPath, store=store)
    # Capabilities' own fast paths for their hottest requests (each hands everything else on).
    for module in modules:
        middleware = getattr(module, "asgi_middleware", None)
        if middleware is not None:
            app.add_middleware(middleware(), store=store)
    return app
