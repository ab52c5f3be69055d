"""The node's HTTP application: the capability list, the middleware order, and where each request goes.

``CAPABILITIES`` is the one list of what this node runs. ``create_app`` builds the node from it
(``hutong/api/node.py``) and returns one ASGI application:

    request ─▶ ServerErrors ─▶ CORS ─▶ Compression ─▶ RequestLimits ─▶ [capability middleware] ─▶ NodeApp
                                                                                  ├─ /fhir…        → FhirHttp (the route table)
                                                                                  ├─ plain routes  → PlainRoutes (hot endpoints)
                                                                                  └─ else          → FastAPI (capability APIs,
                                                                                                     pages, /health, /docs)

``build_middleware`` states that order in code; ``docs/ARCHITECTURE.md`` shows it too.
"""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response

from hutong import __version__
from hutong.api.caller import PUBLIC, permit
from hutong.api.consumers import ConsumerWorker
from hutong.api.fhir_http import PREFIX, FhirHttp
from hutong.api.node import Node, build_node, open_store
from hutong.api.openapi import fhir_paths
from hutong.api.plain import PlainRoutes, validation_issues
from hutong.api.plain import openapi_paths as plain_paths
from hutong.api.responses import fhir_response, internal_error_response, outcome_response
from hutong.bulk.capability import CAPABILITY as BULK
from hutong.capability import Capability
from hutong.card.capability import CAPABILITY as CARD
from hutong.config import Settings, load_settings
from hutong.consult.capability import CAPABILITY as CONSULT
from hutong.core.errors import FhirError, Issue, operation_outcome
from hutong.epidemic.capability import CAPABILITY as EPIDEMIC
from hutong.federation.capability import CAPABILITY as FEDERATION
from hutong.mpi.capability import CAPABILITY as MPI
from hutong.quality.capability import CAPABILITY as QUALITY
from hutong.recognition.capability import CAPABILITY as RECOGNITION
from hutong.registry.capability import CAPABILITY as REGISTRY
from hutong.reportread.capability import CAPABILITY as REPORTREAD
from hutong.search.capability import CAPABILITY as SEARCH
from hutong.share.capability import CAPABILITY as SHARE
from hutong.sim.capability import CAPABILITY as SIM
from hutong.stats.capability import CAPABILITY as STATS
from hutong.store import Store
from hutong.triage.capability import CAPABILITY as TRIAGE
from hutong.web.capability import CAPABILITY as WEB

log = logging.getLogger("hutong.api")

#: The capabilities of a node, in order: each one's routes, operations, consumers, pages, commands
#: and start-up work come from its entry here and nowhere else.
CAPABILITIES: list[Capability] = [
    SEARCH,
    BULK,
    MPI,
    CARD,
    STATS,
    SIM,
    TRIAGE,
    REPORTREAD,
    SHARE,
    WEB,
    FEDERATION,
    REGISTRY,
    EPIDEMIC,
    RECOGNITION,
    QUALITY,
    CONSULT,
]

_STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
    "swagger-init.js": "application/javascript", "redoc.standalone.js": "application/javascript",
    "redoc-init.js": "application/javascript", "favicon-32x32.png": "image/png",
}


def node_store(settings: Settings | None = None) -> Store:
    """A store opened with everything this node's capabilities need (CLI commands use this)."""
    return open_store(settings or load_settings(), CAPABILITIES)


_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestLimits:
    """ASGI middleware: bodies larger than the limit get 413 (before they are read whole), and a
    JSON body in a charset other than UTF-8 gets 415, on every route."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if _has_nul(scope):
            # Never valid in a URL; PostgreSQL text cannot hold it, so refuse it alike on every backend.
            refusal = FhirError(400, "invalid", "the URL contains a NUL character (%00)")
            return await outcome_response(refusal)(scope, receive, send)
        if scope["method"] in _BODYLESS:
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._refuse(scope, receive, send)
            elif name == b"content-type":
                refusal = _charset_refusal(value.decode("latin-1"))
                if refusal is not None:
                    return await outcome_response(refusal)(scope, receive, send)
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
            if not refused:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        exc = FhirError(413, "too-costly", f"request body exceeds {self.limit} bytes")
        await outcome_response(exc)(scope, receive, send)


def _has_nul(scope) -> bool:
    query = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query


def _charset_refusal(content_type: str) -> FhirError | None:
    media, _, params = content_type.partition(";")
    if not media.strip().lower().endswith("json"):
        return None
    for part in params.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return FhirError(415, "not-supported", f"unsupported charset {value.strip()[:40]!r}: send UTF-8 JSON")
    return None


class ServerErrors:
    """Outermost ASGI middleware: anything that escapes every other layer is logged and answered
    with the one 500 OperationOutcome (never a stack trace), if no response has started."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("unhandled error")
            try:
                await internal_error_response()(scope, receive, send)
            except Exception:  # noqa: BLE001 - the response had already started: the server closes the connection
                pass


class Compression:
    """gzip for clients that accept it (Starlette's GZipMiddleware); requests without
    ``Accept-Encoding: gzip`` pass straight through, without its per-message wrapping."""

    def __init__(self, app, minimum_size: int = 1024):
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding":
                    if b"gzip" in value:
                        return await self.gzip(scope, receive, send)
                    break
        await self.app(scope, receive, send)


class NodeApp:
    """Where a request goes: ``/fhir…`` to the FHIR route table, a plain route to its handler,
    everything else to FastAPI."""

    def __init__(self, fhir, api):
        self.fhir = fhir
        self.api = api  # FastAPI wrapped in the plain routes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if path == PREFIX or path.startswith(PREFIX + "/"):
                return await self.fhir(scope, receive, send)
        await self.api(scope, receive, send)


def build_middleware(inner, node: Node):
    """Wrap ``inner`` in the node's middleware, innermost first (the outermost runs first)."""
    app = inner
    for cap in reversed(node.capabilities):
        for mw in cap.middleware:
            if mw.slot == "inner":
                app = mw.factory(app, node)
    app = RequestLimits(app, node.settings.max_body_bytes)
    for cap in reversed(node.capabilities):
        for mw in cap.middleware:
            if mw.slot == "outer":
                app = mw.factory(app, node)
    app = Compression(app)
    origins = [o.strip() for o in node.settings.cors_origins.split(",") if o.strip()]
    if origins:
        app = CORSMiddleware(app, allow_origins=origins, allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                             allow_headers=["*"], expose_headers=["Location", "Content-Location", "ETag"])
    return ServerErrors(app)


def _api(node: Node, lifespan) -> FastAPI:
    """The FastAPI application: capability routers, /health, the API documentation."""
    api = FastAPI(
        title="Hutong (互通) regional health information platform",
        version=__version__,
        description=("FHIR R4 (4.0.1) REST API at `/fhir` and capability APIs under `/api`. "
                     "Errors are FHIR OperationOutcome resources. 区域全民健康信息平台。"),
        lifespan=lifespan, docs_url=None, redoc_url=None,
    )
    api.state.node = node
    api.state.store = node.store
    api.state.settings = node.settings

    @api.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError):
        return outcome_response(exc)

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        return fhir_response(operation_outcome(validation_issues(exc.errors())), 400)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}.get(
            exc.status_code, "processing")
        text = exc.detail if isinstance(exc.detail, str) else "request failed"
        return fhir_response(operation_outcome(Issue("error", code, text)), exc.status_code,
                             getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("unhandled error")
        return internal_error_response()

    @api.get("/health", tags=["platform"], summary="Liveness and readiness")
    def health(caller=Depends(permit(PUBLIC))):
        with node.store.read() as tx:
            tx.conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__, "backend": node.store.engine.dialect.name}

    @api.get("/docs", include_in_schema=False)
    def docs(caller=Depends(permit(PUBLIC))):
        return HTMLResponse(_DOCS_PAGE.format(title="Hutong API", openapi="/openapi.json"))

    @api.get("/redoc", include_in_schema=False)
    def redoc(caller=Depends(permit(PUBLIC))):
        return HTMLResponse(_REDOC_PAGE.format(title="Hutong API", openapi="/openapi.json"))

    @api.get("/static/docs/{name}", include_in_schema=False)
    def docs_asset(name: str, caller=Depends(permit(PUBLIC))):
        media = _ASSETS.get(name)
        if media is None:
            raise FhirError(404, "not-found", "no such asset")
        return Response((_STATIC / "docs" / name).read_bytes(), media_type=media,
                        headers={"Cache-Control": "public, max-age=86400"})

    for cap in node.capabilities:
        for router in cap.routers:
            api.include_router(router)

    def openapi() -> dict:
        if api.openapi_schema is None:
            spec = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
            plain = plain_paths(plain_routes(node), spec.setdefault("components", {}))
            spec["paths"] = {**fhir_paths(node.routes.interactions), **plain, **spec.get("paths", {})}
            api.openapi_schema = spec
        return api.openapi_schema

    api.openapi = openapi
    return api


def plain_routes(node: Node) -> list:
    """Every capability's plain routes."""
    return [r for cap in node.capabilities for r in cap.plain]


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="/static/docs/favicon-32x32.png"><link rel="stylesheet" href="/static/docs/swagger-ui.css">
</head><body data-openapi="{openapi}"><div id="swagger-ui"></div>
<script src="/static/docs/swagger-ui-bundle.js"></script><script src="/static/docs/swagger-init.js"></script>
</body></html>"""

_REDOC_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="/static/docs/favicon-32x32.png"></head>
<body data-openapi="{openapi}"><div id="redoc"></div>
<script src="/static/docs/redoc.standalone.js"></script><script src="/static/docs/redoc-init.js"></script>
</body></html>"""


def create_app(settings: Settings | None = None, store: Store | None = None):
    """The node's ASGI application on ``store`` (or a store opened from ``settings``)."""
    settings = settings or (store.settings if store is not None else load_settings())
    own_store = store is None
    store = store or open_store(settings, CAPABILITIES)
    node = build_node(settings, store, CAPABILITIES)

    @asynccontextmanager
    async def lifespan(_api):
        worker = None
        for cap in node.capabilities:
            if cap.startup is not None:
                cap.startup(node)
        # Objects made at start-up (definitions, search registry, models) live as long as the process:
        # keep them out of the garbage collector's generations, whose full scans of them were
        # measured as latency spikes of tens of milliseconds under load.
        gc.collect()
        gc.freeze()
        import sys
        sys.setswitchinterval(0.001)
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
            for cap in reversed(node.capabilities):
                if cap.shutdown is not None:
                    cap.shutdown(node)
            if own_store:
                store.close()

    api = _api(node, lifespan)
    node.services["fastapi"] = api
    app = build_middleware(NodeApp(FhirHttp(node), PlainRoutes(api, node, plain_routes(node))), node)
    app.node = node  # for tests and tools that hold the app
    return app


__all__ = ["CAPABILITIES", "create_app", "node_store", "build_middleware"]
