"""Notification bundles of the R4 Subscriptions Backport: ``history`` Bundles whose first entry is
the subscription status (a ``Parameters`` resource, profile ``backport-subscription-status-r4``),
followed by the events' resources (``full-resource``), their references (``id-only``) or nothing
(``empty``)."""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import select

from hutong.core.clock import instant, now_us
from hutong.federation.tables import subscription_event
from hutong.federation.topics import BACKPORT

STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
_METHOD = {"create": ("POST", "201"), "update": ("PUT", "200"), "delete": ("DELETE", "204")}


def read_events(conn, sub_id: str, first: int, last: int) -> list:
    """The subscription's events numbered ``first``..``last`` (inclusive), in order."""
    e = subscription_event.c
    return conn.execute(select(subscription_event).where(e.sub_id == sub_id, e.event_number >= first,
                                                         e.event_number <= last).order_by(e.event_number)).all()


def status_parameters(sub, kind: str, *, events: list = (), error: str | None = None,
                      payload: str | None = None) -> dict:
    """The ``Parameters`` status resource for subscription state row ``sub``."""
    status = {"requested": "requested", "active": "active", "error": "error", "off": "off"}.get(sub.status, "off")
    params: list[dict] = [
        {"name": "subscription", "valueReference": {"reference": f"Subscription/{sub.sub_id}"}},
        {"name": "topic", "valueCanonical": sub.topic},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(sub.events)},
    ]
    payload = payload or sub.payload
    for ev in events:
        parts = [{"name": "event-number", "valueString": str(ev.event_number)},
                 {"name": "timestamp", "valueInstant": instant(ev.ts_us)}]
        if payload != "empty":
            parts.append({"name": "focus", "valueReference": {"reference": f"{ev.res_type}/{ev.res_id}"}})
        params.append({"name": "notification-event", "part": parts})
    if error:
        params.append({"name": "error", "valueCodeableConcept": {"text": error[:500]}})
    return {"resourceType": "Parameters", "id": uuid.uuid4().hex, "meta": {"profile": [STATUS_PROFILE]},
            "parameter": params}


def notification_bundle(tx, sub, kind: str, base_url: str, events: list = (), *, payload: str | None = None,
                        error: str | None = None) -> dict:
    """A notification (``handshake``, ``heartbeat``, ``event-notification``, ``query-event``…)."""
    payload = payload or sub.payload
    status = status_parameters(sub, kind, events=events, error=error, payload=payload)
    entries = [{"fullUrl": f"urn:uuid:{status['id']}", "resource": status,
                "request": {"method": "GET", "url": f"Subscription/{sub.sub_id}/$status"},
                "response": {"status": "200"}}]
    if payload != "empty":
        for ev in events:
            method, code = _METHOD.get(ev.op, ("PUT", "200"))
            entry: dict = {"fullUrl": f"{base_url}/{ev.res_type}/{ev.res_id}",
                           "request": {"method": method, "url": f"{ev.res_type}/{ev.res_id}"},
                           "response": {"status": code}}
            if payload == "full-resource" and ev.op != "delete":
                content = _version_content(tx, ev.res_type, ev.res_id, ev.version_id)
                if content is not None:
                    entry["resource"] = orjson.loads(content)
            entries.append(entry)
    return {"resourceType": "Bundle", "id": uuid.uuid4().hex, "type": "history",
            "timestamp": instant(now_us()), "entry": entries}


def _version_content(tx, res_type: str, res_id: str, version_id: int) -> str | None:
    from hutong.core.errors import FhirError

    try:
        return tx.vread(res_type, res_id, str(version_id)).content
    except FhirError:
        return None
