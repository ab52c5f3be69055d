"""The machinery every tracked piece of work shares: its Task, its row, its steps, its notices.

A piece of work (a consultation, a teleconsultation, a referral) is one FHIR ``Task``; its row in
``consult_item`` mirrors what the queues and statistics need. ``open_item`` creates both;
``move`` takes the work from one business status to another, refusing moves its state machine
(``vocab.TRANSITIONS``) has no arrow for, and refusing with 409 when someone else moved it first
(the row is claimed with a conditional update, so of two doctors accepting at once exactly one
wins). Each move is a ``consult_step`` row with its time and actor, and a new Task version.

Live updates and notifications go out after the commit (``Env.announce``, ``Env.notify``)
through the platform's event stream (``hutong.federation.events``) and a pluggable sender.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from hutong.consult import vocab
from hutong.consult.tables import consult_item, consult_notice, consult_step
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError
from hutong.core.ids import new_id

log = logging.getLogger("hutong.consult")


class Notifier:
    """Where notifications go besides the platform's own notice list (SMS, app push…).

    ``send(recipient, text, item)``; the default logs the recipient's type and the item only (no
    personal data). The ``consult_notifier`` setting picks ``log``, ``memory`` or ``file:/path``
    (``FileNotifier``: JSON lines for an SMS or app-push gateway to forward)."""

    def send(self, recipient: str, text: str, item: str) -> None:
        log.info("consult notice for %s about %s", recipient.split("/", 1)[0], item)


class MemoryNotifier(Notifier):
    """Keeps what was sent (tests)."""

    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []

    def send(self, recipient: str, text: str, item: str) -> None:
        self.sent.append((recipient, text, item))


class FileNotifier(Notifier):
    """Appends one JSON line per notice to a private file (mode 0600) for a gateway to forward."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()

    def send(self, recipient: str, text: str, item: str) -> None:
        import os

        import orjson

        line = orjson.dumps({"recipient": recipient, "item": item, "text": text}) + b"\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


@dataclass
class Env:
    """What the consult services need: the store, the settings, and where events go.

    ``publish(subject, payload)`` is the node's event bus (``EventBus.publish_sync``); None in
    tests that do not listen. Events raised inside a transaction wait in ``pending`` until
    ``flush`` after the commit, so nobody hears of a change that was rolled back."""

    store: object
    settings: object
    publish: Callable[[str, dict], object] | None = None
    notifier: Notifier = field(default_factory=Notifier)
    triager: object = None
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def pending(self) -> list[tuple[str, dict]]:
        """Events of this thread's current transaction (each request runs in its own thread)."""
        if not hasattr(self._local, "pending"):
            self._local.pending = []
        return self._local.pending

    @property
    def outbox(self) -> list[tuple[str, str, str]]:
        if not hasattr(self._local, "outbox"):
            self._local.outbox = []
        return self._local.outbox

    def setting(self, name: str, default):
        return getattr(self.settings, name, default)

    def announce(self, item: str, payload: dict) -> None:
        self.pending.append((f"consult.item.{item}", payload))

    def flush(self) -> None:
        """Send what the last transaction announced (call after it committed)."""
        pending, outbox = list(self.pending), list(self.outbox)
        self.pending.clear()
        self.outbox.clear()
        for recipient, text, item in outbox:
            try:
                self.notifier.send(recipient, text, item)
            except Exception:  # noqa: BLE001 - a failed SMS must not undo a committed referral
                log.exception("consult notifier failed for item %s", item)
        if self.publish is None:
            return
        for subject, payload in pending:
            try:
                self.publish(subject, payload)
            except Exception:  # noqa: BLE001 - the change is committed; pollers still see it
                log.exception("consult event %s not published", subject)


def subject_token(ref: str) -> str:
    """An event-subject token for a reference (``Patient/p1`` → ``Patient-p1``)."""
    return ref.replace("/", "-").replace(".", "_")


def date_of(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, tz=UTC).strftime("%Y-%m-%d")


def retain_until(ts_us: int) -> int:
    """The earliest time a record made at ``ts_us`` may be purged (15 years later)."""
    dt = datetime.fromtimestamp(ts_us / 1e6, tz=UTC)
    try:
        later = dt.replace(year=dt.year + vocab.RETENTION_YEARS)
    except ValueError:  # 29 February
        later = dt.replace(year=dt.year + vocab.RETENTION_YEARS, day=28)
    return int(later.timestamp() * 1e6)


def status_concept(status: str) -> dict:
    zh, _en = vocab.STATUS_LABELS[status]
    return {"coding": [{"system": vocab.STATUS_SYSTEM, "code": status, "display": zh}], "text": zh}


def new_task(*, kind: str, status: str, title: str, patient: str, requester: str, owner: str | None,
             at_us: int, urgent: bool = False, subkind: str | None = None, department: str | None = None,
             focus: str | None = None, inputs: list | None = None, due_us: int | None = None,
             red_flags: list | None = None) -> dict:
    """A Task for a new piece of work (not yet stored)."""
    code = {"coding": [{"system": vocab.KIND_SYSTEM, "code": kind, "display": vocab.KINDS[kind][0]}],
            "text": vocab.KINDS[kind][0]}
    if kind == "teleconsult" and subkind:
        code["coding"].append({"system": vocab.KIND_SYSTEM, "code": subkind, "display": vocab.TELE_KINDS[subkind][0]})
        code["text"] = vocab.TELE_KINDS[subkind][0]
    task = {
        "resourceType": "Task",
        "id": new_id(),
        "extension": [{"url": vocab.EXT_RETAIN, "valueDate": date_of(retain_until(at_us))}],
        "status": vocab.TASK_STATUS[status],
        "businessStatus": status_concept(status),
        "intent": "order",
        "priority": "stat" if urgent else "routine",
        "code": code,
        "description": title[:200],
        "for": {"reference": patient},
        "authoredOn": instant(at_us),
        "lastModified": instant(at_us),
        "requester": {"reference": requester},
    }
    for flag in red_flags or ():
        task["extension"].append({"url": vocab.EXT_URGENT, "valueString": flag})
    if owner:
        task["owner"] = {"reference": owner}
    if department:
        task["performerType"] = [{"coding": [{"system": vocab.DEPARTMENT_SYSTEM, "code": department}]}]
    if focus:
        task["focus"] = {"reference": focus}
    if due_us:
        task["restriction"] = {"period": {"end": instant(due_us)}}
    if inputs:
        task["input"] = inputs
    return task


def text_input(label: str, value: str) -> dict:
    return {"type": {"text": label}, "valueString": value}


def ref_input(label: str, ref: str) -> dict:
    return {"type": {"text": label}, "valueReference": {"reference": ref}}


def open_item(tx, task: dict, *, kind: str, status: str, patient: str, requester: str, title: str, at_us: int,
              actor: str, subkind: str | None = None, requester_org: str | None = None,
              target_org: str | None = None, department: str | None = None, owner: str | None = None,
              request: str | None = None, parent: str | None = None, urgent: bool = False,
              due_us: int | None = None, note: str | None = None) -> str:
    """Store a new piece of work: its Task, its row and its first step. Returns the Task id."""
    tid = tx.update("Task", task["id"], task).stored.res_id
    tx.conn.execute(insert(consult_item).values(
        id=tid, tenant=tx.tenant, kind=kind, subkind=subkind, status=status, patient=patient, requester=requester,
        requester_org=requester_org, target_org=target_org, department=department, owner=owner, request=request,
        parent=parent, title=title[:200], urgent=urgent, created_us=at_us, updated_us=at_us, due_us=due_us,
        escalations=0, breached=False, retain_until_us=retain_until(at_us)))
    step(tx, tid, status, "open", actor, note, at_us)
    return tid


def step(tx, item: str, status: str, action: str, actor: str, note: str | None, at_us: int) -> None:
    tx.conn.execute(insert(consult_step).values(item=item, status=status, action=action, actor=actor,
                                                note=(note or None) and note[:2000], ts_us=at_us))


def item_row(tx, item_id: str):
    """The row of a piece of work (404 when unknown)."""
    if not isinstance(item_id, str) or len(item_id) > 64:
        raise FhirError(404, "not-found", "unknown consultation")
    row = tx.conn.execute(select(consult_item).where(consult_item.c.id == item_id)).first()
    if row is None:
        raise FhirError(404, "not-found", f"事项不存在 (unknown consultation, referral or teleconsultation {item_id})")
    return row


def move(tx, row, to: str, *, actor: str, action: str, at_us: int, note: str | None = None,
         values: dict | None = None, edit: Callable[[dict], None] | None = None):
    """Take ``row``'s work to status ``to`` (409 when its workflow forbids it or it moved meanwhile).

    ``values`` are further column values; ``edit(task)`` changes the Task before it is saved."""
    allowed = vocab.TRANSITIONS[vocab.workflow_of(row.kind)].get(row.status, frozenset())
    if to != row.status and to not in allowed:
        raise FhirError(409, "business-rule",
                        f"当前状态“{vocab.status_label(row.status)}”不能变为“{vocab.status_label(to)}” "
                        f"(a {row.kind} cannot move from {row.status} to {to})")
    cols = {"status": to, "updated_us": at_us, **(values or {})}
    if to in vocab.FINAL or to == "completed":
        cols.setdefault("closed_us", at_us)
    done = tx.conn.execute(update(consult_item).where(consult_item.c.id == row.id,
                                                      consult_item.c.status == row.status,
                                                      consult_item.c.updated_us == row.updated_us).values(**cols))
    if done.rowcount != 1:
        raise FhirError(409, "conflict", "该事项刚被他人处理，请刷新 (someone else changed it first: reload)")
    stored = tx.read_current("Task", row.id)
    task = stored.resource
    task["status"] = vocab.TASK_STATUS[to]
    task["businessStatus"] = status_concept(to)
    task["lastModified"] = instant(at_us)
    if "owner" in cols:
        if cols["owner"]:
            task["owner"] = {"reference": cols["owner"]}
        elif row.target_org:
            task["owner"] = {"reference": row.target_org}
        else:
            task.pop("owner", None)
    if "due_us" in cols:
        if cols["due_us"]:
            task["restriction"] = {"period": {"end": instant(cols["due_us"])}}
        else:
            task.pop("restriction", None)
    if to in ("declined", "no-slot", "cancelled") and note:
        task["statusReason"] = {"text": note[:500]}
    if edit is not None:
        edit(task)
    tx.update("Task", row.id, task, if_match=stored.version_id)
    step(tx, row.id, to, action, actor, note, at_us)
    return tx.conn.execute(select(consult_item).where(consult_item.c.id == row.id)).first()


def notify(env: Env, tx, recipients, item: str, text: str, at_us: int) -> None:
    """A notice to each recipient (kept in ``consult_notice``, sent after commit, live on the stream)."""
    for recipient in dict.fromkeys(r for r in recipients if r):
        tx.conn.execute(insert(consult_notice).values(recipient=recipient, item=item, text=text[:1000], ts_us=at_us))
        env.outbox.append((recipient, text, item))
        env.pending.append((f"consult.notice.{subject_token(recipient)}", {"item": item, "text": text}))


def steps(tx, item: str) -> list[dict]:
    """The timeline of a piece of work, oldest first."""
    s = consult_step.c
    rows = tx.conn.execute(select(s.status, s.action, s.actor, s.note, s.ts_us).where(s.item == item).order_by(s.id))
    return [{"status": r.status, "label": vocab.status_label(r.status), "action": r.action, "actor": r.actor,
             "note": r.note, "at": instant(r.ts_us), "ts_us": r.ts_us} for r in rows]


def notices(store, recipient: str, after: int = 0, limit: int = 50) -> list[dict]:
    """Notices for ``recipient`` newer than ``after`` (the notice id), newest last."""
    n = consult_notice.c
    with store.read() as tx:
        rows = tx.conn.execute(select(n.id, n.item, n.text, n.ts_us).where(n.recipient == recipient, n.id > after)
                               .order_by(n.id).limit(limit)).all()
    return [{"id": r.id, "item": r.item, "text": r.text, "at": instant(r.ts_us)} for r in rows]


def row_dict(row, at_us: int | None = None) -> dict:
    """A row as the API shows it, with the waiting time so far (seconds)."""
    now = at_us or now_us()
    d = dict(row._mapping)
    end = d["first_response_us"] or d["closed_us"] or now
    d["waited_s"] = max(0, round((end - d["created_us"]) / 1e6))
    d["status_label"] = vocab.status_label(d["status"])
    d["kind_label"] = vocab.KINDS[d["kind"]][0]
    if d["kind"] == "teleconsult" and d["subkind"]:
        d["kind_label"] = vocab.TELE_KINDS[d["subkind"]][0]
    d["overdue"] = bool(d["due_us"] and d["due_us"] < now and d["status"] not in vocab.FINAL
                        and d["status"] not in ("completed", "closed"))
    for k in ("created_us", "updated_us", "first_response_us", "due_us", "closed_us"):
        d[k.replace("_us", "")] = instant(d[k]) if d[k] else None
    del d["retain_until_us"]
    d["retain_until"] = date_of(row.retain_until_us)
    return d


def run(env: Env, fn, tenant: str | None = None):
    """``fn(tx)`` in one write transaction; its events go out after the commit, or never."""
    try:
        with env.store.write(tenant) as tx:
            result = fn(tx)
    except BaseException:
        env.pending.clear()
        env.outbox.clear()
        raise
    env.flush()
    return result


def actor_kind(ref: str) -> str:
    return ref.split("/", 1)[0] if isinstance(ref, str) and "/" in ref else ""
