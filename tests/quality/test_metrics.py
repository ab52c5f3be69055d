"""``GET /metrics``: the node's health in Prometheus text format, protected, read by a Prometheus parser.

The request counters are kept per worker process in prometheus_client's multiprocess files and
added up at scrape time: the test writes a second worker's file (a real count made in a child
process against the same folder) and sees the sums include it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hutong.quality import metrics


def _families(body: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(body)}


def _value(families: dict, name: str, sample: str, **labels) -> float:
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


#: A second worker process counting three FHIR requests into the same metrics folder.
OTHER_WORKER = """
from prometheus_client import Counter, values
values.ValueClass = values.MultiProcessValue()
Counter("hutong_http_requests", "x", ["interface", "method", "status"], registry=None).labels("fhir", "GET", "2xx").inc(3)
"""


def test_metrics_are_protected_and_parse_as_prometheus_text(server, fhir):
    assert httpx.get(server + "/metrics", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    for _ in range(3):
        assert fhir.post("/Patient", json={"resourceType": "Patient", "gender": "female"}).status_code == 201
    assert fhir.get("/Patient/does-not-exist").status_code == 404

    r = httpx.get(server + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fam = _families(r.text)
    created = _value(fam, "hutong_http_requests", "hutong_http_requests_total", interface="fhir", method="POST",
                     status="2xx")
    assert created >= 3
    assert _value(fam, "hutong_http_requests", "hutong_http_requests_total", interface="fhir", method="GET",
                  status="4xx") >= 1
    assert _value(fam, "hutong_http_request_duration_seconds", "hutong_http_request_duration_seconds_count",
                  interface="fhir") >= 4
    # gauges read from the database: the change log, each consumer's lag, resources, size
    assert _value(fam, "hutong_change_log_head", "hutong_change_log_head") >= 3
    assert {s.labels["consumer"] for s in fam["hutong_consumer_lag_events"].samples} >= {"quality"}
    assert _value(fam, "hutong_resources", "hutong_resources", type="Patient") == 3
    assert "hutong_federation_peer_events_behind" in fam and "hutong_subscription_dead_letters" in fam

    # Another worker process's counts are added in.
    subprocess.run([sys.executable, "-c", OTHER_WORKER], check=True, timeout=60,
                   env=dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics._dir)))
    fam = _families(httpx.get(server + "/metrics").text)
    get_2xx = _value(fam, "hutong_http_requests", "hutong_http_requests_total", interface="fhir", method="GET",
                     status="2xx")
    before = _value(_families(r.text), "hutong_http_requests", "hutong_http_requests_total", interface="fhir",
                    method="GET", status="2xx")
    assert get_2xx == before + 3


def test_interfaces_are_bounded_labels():
    caps = frozenset({"quality", "card"})
    assert metrics.interface_of("/fhir/Patient/1", caps) == "fhir"
    assert metrics.interface_of("/api/card/verify", caps) == "api:card"
    assert metrics.interface_of("/api/whatever-a-client-sends/1", caps) == "api:other"
    assert metrics.interface_of("/console/quality/h1", caps) == "page"
    assert metrics.interface_of("/metrics", caps) == "metrics"
    assert metrics.interface_of("/../etc/passwd", caps) == "other"
