"""The operations console (运行监控): the node's own health from the same figures ``/metrics`` serves
(``hutong.quality.metrics``), with thresholds that raise visible alerts.

The thresholds are one readable table (``THRESHOLDS``); a province that wants other values, or
alerts over time windows, uses its own Prometheus rules on ``/metrics`` (this page shows the state
now: request counts since each worker started, lags and queues as they are)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, multiprocess

from hutong.quality import metrics


@dataclass(frozen=True)
class Threshold:
    id: str
    zh: str  # what the alert says (Simplified Chinese first; English through the catalog)
    limit: float


#: alert → the limit beyond which it is raised (read by ``alerts``).
THRESHOLDS: dict[str, Threshold] = {t.id: t for t in (
    Threshold("consumer-lag", "变更日志消费者滞后超过 %(limit)s 条事件", 10_000),
    Threshold("federation-lag", "省市链路滞后超过 %(limit)s 秒", 600),
    Threshold("federation-conflicts", "存在未处理的省市数据冲突", 0),
    Threshold("subscription-dead", "有订阅通知投递失败（死信）", 0),
    Threshold("subscription-failing", "有订阅端点连续投递失败", 0),
    Threshold("http-5xx", "服务器错误（5xx）占比超过 %(limit)s%%", 1.0),
)}


@dataclass
class Alert:
    id: str
    zh: str
    subject: str  # what it is about (a consumer, a city, an interface)
    value: float
    limit: float


def _families() -> dict:
    registry = CollectorRegistry(auto_describe=False)
    if metrics._dir is not None:
        multiprocess.MultiProcessCollector(registry, path=str(metrics._dir))
    return {f.name: f for f in registry.collect()}


def snapshot(node) -> dict:
    """Requests per interface (all workers), consumer lags, federation peers, Subscription queues,
    database size: plain values for the page and ``GET /api/quality/operations``."""
    fams = _families()
    per: dict[str, dict] = {}
    for s in getattr(fams.get("hutong_http_requests"), "samples", []):
        if s.name != "hutong_http_requests_total":
            continue
        row = per.setdefault(s.labels["interface"], {"requests": 0, "4xx": 0, "5xx": 0, "seconds": 0.0,
                                                    "buckets": {}})
        row["requests"] += int(s.value)
        if s.labels["status"] in ("4xx", "5xx"):
            row[s.labels["status"]] += int(s.value)
    for s in getattr(fams.get("hutong_http_request_duration_seconds"), "samples", []):
        row = per.get(s.labels.get("interface"))
        if row is None:
            continue
        if s.name.endswith("_sum"):
            row["seconds"] += s.value
        elif s.name.endswith("_bucket"):
            row["buckets"][s.labels["le"]] = row["buckets"].get(s.labels["le"], 0) + s.value
    interfaces = []
    for iface, row in sorted(per.items()):
        n = row["requests"]
        interfaces.append({"interface": iface, "requests": n, "errors4xx": row["4xx"], "errors5xx": row["5xx"],
                           "errorRate5xx": row["5xx"] / n if n else 0.0,
                           "meanMs": round(1000 * row["seconds"] / n, 1) if n else None,
                           "p95Ms": _quantile_ms(row["buckets"], 0.95)})
    gauges: dict[str, list] = {}
    for fam in metrics.NodeCollector(node).collect():
        gauges[fam.name] = [(dict(s.labels), s.value) for s in fam.samples]
    one = {k: v[0][1] for k, v in gauges.items() if v and not v[0][0]}
    return {
        "interfaces": interfaces,
        "consumers": [{"name": lb["consumer"], "lag": int(v)} for lb, v in gauges.get("hutong_consumer_lag_events", [])],
        "peers": [{"tenant": lb["tenant"], "direction": lb["direction"], "eventsBehind": int(v)}
                  for lb, v in gauges.get("hutong_federation_peer_events_behind", [])],
        "peerLagSeconds": {f'{lb["tenant"]}/{lb["direction"]}': v
                           for lb, v in gauges.get("hutong_federation_peer_lag_seconds", [])},
        "openConflicts": {f'{lb["tenant"]}/{lb["direction"]}': int(v)
                          for lb, v in gauges.get("hutong_federation_open_conflicts", [])},
        "head": int(one.get("hutong_change_log_head", 0)),
        "databaseBytes": int(one["hutong_database_size_bytes"]) if "hutong_database_size_bytes" in one else None,
        "subscriptionsPending": int(one.get("hutong_subscription_pending_notifications", 0)),
        "subscriptionDeadLetters": int(one.get("hutong_subscription_dead_letters", 0)),
        "subscriptionsFailing": int(one.get("hutong_subscription_failing", 0)),
    }


def _quantile_ms(buckets: dict[str, float], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None without requests)."""
    ordered = sorted(((float(le), n) for le, n in buckets.items()), key=lambda x: x[0])
    if not ordered or ordered[-1][1] <= 0:
        return None
    want = q * ordered[-1][1]
    for le, n in ordered:
        if n >= want:
            return None if le == float("inf") else le * 1000
    return None


def alerts(snap: dict) -> list[Alert]:
    """The thresholds ``snap`` crosses, worst first within each kind."""
    out: list[Alert] = []
    t = THRESHOLDS
    for c in snap["consumers"]:
        if c["lag"] > t["consumer-lag"].limit:
            out.append(Alert("consumer-lag", t["consumer-lag"].zh, c["name"], c["lag"], t["consumer-lag"].limit))
    for peer, lag in snap["peerLagSeconds"].items():
        if lag > t["federation-lag"].limit:
            out.append(Alert("federation-lag", t["federation-lag"].zh, peer, lag, t["federation-lag"].limit))
    for peer, n in snap["openConflicts"].items():
        if n > t["federation-conflicts"].limit:
            out.append(Alert("federation-conflicts", t["federation-conflicts"].zh, peer, n, 0))
    if snap["subscriptionDeadLetters"] > t["subscription-dead"].limit:
        out.append(Alert("subscription-dead", t["subscription-dead"].zh, "Subscription",
                         snap["subscriptionDeadLetters"], 0))
    if snap["subscriptionsFailing"] > t["subscription-failing"].limit:
        out.append(Alert("subscription-failing", t["subscription-failing"].zh, "Subscription",
                         snap["subscriptionsFailing"], 0))
    for row in snap["interfaces"]:
        if row["requests"] >= 20 and 100 * row["errorRate5xx"] > t["http-5xx"].limit:
            out.append(Alert("http-5xx", t["http-5xx"].zh, row["interface"], round(100 * row["errorRate5xx"], 2),
                             t["http-5xx"].limit))
    out.sort(key=lambda a: (a.id, -a.value))
    return out
