"""The consulting side's availability: a Schedule per doctor (or institution) and its Slots.

``publish_slots`` opens free Slots; ``free_slots`` lists them; ``take_slot`` books one inside the
booking's transaction (free → busy, with the version checked, so two bookings of one slot cannot
both succeed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hutong.core.clock import SHANGHAI, instant, to_us
from hutong.core.errors import FhirError, bad_request


def publish_slots(store, actor: str, start_local: str, count: int, minutes: int = 30,
                  service: str | None = None) -> dict:
    """A Schedule for ``actor`` (PractitionerRole/… or Organization/…) with ``count`` free Slots of
    ``minutes`` from ``start_local`` (``YYYY-MM-DDTHH:MM``, Asia/Shanghai). Returns ids."""
    if not 1 <= count <= 200 or not 5 <= minutes <= 480:
        raise bad_request("count must be 1..200 and minutes 5..480")
    try:
        start = datetime.fromisoformat(start_local)
    except ValueError as exc:
        raise bad_request("start must be YYYY-MM-DDTHH:MM", "start") from exc
    if start.tzinfo is None:
        start = start.replace(tzinfo=SHANGHAI)
    with store.write() as tx:
        found = tx.search_ids("Schedule", [("actor", actor), ("active", "true")], limit=1)
        if found:
            schedule = found[0]
        else:
            sched = {"resourceType": "Schedule", "active": True, "actor": [{"reference": actor}],
                     "comment": "远程医疗/转诊号源"}
            if service:
                sched["serviceType"] = [{"text": service}]
            schedule = tx.create(sched).stored.res_id
        slots = []
        for i in range(count):
            a = start + timedelta(minutes=i * minutes)
            b = a + timedelta(minutes=minutes)
            slot = {"resourceType": "Slot", "schedule": {"reference": f"Schedule/{schedule}"}, "status": "free",
                    "start": instant(to_us(a)), "end": instant(to_us(b))}
            slots.append(tx.create(slot).stored.res_id)
    return {"schedule": schedule, "slots": slots}


def free_slots(store, actor: str, limit: int = 50) -> list[dict]:
    """Free Slots of ``actor``'s schedule, earliest first."""
    with store.read() as tx:
        out = []
        for sid in tx.search_ids("Schedule", [("actor", actor), ("active", "true")], limit=5):
            for slot_id in tx.search_ids("Slot", [("schedule", f"Schedule/{sid}"), ("status", "free")], limit=500):
                s = tx.read("Slot", slot_id)
                if s is not None and not s.deleted:
                    out.append({"id": f"Slot/{slot_id}", "start": s.resource["start"], "end": s.resource["end"]})
    return sorted(out, key=lambda s: s["start"])[:limit]


def take_slot(tx, slot_ref: str) -> tuple[str, str]:
    """Mark a free Slot busy; returns its start and end (409 when taken)."""
    if not isinstance(slot_ref, str) or not slot_ref.startswith("Slot/"):
        raise bad_request("slot must be a Slot reference", "slot")
    stored = tx.read("Slot", slot_ref.split("/", 1)[1])
    if stored is None or stored.deleted:
        raise FhirError(404, "not-found", f"号源不存在 ({slot_ref})")
    slot = stored.resource
    if slot.get("status") != "free":
        raise FhirError(409, "conflict", "该号源已被占用 (the slot is taken)")
    slot["status"] = "busy"
    tx.update("Slot", slot["id"], slot, if_match=stored.version_id)
    return slot["start"], slot["end"]
