"""Shared fixtures: a fresh store on each backend, and a live HTTP server on it.

Every storage test runs on SQLite and on PostgreSQL. PostgreSQL comes from
``HUTONG_TEST_PG_URL`` (default ``postgresql://127.0.0.1:5432/test``); each test gets its own
schema, dropped afterwards. Set ``HUTONG_TEST_SKIP_PG=1`` only on a machine without PostgreSQL.

Security is on in every test server: the ``server`` fixture registers a bootstrap system client in
the store, mints it a real access token (signed with the node's key) and every httpx request to that
server carries it (``Authorization: Bearer``) unless the request brings its own credentials. A test
that sets ``X-Hutong-*`` identity headers (a doctor at an institution, a resident) gets them believed
through the trusted-gateway mode: test stores are configured with ``TEST_GATEWAY_KEY`` and such
requests carry it. Tests of the security capability itself use servers without either.
"""

from __future__ import annotations

import os
import secrets
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

#: The trusted-gateway key of test stores (``HUTONG_SECURITY_GATEWAY_KEY``); see the module docstring.
TEST_GATEWAY_KEY = "test-gateway-" + secrets.token_hex(16)

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
        yield load_settings(data_dir=tmp_path / "data", database_url="", workers=False,
                            security_gateway_key=TEST_GATEWAY_KEY)
        return
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(_pg_sqlalchemy_url(PG_URL))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        yield load_settings(data_dir=tmp_path / "data", database_url=url, workers=False,
                            security_gateway_key=TEST_GATEWAY_KEY)
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
    """A uvicorn server on a free loopback port, run in a thread.

    When ``app`` is a node (``create_app``) and ``credentials`` is true, httpx requests to it carry the
    bootstrap system client's token (``register_credentials``) while it runs."""

    def __init__(self, app, credentials: bool = True):
        import uvicorn

        self.port = _free_port()
        self.app = app
        node = getattr(app, "node", None)
        self.credential_store = node.store if (credentials and node is not None) else None
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
        if self.credential_store is not None:
            register_credentials(self.url, self.credential_store)
        return self

    def __exit__(self, *exc):
        forget_credentials(self.url)
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------- credentials
BOOTSTRAP_CLIENT = "test-bootstrap"
BOOTSTRAP_SCOPE = frozenset({"system/*.*", "hutong/*"})
#: base URL → (bearer token, gateway key): what httpx requests to a test server carry by default.
_CREDENTIALS: dict[str, tuple[str, str]] = {}


def bootstrap_token(store, scope: frozenset[str] = BOOTSTRAP_SCOPE, ttl_s: int = 4 * 3600) -> str:
    """A real access token of the bootstrap system client (registered in ``store`` on first use)."""
    from hutong.security.tokens import TokenService

    service = TokenService(store, store.settings)
    if service.client(BOOTSTRAP_CLIENT) is None:
        from joserfc.jwk import ECKey

        key = ECKey.generate_key("P-384", parameters={"kid": "bootstrap", "alg": "ES384"})
        try:
            service.add_client("test bootstrap", " ".join(sorted(BOOTSTRAP_SCOPE)),
                               jwks={"keys": [key.as_dict(private=False)]}, client_id=BOOTSTRAP_CLIENT)
        except Exception:  # noqa: BLE001 - registered meanwhile by another fixture on the same store
            pass
    return service.mint(BOOTSTRAP_CLIENT, scope, ttl_s=ttl_s)


def register_credentials(base_url: str, store) -> str:
    """Make httpx requests to ``base_url`` carry the bootstrap token (or the gateway key); returns the token."""
    token = bootstrap_token(store)
    _CREDENTIALS[base_url.rstrip("/")] = (token, store.settings.security_gateway_key)
    return token


def token_for(base_url: str) -> str:
    """The bearer token requests to a registered test server carry (for tools run as subprocesses)."""
    return _CREDENTIALS[base_url.rstrip("/")][0]


def register_gateway(base_url: str, key: str) -> None:
    """Make httpx requests to ``base_url`` (a node started elsewhere, e.g. a local cluster's process)
    carry a trusted-gateway key: the caller is ``system`` unless the request sets ``X-Hutong-Role``."""
    _CREDENTIALS[base_url.rstrip("/")] = ("", key)


def forget_credentials(base_url: str) -> None:
    _CREDENTIALS.pop(base_url.rstrip("/"), None)


def _add_credentials(request) -> None:
    if not _CREDENTIALS:
        return
    url = str(request.url)
    found = next((creds for base, creds in _CREDENTIALS.items() if url == base or url.startswith(base + "/")), None)
    if found is None:
        return
    token, gateway = found
    headers = request.headers
    if "authorization" in headers or "hutong_session=" in headers.get("cookie", ""):
        return
    if gateway and "x-hutong-gateway-key" not in headers and any(k.lower().startswith("x-hutong-")
                                                                  for k in headers.keys()):
        headers["X-Hutong-Gateway-Key"] = gateway
        return
    if "x-hutong-gateway-key" in headers:
        return
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif gateway:
        headers["X-Hutong-Gateway-Key"] = gateway
        if "x-hutong-role" not in headers:
            headers["X-Hutong-Role"] = "system"


@pytest.fixture(scope="session", autouse=True)
def _httpx_credentials():
    """httpx requests to a registered test server carry its credentials (see the module docstring)."""
    import httpx

    send, asend = httpx.Client.send, httpx.AsyncClient.send

    def patched_send(self, request, *args, **kwargs):
        _add_credentials(request)
        return send(self, request, *args, **kwargs)

    async def patched_asend(self, request, *args, **kwargs):
        _add_credentials(request)
        return await asend(self, request, *args, **kwargs)

    httpx.Client.send, httpx.AsyncClient.send = patched_send, patched_asend
    try:
        yield
    finally:
        httpx.Client.send, httpx.AsyncClient.send = send, asend


class TestGateway:
    """ASGI middleware in front of a page-test server standing for a trusted gateway: a browser request
    without a session or token gets the gateway key (and ``X-Hutong-Role: system`` unless the test set
    identity headers with ``page.set_extra_http_headers``)."""

    def __init__(self, app, key: str):
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = list(scope.get("headers") or [])
            names = {k for k, _ in headers}
            cookie = next((v for k, v in headers if k == b"cookie"), b"")
            if b"authorization" not in names and b"hutong_session=" not in cookie:
                headers = [(k, v) for k, v in headers if k != b"x-hutong-gateway-key"]
                headers.append((b"x-hutong-gateway-key", self.key))
                if b"x-hutong-role" not in names:
                    headers.append((b"x-hutong-role", b"system"))
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


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


# ---------------------------------------------------------------------------------------------- pages
# Pages are tested in Debian's Chromium driven by Playwright (sync API, no browser download). These
# fixtures are shared by every capability's page tests:
#   page_server  live server on a fresh SQLite store whose pages carry STRICT_CSP (so a page that needs
#                inline script or style fails its test); page_server_store is the store behind it
#   browser_context  one headless Chromium per test session, with a fresh user-data directory
#   page         a new tab (cookies cleared), with .console_errors collecting console errors, CSP
#                violations and uncaught exceptions
#   screenshot   screenshot(page, "name") saves test-artifacts/screenshots/<name>.png
# All of them skip cleanly when /usr/bin/chromium (or HUTONG_CHROMIUM) or Playwright is missing.

CHROMIUM = os.environ.get("HUTONG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
#: The Content-Security-Policy pages must work under (no 'unsafe-inline', nothing from elsewhere).
STRICT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
              "connect-src 'self'; font-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
              "form-action 'self'; frame-ancestors 'self'")


class StrictCsp:
    """ASGI middleware adding ``STRICT_CSP`` to every HTML answer (test servers only)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def add_header(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"content-security-policy", STRICT_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add_header)


@pytest.fixture
def page_server_store(tmp_path):
    """A fresh SQLite store for page tests (pages are the same on both backends; their data is tested
    on both by the capabilities' API tests)."""
    from hutong.api.app import node_store

    with fresh_database("sqlite", tmp_path) as settings:
        st = node_store(settings)
        try:
            yield st
        finally:
            st.close()


@pytest.fixture
def page_server(page_server_store):
    """Base URL of a live server on ``page_server_store`` whose HTML answers carry ``STRICT_CSP``."""
    from hutong.api.app import create_app

    app = create_app(store=page_server_store)
    with LiveServer(StrictCsp(TestGateway(app, page_server_store.settings.security_gateway_key))) as live:
        register_credentials(live.url, page_server_store)
        try:
            yield live.url
        finally:
            forget_credentials(live.url)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """One headless Chromium (persistent context on a fresh user-data directory) for the session."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (scripts/install-browser.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, locale="zh-CN", viewport={"width": 1280, "height": 900},
            timezone_id="Asia/Shanghai")
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context):
    """A new browser tab with no cookies; ``page.console_errors`` lists console errors (CSP
    violations included) and uncaught exceptions seen while the test ran."""
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.console_errors = errors
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def screenshot(request):
    """``screenshot(page, name=None, full_page=True)`` saves ``test-artifacts/screenshots/<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(tab, name: str | None = None, full_page: bool = True) -> Path:
        stem = name or request.node.name
        path = SCREENSHOTS / ("".join(c if c.isalnum() or c in "-_." else "_" for c in stem) + ".png")
        tab.screenshot(path=str(path), full_page=full_page)
        return path

    return take


def pytest_collection_modifyitems(session, config, items):
    """Page tests run last: Playwright's sync API keeps an event loop running in the main thread for
    the rest of the session once the browser starts, and later tests that call ``asyncio.run`` would
    fail. Order within each group is kept."""
    pages = [i for i in items if "browser_context" in getattr(i, "fixturenames", ())]
    if pages:
        rest = [i for i in items if "browser_context" not in getattr(i, "fixturenames", ())]
        items[:] = rest + pages
