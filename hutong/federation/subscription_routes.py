"""Subscriptions over HTTP: create/update with the backport's checks, ``$status``, ``$events``,
``$get-ws-binding-token`` (rows of the one FHIR route table), the websocket channel, the topic list.

Websocket protocol (backport IG): ``$get-ws-binding-token`` gives a token and the websocket URL;
the client connects and sends ``bind-with-token <token>``; the server answers a ``handshake``
Bundle per subscription the token binds, then sends ``event-notification`` Bundles as events are
matched and ``heartbeat`` Bundles every heartbeat period. A client that was away reads what it
missed with ``$events`` (``eventsSinceNumber``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets

import orjson
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from sqlalchemy import delete, insert, select

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, bad_request, not_found
from hutong.federation.envelope import token as subject_token
from hutong.federation.notify import notification_bundle, read_events
from hutong.federation.subscriptions import check_filters, parse_subscription
from hutong.federation.tables import subscription_state, subscription_ws_token
from hutong.federation.topics import TOPICS, topic_extensions
from hutong.fhir.rest import FhirResult, _create, _update
from hutong.fhir.routes import Call, Interaction

_OPS = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
WS_PATH = "/api/federation/subscriptions/ws"
TOKEN_TTL_S = 3600
MAX_EVENTS = 1000


# ------------------------------------------------------------------ create / update
def _checked(call: Call) -> Call:
    resource = call.req.body
    if not isinstance(resource, dict) or resource.get("resourceType") != "Subscription":
        raise bad_request("the body must be a Subscription resource", "Subscription")
    spec = parse_subscription(resource)
    check_filters(call.tx, spec)
    if spec.status not in ("requested", "off"):
        # The server sets active/error (after the handshake, after delivery failures); a client asks.
        resource["status"] = "requested"
    call.params = {**call.params, "type": "Subscription"}
    return call


def create_subscription(call: Call) -> FhirResult:
    """POST Subscription: the backport's checks, then an ordinary create (status ``requested``)."""
    return _create(_checked(call))


def update_subscription(call: Call) -> FhirResult:
    """PUT Subscription/{id}: the same checks; a client sets ``requested`` to restart, ``off`` to stop."""
    return _update(_checked(call))


# ------------------------------------------------------------------ operations
def _state(call: Call, sub_id: str):
    s = subscription_state.c
    row = call.tx.conn.execute(select(subscription_state).where(s.sub_id == sub_id)).first()
    if row is None:
        stored = call.tx.read("Subscription", sub_id)
        if stored is None or stored.deleted:
            raise not_found(f"Subscription/{sub_id[:64]} is not known")
        raise FhirError(409, "transient", f"Subscription/{sub_id[:64]} is being activated; retry in a moment")
    tenant = call.caller.tenant
    if tenant is not None and tenant != call.store.settings.default_tenant and tenant != row.tenant:
        raise not_found(f"Subscription/{sub_id[:64]} is not known")  # another tenant's: not revealed
    return row


def _ids(call: Call) -> list[str]:
    if call.res_id:
        return [call.res_id]
    ids = [i for k, v in call.req.query if k == "id" for i in v.split(",") if i]
    if not ids:
        raise bad_request("id is required (Subscription/$status?id=…)", "id")
    return ids[:100]


def status_op(call: Call) -> FhirResult:
    """``$status``: a searchset Bundle of each subscription's status (``query-status``)."""
    entries = []
    for sub_id in _ids(call):
        row = _state(call, sub_id)
        bundle = notification_bundle(call.tx, row, "query-status", call.base_url, payload="empty")
        entries.append({"fullUrl": bundle["entry"][0]["fullUrl"], "resource": bundle["entry"][0]["resource"],
                        "search": {"mode": "match"}})
    return FhirResult(200, {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


def events_op(call: Call) -> FhirResult:
    """``$events``: stored events by number (``eventsSinceNumber``, ``eventsUntilNumber``, ``content``)."""
    row = _state(call, call.res_id)
    args = dict(call.req.query)
    try:
        since = int(args.get("eventsSinceNumber", max(1, row.events - 99)))
        until = int(args.get("eventsUntilNumber", row.events))
    except ValueError as exc:
        raise bad_request("eventsSinceNumber and eventsUntilNumber must be integers") from exc
    content = args.get("content", row.payload)
    if content not in ("empty", "id-only", "full-resource"):
        raise bad_request("content must be empty, id-only or full-resource", "content")
    since = max(1, since)
    until = min(until, row.events, since + MAX_EVENTS - 1)
    events = read_events(call.tx.conn, row.sub_id, since, until) if until >= since else []
    return FhirResult(200, notification_bundle(call.tx, row, "query-event", call.base_url, events, payload=content))


def binding_token_op(call: Call) -> FhirResult:
    """``$get-ws-binding-token``: a token to bind a websocket to websocket subscriptions."""
    rows = [_state(call, sub_id) for sub_id in _ids(call)]
    for row in rows:
        if row.channel != "websocket":
            raise FhirError(422, "processing", f"Subscription/{row.sub_id} does not use the websocket channel")
    raw = secrets.token_urlsafe(32)
    expires = now_us() + TOKEN_TTL_S * 1_000_000
    with call.store.write() as tx:
        tx.conn.execute(delete(subscription_ws_token).where(subscription_ws_token.c.expires_us < now_us()))
        tx.conn.execute(insert(subscription_ws_token).values(
            token_hash=hashlib.sha256(raw.encode()).hexdigest(), sub_ids=orjson.dumps([r.sub_id for r in rows]).decode(),
            tenant=call.caller.tenant, expires_us=expires))
    base = call.base_url[: -len("/fhir")] if call.base_url.endswith("/fhir") else call.base_url
    ws_url = ("wss://" + base[len("https://"):]) if base.startswith("https://") else "ws://" + base.split("://", 1)[-1]
    return FhirResult(200, {"resourceType": "Parameters", "parameter": [
        {"name": "token", "valueString": raw},
        {"name": "expiration", "valueDateTime": instant(expires)},
        {"name": "subscription", "valueString": ",".join(r.sub_id for r in rows)},
        {"name": "websocket-url", "valueUrl": ws_url + WS_PATH}]})


_TOPICS_EXT = topic_extensions()

FHIR_INTERACTIONS = [
    Interaction("POST", "Subscription", "create", create_subscription, "Subscription.c", tx="write", body="json",
                summary="Create a topic-based Subscription (Subscriptions Backport)", capability="federation",
                resource_extensions=_TOPICS_EXT),
    Interaction("PUT", "Subscription/{id}", "update", update_subscription, "Subscription.u", tx="write", body="json",
                summary="Update a Subscription (status requested restarts it, off stops it)", capability="federation"),
    Interaction("GET", "Subscription/{id}/$status", "operation", status_op, "Subscription.r", operation="status",
                definition=_OPS + "backport-subscription-status", summary="A subscription's status",
                capability="federation"),
    Interaction("GET", "Subscription/$status", "operation", status_op, "Subscription.r", operation="status",
                definition=_OPS + "backport-subscription-status", summary="Subscriptions' status (?id=…)",
                capability="federation"),
    Interaction("GET", "Subscription/{id}/$events", "operation", events_op, "Subscription.r", operation="events",
                definition=_OPS + "backport-subscription-events",
                summary="Stored events of a subscription by number", capability="federation"),
    Interaction("GET", "Subscription/{id}/$get-ws-binding-token", "operation", binding_token_op, "Subscription.r",
                operation="get-ws-binding-token", definition=_OPS + "backport-subscription-get-ws-binding-token",
                summary="A token to bind a websocket", capability="federation", in_bundle=False),
    Interaction("POST", "Subscription/{id}/$get-ws-binding-token", "operation", binding_token_op, "Subscription.r",
                operation="get-ws-binding-token", definition=_OPS + "backport-subscription-get-ws-binding-token",
                summary="A token to bind a websocket", capability="federation", in_bundle=False),
]


# ------------------------------------------------------------------ HTTP: topics and the websocket
router = APIRouter(tags=["subscriptions 订阅"])


@router.get("/api/federation/topics", summary="订阅主题 / the subscription topics this node offers")
def topics(caller: Caller = Depends(permit(PUBLIC))):
    return {"topics": [t.as_dict() for t in TOPICS]}


async def _ws_by_token(websocket: WebSocket) -> None:
    """The websocket's authorisation is its binding token (checked after connecting)."""


_ws_by_token.permission = PUBLIC  # type: ignore[attr-defined]


def _bind(store, raw: str) -> tuple[list, str | None]:
    t = subscription_ws_token.c
    s = subscription_state.c
    with store.read() as tx:
        row = tx.conn.execute(select(subscription_ws_token).where(
            t.token_hash == hashlib.sha256(raw.encode()).hexdigest(), t.expires_us > now_us())).first()
        if row is None:
            return [], None
        subs = tx.conn.execute(select(subscription_state).where(s.sub_id.in_(orjson.loads(row.sub_ids)))).all()
    return subs, row.tenant


@router.websocket(WS_PATH)
async def subscription_socket(websocket: WebSocket, _auth=Depends(_ws_by_token)):
    node = websocket.app.state.node
    store = node.store
    await websocket.accept()
    try:
        first = await asyncio.wait_for(websocket.receive_text(), 30)
    except (TimeoutError, WebSocketDisconnect):
        return await _close(websocket, 1008)
    verb, _, raw = first.strip().partition(" ")
    subs, _tenant = await asyncio.to_thread(_bind, store, raw.strip()) if verb == "bind-with-token" else ([], None)
    if not subs:
        await websocket.send_text(orjson.dumps({"error": "invalid or expired binding token"}).decode())
        return await _close(websocket, 1008)
    base = str(websocket.base_url).rstrip("/").replace("ws://", "http://").replace("wss://", "https://") + "/fhir"
    send_lock = asyncio.Lock()

    async def send(sub_id: str, kind: str, first_n: int = 0, last_n: int = 0) -> None:
        def build():
            with store.read() as tx:
                row = tx.conn.execute(select(subscription_state).where(subscription_state.c.sub_id == sub_id)).first()
                if row is None:
                    return None
                events = read_events(tx.conn, sub_id, first_n, last_n) if first_n else []
                return orjson.dumps(notification_bundle(tx, row, kind, base, events)).decode()
        text = await asyncio.to_thread(build)
        if text is not None:
            async with send_lock:
                await websocket.send_text(text)

    from hutong.federation.events import event_bus

    bus = event_bus(node)
    listeners = []
    by_id = {row.sub_id: row for row in subs}
    for row in subs:
        await send(row.sub_id, "handshake")

        async def on_events(event, row=row):
            a, b = int(event.payload["from"]), int(event.payload["to"])
            for start in range(a, b + 1, row.max_count):
                await send(row.sub_id, "event-notification", start, min(b, start + row.max_count - 1))

        listeners.append(await bus.subscribe(f"subscriptions.ws.{subject_token(row.sub_id)}", on_events))

    async def heartbeats():
        periods = {i: r.heartbeat_s for i, r in by_id.items() if r.heartbeat_s}
        if not periods:
            return
        while True:
            await asyncio.sleep(min(periods.values()))
            for sub_id in periods:
                await send(sub_id, "heartbeat")

    beat = asyncio.create_task(heartbeats())
    try:
        while True:
            message = await websocket.receive_text()  # the client may send pings; nothing else is expected
            if message.strip() == "ping":
                await websocket.send_text("pong")
    except WebSocketDisconnect:
        pass
    finally:
        beat.cancel()
        for sub in listeners:
            await sub.unsubscribe()


async def _close(websocket: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code)
