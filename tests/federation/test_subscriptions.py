"""FHIR Subscriptions (R4 Subscriptions Backport): topics in the CapabilityStatement, checked
Subscriptions, rest-hook delivery in order with handshake and retries over hours, dead letters,
an AuditEvent per delivery, $status, $events, and the websocket channel with its binding token."""

from __future__ import annotations

import asyncio
import http.server
import threading

import httpx
import orjson
from sqlalchemy import func, select

from hutong.federation.delivery import Delivery
from hutong.federation.localnats import free_port
from hutong.federation.subscriptions import FILTER_EXT, HEARTBEAT_EXT, MAX_COUNT_EXT, PAYLOAD_EXT
from hutong.federation.tables import subscription_dead_letter
from hutong.federation.topics import BASE, TOPIC_CANONICAL_EXT
from hutong.store.schema import resource


class Subscriber:
    """A hospital's notification endpoint: records what it gets; can be down or refuse."""

    def __init__(self):
        self.port = free_port()
        self.received: list[dict] = []
        self.mode = "ok"
        self.server = None

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.mode == "reject":
                    self.send_response(400)
                else:
                    outer.received.append({"body": orjson.loads(body), "auth": self.headers.get("Authorization")})
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/notify"

    def kinds(self):
        return [_param(r["body"], "type") for r in self.received]

    def event_numbers(self):
        out = []
        for r in self.received:
            status = r["body"]["entry"][0]["resource"]
            for p in status["parameter"]:
                if p["name"] == "notification-event":
                    out.append(int(next(x["valueString"] for x in p["part"] if x["name"] == "event-number")))
        return out


def _param(bundle: dict, name: str):
    status = bundle["entry"][0]["resource"]
    return next(next(v for k, v in p.items() if k.startswith("value")) for p in status["parameter"] if p["name"] == name)


def _subscription(endpoint: str, *, topic: str = "encounter-change", criteria: str | None = None,
                  channel: str = "rest-hook", payload: str = "id-only", max_count: int = 1, heartbeat: int = 0) -> dict:
    ch: dict = {"type": channel, "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": PAYLOAD_EXT, "valueCode": payload}]},
                "extension": [{"url": MAX_COUNT_EXT, "valuePositiveInt": max_count}]}
    if heartbeat:
        ch["extension"].append({"url": HEARTBEAT_EXT, "valueUnsignedInt": heartbeat})
    if channel == "rest-hook":
        ch["endpoint"] = endpoint
        ch["header"] = ["Authorization: Bearer hospital-secret"]
    sub = {"resourceType": "Subscription", "status": "requested", "reason": "住院通知 admissions",
           "criteria": BASE + topic, "channel": ch}
    if criteria:
        sub["_criteria"] = {"extension": [{"url": FILTER_EXT, "valueString": criteria}]}
    return sub


class Clock:
    def __init__(self, start: int = 1_800_000_000_000_000):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds: float):
        self.now += int(seconds * 1e6)


def _encounter(fhir, patient: str) -> str:
    r = fhir.post("/Encounter", json={"resourceType": "Encounter", "status": "in-progress",
                                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                                 "code": "IMP"}, "subject": {"reference": f"Patient/{patient}"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _drive(store, delivery: Delivery, rounds: int = 50) -> int:
    """Run the consumers, then delivery rounds until nothing is due; returns notifications tried."""
    store.run_consumers()
    tried = 0
    for _ in range(rounds):
        n = asyncio.run(delivery.step())
        tried += n
        store.run_consumers()  # the server's own Subscription updates
        if n == 0:
            break
    return tried


def test_topics_are_advertised_in_the_capability_statement(fhir, server):
    cs = fhir.get("/metadata").json()
    entry = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Subscription")
    topics = [e["valueCanonical"] for e in entry["extension"] if e["url"] == TOPIC_CANONICAL_EXT]
    assert BASE + "encounter-change" in topics and len(topics) == len(set(topics)) >= 10
    ops = {o["name"] for o in entry["operation"]}
    assert {"status", "events", "get-ws-binding-token"} <= ops
    listed = httpx.get(server + "/api/federation/topics").json()["topics"]
    assert sorted(t["url"] for t in listed) == sorted(topics)


BAD = [
    ({"criteria": BASE + "no-such-topic"}, 422, "Subscription.criteria"),
    ({"channel": {"type": "email", "endpoint": "mailto:a@b"}}, 422, "Subscription.channel.type"),
    ({"channel": {"type": "rest-hook", "endpoint": "ftp://x"}}, 400, "Subscription.channel.endpoint"),
    ({"_criteria": {"extension": [{"url": FILTER_EXT, "valueString": "Patient?name=x"}]}}, 400, "Subscription._criteria"),
    ({"_criteria": {"extension": [{"url": FILTER_EXT, "valueString": "Encounter?_count=1"}]}}, 400,
     "Subscription._criteria"),
    ({"_criteria": {"extension": [{"url": FILTER_EXT, "valueString": "Encounter?no-such-param=1"}]}}, 400, None),
    ({"channel": {"type": "rest-hook", "endpoint": "http://h/x", "header": ["no colon"]}}, 400,
     "Subscription.channel.header"),
]


def test_bad_subscriptions_are_refused(fhir):
    for change, code, where in BAD:
        body = {**_subscription("http://127.0.0.1:9/x"), **change}
        r = fhir.post("/Subscription", json=body)
        assert r.status_code == code, (change, r.text)
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        if where:
            assert outcome["issue"][0]["expression"] == [where], change
    assert fhir.get("/Subscription").json().get("total", 0) == 0


def test_rest_hook_in_order_through_an_hour_down(fhir, server_store):
    store = server_store
    hospital = Subscriber().start()
    clock = Clock()
    delivery = Delivery(store, store.settings, clock=clock, base_url="http://h/fhir")
    pa = fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    pb = fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    r = fhir.post("/Subscription", json=_subscription(hospital.url, criteria=f"Encounter?patient=Patient/{pa}"))
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    assert r.json()["status"] == "requested"
    _drive(store, delivery)
    assert hospital.kinds() == ["handshake"]
    assert hospital.received[0]["auth"] == "Bearer hospital-secret"
    assert fhir.get(f"/Subscription/{sub_id}").json()["status"] == "active"

    wanted = [_encounter(fhir, pa) for _ in range(3)]
    _encounter(fhir, pb)  # filtered out
    _drive(store, delivery)
    assert hospital.kinds()[1:] == ["event-notification"] * 3 and hospital.event_numbers() == [1, 2, 3]
    focus = [hospital.received[i]["body"]["entry"][1]["fullUrl"] for i in (1, 2, 3)]
    assert focus == [f"http://h/fhir/Encounter/{e}" for e in wanted]

    # The hospital's system is down for an hour while encounters keep coming.
    hospital.stop()
    wanted += [_encounter(fhir, pa) for _ in range(5)]
    attempts = 0
    store.run_consumers()
    for _ in range(120):  # an hour, in thirty-second steps
        clock.advance(30)
        attempts += asyncio.run(delivery.step())
    assert 7 <= attempts <= 14, attempts  # backed off: about a dozen tries in the hour, not one a second
    hospital.received = []
    hospital.start()
    clock.advance(601)  # at most one backoff period after it is back…
    _drive(store, delivery)
    assert hospital.event_numbers() == [4, 5, 6, 7, 8]  # …it has everything it missed, in order, once
    assert [r["body"]["entry"][1]["fullUrl"].rsplit("/", 1)[1] for r in hospital.received] == wanted[3:]

    # One AuditEvent per delivery attempt, failures included.
    with store.read() as tx:
        audits = tx.conn.execute(select(func.count()).select_from(resource)
                                 .where(resource.c.res_type == "AuditEvent")).scalar()
    assert audits == 1 + 3 + attempts + 5

    status = fhir.get(f"/Subscription/{sub_id}/$status").json()
    assert status["type"] == "searchset"
    params = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert params["events-since-subscription-start"]["valueString"] == "8"
    assert params["status"]["valueCode"] == "active" and params["type"]["valueCode"] == "query-status"
    events = fhir.get(f"/Subscription/{sub_id}/$events", params={"eventsSinceNumber": 6,
                                                                 "content": "full-resource"}).json()
    assert events["type"] == "history"
    assert [e["resource"]["id"] for e in events["entry"][1:]] == wanted[5:]
    hospital.stop()


def test_dead_letter_after_the_retry_budget(fhir, server_store):
    store = server_store
    hospital = Subscriber().start()
    clock = Clock()
    delivery = Delivery(store, store.settings, clock=clock)
    delivery.retry_s = 2 * 3600
    pa = fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    sub_id = fhir.post("/Subscription", json=_subscription(hospital.url, max_count=10)).json()["id"]
    _drive(store, delivery)
    hospital.stop()
    for _ in range(4):
        _encounter(fhir, pa)
    store.run_consumers()
    for _ in range(36):  # three hours
        clock.advance(300)
        asyncio.run(delivery.step())
    store.run_consumers()
    with store.read() as tx:
        dead = tx.conn.execute(select(subscription_dead_letter)).all()
    assert [(d.sub_id, d.first_event, d.last_event) for d in dead] == [(sub_id, 1, 4)]
    sub = fhir.get(f"/Subscription/{sub_id}").json()
    assert sub["status"] == "error" and "2 h" in sub["error"]
    # The events stay readable, and the client can restart the subscription.
    assert len(fhir.get(f"/Subscription/{sub_id}/$events", params={"eventsSinceNumber": 1}).json()["entry"]) == 5
    hospital.received = []
    hospital.start()
    sub["status"] = "requested"
    assert fhir.put(f"/Subscription/{sub_id}", json=sub).status_code == 200
    _drive(store, delivery)
    assert hospital.kinds() == ["handshake"]
    _encounter(fhir, pa)
    clock.advance(1)
    _drive(store, delivery)
    assert hospital.event_numbers() == [5]
    hospital.stop()


def test_a_refused_notification_is_dead_lettered_and_delivery_goes_on(fhir, server_store):
    store = server_store
    hospital = Subscriber().start()
    delivery = Delivery(store, store.settings, clock=Clock())
    pa = fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    fhir.post("/Subscription", json=_subscription(hospital.url))
    _drive(store, delivery)
    hospital.mode = "reject"
    _encounter(fhir, pa)
    _drive(store, delivery)
    hospital.mode = "ok"
    _encounter(fhir, pa)
    _drive(store, delivery)
    assert hospital.event_numbers() == [2]
    with store.read() as tx:
        dead = tx.conn.execute(select(subscription_dead_letter)).all()
    assert [(d.first_event, d.last_event) for d in dead] == [(1, 1)] and "400" in dead[0].reason
    hospital.stop()


def test_websocket_channel(fhir, server, server_store):
    import websockets.sync.client as ws_client

    from hutong.federation.events import EventBus

    store = server_store
    bus = EventBus(store, store.settings)  # the delivery worker's bus (database mode in tests)
    delivery = Delivery(store, store.settings, bus=bus)
    pa = fhir.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
    sub = fhir.post("/Subscription", json=_subscription("", channel="websocket", heartbeat=1)).json()
    store.run_consumers()
    params = fhir.get(f"/Subscription/{sub['id']}/$get-ws-binding-token").json()["parameter"]
    values = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in params}
    assert values["websocket-url"].startswith("ws://127.0.0.1:") and values["subscription"] == sub["id"]
    try:
        with ws_client.connect(values["websocket-url"], open_timeout=10) as ws:
            ws.send("bind-with-token nonsense")
            assert "invalid" in ws.recv(timeout=10)
        with ws_client.connect(values["websocket-url"], open_timeout=10) as ws:
            ws.send(f"bind-with-token {values['token']}")
            assert _param(orjson.loads(ws.recv(timeout=10)), "type") == "handshake"
            eid = _encounter(fhir, pa)
            _drive(store, delivery)
            kinds = []
            while "event-notification" not in kinds:
                got = orjson.loads(ws.recv(timeout=10))
                kinds.append(_param(got, "type"))
            assert got["entry"][1]["fullUrl"].endswith(f"/Encounter/{eid}")
            assert _param(got, "events-since-subscription-start") == "1"
            while "heartbeat" not in kinds:
                kinds.append(_param(orjson.loads(ws.recv(timeout=10)), "type"))
    finally:
        bus.close()
    assert fhir.get(f"/Subscription/{sub['id']}/$get-ws-binding-token").status_code == 200
    hook = fhir.post("/Subscription", json=_subscription("http://127.0.0.1:9/x")).json()
    store.run_consumers()
    assert fhir.get(f"/Subscription/{hook['id']}/$get-ws-binding-token").status_code == 422
