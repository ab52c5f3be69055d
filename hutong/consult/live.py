"""Messages in real time: server-sent events of one conversation, fed by the platform's event stream.

``GET /api/consult/items/{id}/events`` opens an SSE stream. It first replays the messages after
``Last-Event-ID`` (or ``?after=``) from the database, then forwards what the event bus
(``hutong.federation.events``: NATS JetStream across nodes, or the database across the worker
processes of one node) delivers for ``consult.item.{id}``, whichever worker the sender wrote to.
A message's SSE id is its number in the conversation, so a reconnecting browser resumes where it
left off and never sees one twice. Clients without SSE poll ``GET …/messages?after=N``.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from hutong.consult import consultation
from hutong.federation.events import event_bus

HEARTBEAT_S = 15.0
MAX_STREAM_S = 3600.0  # browsers reconnect (with Last-Event-ID) after this


def _frame(event: str, data: dict, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return (head + f"event: {event}\ndata: ").encode() + orjson.dumps(data) + b"\n\n"


def stream(request: Request, item: str, after: int) -> StreamingResponse:
    """The SSE response for one conversation (the caller was checked by the route)."""
    node = request.app.state.node
    store = request.app.state.store
    bus = event_bus(node)

    async def events():
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)

        async def on_event(event):
            try:
                queue.put_nowait(event.payload)
            except asyncio.QueueFull:  # a stalled client: it catches up from the database on reconnect
                pass

        sub = await bus.subscribe(f"consult.item.{item}", on_event)
        sent = after
        try:
            yield b"retry: 2000\n\n"
            for msg in await asyncio.to_thread(consultation.messages, store, item, after):
                sent = max(sent, msg["seq"])
                yield _frame("message", msg, msg["seq"])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + MAX_STREAM_S
            while loop.time() < deadline:
                if await request.is_disconnected():
                    break
                try:
                    payload = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if payload.get("type") == "message":
                    seq = int(payload.get("seq", 0))
                    if seq <= sent:
                        continue
                    if seq > sent + 1:  # a gap (events overtook each other): read it from the record
                        for msg in await asyncio.to_thread(consultation.messages, store, item, sent):
                            if msg["seq"] < seq:
                                sent = msg["seq"]
                                yield _frame("message", msg, msg["seq"])
                    sent = seq
                    yield _frame("message", payload, seq)
                else:
                    yield _frame(payload.get("type", "status"), payload)
        finally:
            await sub.unsubscribe()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
