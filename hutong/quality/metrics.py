"""The platform's own health in Prometheus text format: ``GET /metrics`` (permission ``quality.metrics``).

Two kinds of figures, so that a province's existing monitoring can scrape any worker of a node and
see the whole node:

- **Per request** (counted in every worker process): ``hutong_http_requests_total`` by interface,
  method and status class, and ``hutong_http_request_duration_seconds`` by interface. Each worker
  counts into memory-mapped files of its own under ``{data_dir}/metrics`` (prometheus_client's
  multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``); a scrape adds up every worker's files, so the
  answer is the node's, whichever worker answers it. Files of workers that have exited are removed
  when a worker starts (a counter then drops, which Prometheus reads as a reset).
- **Read from the database at scrape time** (the same in every worker): the change-log head and
  each consumer's lag (patient linking, indicators, the assessment, the federation relay and
  uplink), each federation peer's events behind and lag in seconds, Subscription notifications
  waiting and dead letters, database size, resources by type.

Interfaces are bounded labels (``fhir``, ``api:<capability>``, ``page``, ``auth``, ``static``,
``health``, ``metrics``, ``other``): the path never becomes a label.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from hutong.store import schema

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Request duration buckets (seconds): card verification is milliseconds, a Bundle load seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_PAGE_PREFIXES = ("/console", "/portal", "/workstation", "/card", "/triage", "/report", "/share", "/consult",
                  "/registry", "/epidemic", "/fever", "/login", "/logout", "/account", "/docs", "/redoc")

_lock = threading.Lock()
_metrics: dict | None = None
_dir: Path | None = None


def enable(data_dir: Path | str) -> Path:
    """Count requests of this process into ``{data_dir}/metrics`` (once per process; later calls
    keep the first folder: prometheus_client's multiprocess mode is per process)."""
    global _metrics, _dir
    with _lock:
        if _metrics is not None:
            return _dir
        configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        folder = Path(configured or Path(data_dir) / "metrics")
        folder.mkdir(parents=True, exist_ok=True)
        _remove_dead(folder)
        # prometheus_client opens a process's files when the first value of each kind is made, from
        # PROMETHEUS_MULTIPROC_DIR: set it for that moment only, so that processes this one starts
        # (a test's node processes, a benchmark's) do not inherit this node's folder.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        try:
            values.ValueClass = values.MultiProcessValue()
            from prometheus_client import Counter, Histogram

            _metrics = {
                "requests": Counter("hutong_http_requests",
                                    "HTTP requests answered, by interface, method and status class",
                                    ["interface", "method", "status"], registry=None),
                "duration": Histogram("hutong_http_request_duration_seconds", "Time to answer an HTTP request",
                                      ["interface"], buckets=BUCKETS, registry=None),
            }
            _metrics["requests"].labels("metrics", "GET", "2xx")  # opens the counter file
            _metrics["duration"].labels("metrics")  # and the histogram's
        finally:
            if configured is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        _dir = folder
        return folder


def _remove_dead(folder: Path) -> None:
    """Files of worker processes that no longer run (``counter_1234.db``)."""
    for f in folder.glob("*.db"):
        m = re.search(r"_(\d+)\.db$", f.name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            f.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def interface_of(path: str, capabilities: frozenset[str]) -> str:
    """The bounded label of the interface a path belongs to."""
    if path == "/fhir" or path.startswith("/fhir/"):
        return "fhir"
    if path.startswith("/api/"):
        name = path[5:].split("/", 1)[0]
        return f"api:{name}" if name in capabilities else "api:other"
    if path == "/metrics":
        return "metrics"
    if path == "/health":
        return "health"
    if path.startswith("/auth"):
        return "auth"
    if path.startswith("/static") or path.startswith("/assets"):
        return "static"
    if path == "/" or path.startswith(_PAGE_PREFIXES):
        return "page"
    return "other"


class RequestMetrics:
    """ASGI middleware counting every HTTP request (outer slot: refusals by the body limits count too)."""

    def __init__(self, app, node):
        self.app = app
        self.names = frozenset(c.name for c in node.capabilities)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _metrics is None:
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            iface = interface_of(scope.get("path") or "", self.names)
            _metrics["requests"].labels(iface, scope.get("method", ""), f"{status['code'] // 100}xx").inc()
            _metrics["duration"].labels(iface).observe(time.perf_counter() - start)


class NodeCollector:
    """Gauges read from the node's database when scraped."""

    #: Counting every resource by type is a scan: done at most once a minute per process.
    COUNT_EVERY_S = 60.0

    def __init__(self, node):
        self.node = node

    def describe(self):  # no auto-describe: collecting reads the database
        return []

    def collect(self):
        store = self.node.store
        with store.read() as tx:
            conn = tx.conn
            head = int(conn.execute(select(func.max(schema.change_event.c.seq))).scalar() or 0)
            positions = conn.execute(select(schema.consumer_position.c.name, schema.consumer_position.c.seq)).all()
            cached = self.node.services.get("quality.metrics.counted")
            if cached is None or time.monotonic() - cached[0] > self.COUNT_EVERY_S:
                cached = (time.monotonic(), conn.execute(
                    select(schema.resource.c.res_type, func.count()).where(schema.resource.c.deleted.is_(False))
                    .group_by(schema.resource.c.res_type)).all())
                self.node.services["quality.metrics.counted"] = cached
            by_type = cached[1]
            size = _database_bytes(store, conn)
            subs = _subscriptions(conn)
        yield GaugeMetricFamily("hutong_change_log_head", "Newest change-log sequence number", value=head)
        lag = GaugeMetricFamily("hutong_consumer_lag_events", "Change events a consumer has not processed yet",
                                labels=["consumer"])
        seen = set()
        for name, seq in positions:
            seen.add(name)
            lag.add_metric([name], max(0, head - int(seq)))
        for name in sorted(set(getattr(store, "_consumers", {}) or {}) - seen):
            lag.add_metric([name], head)
        yield lag
        res = GaugeMetricFamily("hutong_resources", "Current resources by type", labels=["type"])
        for t, n in sorted(by_type):
            res.add_metric([t], int(n))
        yield res
        if size is not None:
            yield GaugeMetricFamily("hutong_database_size_bytes", "Size of the node's database", value=size)
        if subs is not None:
            pending, dead, failing = subs
            yield GaugeMetricFamily("hutong_subscription_pending_notifications",
                                    "Subscription events matched and not yet delivered (rest-hook)", value=pending)
            yield GaugeMetricFamily("hutong_subscription_dead_letters", "Notifications given up on", value=dead)
            yield GaugeMetricFamily("hutong_subscription_failing", "Subscriptions whose endpoint is failing",
                                    value=failing)
        yield from _federation(store)


def _database_bytes(store, conn) -> int | None:
    if store.is_postgres:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
    path = store.engine.url.database
    if not path or path == ":memory:":
        return None
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def _subscriptions(conn):
    try:
        from hutong.federation.tables import subscription_dead_letter as D
        from hutong.federation.tables import subscription_state as S
    except ImportError:  # the federation capability is not part of this build
        return None
    pending = conn.execute(select(func.coalesce(func.sum(S.c.events - S.c.delivered), 0))
                           .where(S.c.channel == "rest-hook", S.c.status.in_(("active", "error")))).scalar()
    dead = conn.execute(select(func.count()).select_from(D)).scalar()
    failing = conn.execute(select(func.count()).select_from(S).where(S.c.attempts > 0)).scalar()
    return int(pending or 0), int(dead or 0), int(failing or 0)


def _federation(store):
    try:
        from hutong.federation.status import federation_status
    except ImportError:
        return
    peers = federation_status(store)["peers"]
    behind = GaugeMetricFamily("hutong_federation_peer_events_behind",
                               "Changes a peer node reported and this node has not applied yet",
                               labels=["tenant", "direction"])
    lag = GaugeMetricFamily("hutong_federation_peer_lag_seconds",
                            "How far the newest change applied from a peer trails the newest it reported",
                            labels=["tenant", "direction"])
    conflicts = GaugeMetricFamily("hutong_federation_open_conflicts", "Open federation conflicts",
                                  labels=["tenant", "direction"])
    for p in peers:
        labels = [p["tenant"], p["direction"]]
        behind.add_metric(labels, p["events_behind"])
        lag.add_metric(labels, p["lag_seconds"])
        conflicts.add_metric(labels, p["open_conflicts"])
    yield behind
    yield lag
    yield conflicts


def scrape(node) -> bytes:
    """The Prometheus text exposition of the node: every worker's request counts, and the gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if _dir is not None:
        multiprocess.MultiProcessCollector(registry, path=str(_dir))
    registry.register(NodeCollector(node))
    return generate_latest(registry)
