"""What goes on the wire: subjects, event ids and the two message shapes.

- A **change event** (the relay, subject ``{prefix}.change.{tenant}.{type}``): the outbox row
  without content, ``{"node", "seq", "prev", "tenant", "type", "id", "version", "op", "ts_us"}``.
  Consumers read the resource from the store (or the FHIR API) with their own permissions.
- A **replication envelope** (city → province, province → city; subject
  ``{prefix}.federation.up.{tenant}.{type}`` on the shared broker, or a JSON array over HTTPS): the
  same fields plus ``resource``, the version's JSON (null for a deletion).

``id`` of either is ``{node}:{seq}``: the JetStream ``Nats-Msg-Id`` (the broker drops a repeat
within its duplicate window) and the key receivers de-duplicate on after longer outages. ``prev``
is the seq of the previous message of the same feed, so a receiver can tell a gap from a repeat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from hutong.store.outbox import ChangeEvent

_BAD_TOKEN = re.compile(r"[^A-Za-z0-9_\-]")


def token(word: str) -> str:
    """A subject token for ``word`` (tenants may contain characters NATS reserves: ``. * >``)."""
    return _BAD_TOKEN.sub("_", word) or "_"


def change_subject(prefix: str, tenant: str, res_type: str) -> str:
    return f"{prefix}.change.{token(tenant)}.{res_type}"


def up_subject(prefix: str, tenant: str, res_type: str) -> str:
    return f"{prefix}.federation.up.{token(tenant)}.{res_type}"


def app_subject(prefix: str, subject: str) -> str:
    return f"{prefix}.app.{subject}"


def event_id(node: str, seq: int) -> str:
    return f"{node}:{seq}"


@dataclass(frozen=True)
class Envelope:
    """One change of one resource from one node, with the version's content when replicated."""

    node: str
    seq: int
    prev: int
    tenant: str
    res_type: str
    res_id: str
    version_id: int
    op: str
    ts_us: int
    resource: str | None = None  # JSON text of the version (None: deletion, or not shipped)

    @property
    def id(self) -> str:
        return event_id(self.node, self.seq)

    @classmethod
    def of(cls, node: str, prev: int, event: ChangeEvent, content: str | None = None) -> Envelope:
        return cls(node, event.seq, prev, event.tenant, event.res_type, event.res_id, event.version_id, event.op,
                   event.ts_us, content)

    def head(self) -> dict:
        return {"node": self.node, "seq": self.seq, "prev": self.prev, "tenant": self.tenant, "type": self.res_type,
                "id": self.res_id, "version": self.version_id, "op": self.op, "ts_us": self.ts_us}

    def change_bytes(self) -> bytes:
        """The change-event message (no content)."""
        return orjson.dumps(self.head())

    def replication_bytes(self) -> bytes:
        """The replication message: the head and the version's JSON, spliced in without re-parsing."""
        head = orjson.dumps(self.head())
        body = self.resource.encode() if self.resource is not None else b"null"
        return head[:-1] + b',"resource":' + body + b"}"

    @classmethod
    def parse(cls, data: bytes | dict) -> Envelope:
        """An envelope from its JSON (ValueError when malformed)."""
        doc = orjson.loads(data) if isinstance(data, (bytes, str)) else data
        if not isinstance(doc, dict):
            raise ValueError("an envelope must be a JSON object")
        try:
            res = doc.get("resource")
            content = None if res is None else orjson.dumps(res).decode()
            env = cls(str(doc["node"]), int(doc["seq"]), int(doc.get("prev", 0)), str(doc["tenant"]), str(doc["type"]),
                      str(doc["id"]), int(doc["version"]), str(doc["op"]), int(doc["ts_us"]), content)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed envelope: {exc}") from exc
        if env.op not in ("create", "update", "delete"):
            raise ValueError(f"malformed envelope: op {env.op!r}")
        if env.op != "delete" and content is None:
            raise ValueError("malformed envelope: a create or update carries its resource")
        return env


def envelopes_from_outbox(node: str, after: int, rows: list[tuple[ChangeEvent, str | None]]) -> list[Envelope]:
    """Envelopes for outbox rows read after position ``after`` (``prev`` chains through them)."""
    out = []
    prev = after
    for event, content in rows:
        out.append(Envelope.of(node, prev, event, content))
        prev = event.seq
    return out
