"""The change log (transactional outbox) and its consumers.

Every write transaction inserts one ``change_event`` row per changed resource in the same
database transaction as the change itself, so an event exists if and only if the change
committed. A consumer reads events after its recorded position and runs its handler inside a
write transaction that also advances the position: the handler's database effects and the new
position commit together, so a crash between them loses nothing and repeats nothing visible.
Effects outside the database (sending to NATS, webhooks) must be idempotent on ``seq``.

On PostgreSQL, writers take a transaction-scoped advisory lock just before inserting their
events, which makes sequence order equal to commit order; on SQLite writers are serialised anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, select, update

from hutong.store import schema

if TYPE_CHECKING:
    from hutong.store.store import Store, Tx


@dataclass(frozen=True)
class ChangeEvent:
    """One committed change to one resource."""

    seq: int
    tenant: str
    res_type: str
    res_id: str
    version_id: int
    op: str  # create | update | delete
    ts_us: int


class Outbox:
    """Reading the change log and tracking consumer positions."""

    def __init__(self, store: Store):
        self.store = store

    def position(self, name: str) -> int:
        with self.store.engine.connect() as conn:
            value = conn.execute(
                select(schema.consumer_position.c.seq).where(schema.consumer_position.c.name == name)
            ).scalar()
        return int(value or 0)

    def read(self, after: int = 0, limit: int = 1000, types: set[str] | None = None, conn=None) -> list[ChangeEvent]:
        """Events with ``seq > after`` in order (optionally only some resource types)."""
        c = schema.change_event.c
        stmt = select(c.seq, c.tenant, c.res_type, c.res_id, c.version_id, c.op, c.ts_us).where(c.seq > after)
        if types:
            stmt = stmt.where(c.res_type.in_(sorted(types)))
        stmt = stmt.order_by(c.seq).limit(limit)
        if conn is not None:
            return [ChangeEvent(*row) for row in conn.execute(stmt)]
        with self.store.engine.connect() as own:
            return [ChangeEvent(*row) for row in own.execute(stmt)]

    def read_versions(self, after: int = 0, limit: int = 1000, types: set[str] | None = None,
                      conn=None) -> list[tuple[ChangeEvent, str | None]]:
        """Events with ``seq > after`` in order, each with the JSON text of the version it made (None
        for a deletion). For relays that ship the data itself (federation push-up, feeds)."""
        c, v, r = schema.change_event.c, schema.resource_version.c, schema.resource.c
        content = func.coalesce(v.content, r.content)
        joined = (schema.change_event
                  .outerjoin(schema.resource_version, (v.res_type == c.res_type) & (v.res_id == c.res_id)
                             & (v.version_id == c.version_id))
                  .outerjoin(schema.resource, (r.res_type == c.res_type) & (r.res_id == c.res_id)
                             & (r.version_id == c.version_id)))
        stmt = (select(c.seq, c.tenant, c.res_type, c.res_id, c.version_id, c.op, c.ts_us, content)
                .select_from(joined).where(c.seq > after))
        if types:
            stmt = stmt.where(c.res_type.in_(sorted(types)))
        stmt = stmt.order_by(c.seq).limit(limit)
        if conn is not None:
            return [(ChangeEvent(*row[:7]), row[7]) for row in conn.execute(stmt)]
        with self.store.engine.connect() as own:
            return [(ChangeEvent(*row[:7]), row[7]) for row in own.execute(stmt)]

    def advance(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has handled everything up to ``seq`` (never moves back).

        For consumers whose effect is outside the database (a relay to a broker): they act first and
        record the position after, so a crash in between repeats events, which the receiving side
        de-duplicates by event id."""
        p = schema.consumer_position.c
        with self.store.write() as tx:
            row = tx.conn.execute(select(p.seq).where(p.name == name)).first()
            if row is None:
                tx.conn.execute(insert(schema.consumer_position).values(name=name, seq=seq))
            elif int(row[0]) < seq:
                tx.conn.execute(update(schema.consumer_position).where(p.name == name).values(seq=seq))

    def rewind(self, name: str, seq: int) -> None:
        """Set consumer ``name``'s position to ``seq`` (operators re-sending a range; tests of recovery)."""
        p = schema.consumer_position.c
        with self.store.write() as tx:
            if tx.conn.execute(update(schema.consumer_position).where(p.name == name).values(seq=seq)).rowcount == 0:
                tx.conn.execute(insert(schema.consumer_position).values(name=name, seq=seq))

    def last_seq(self) -> int:
        with self.store.engine.connect() as conn:
            value = conn.execute(select(schema.change_event.c.seq).order_by(schema.change_event.c.seq.desc()).limit(1)).scalar()
        return int(value or 0)

    def consume(
        self,
        name: str,
        handler: Callable[[Tx, list[ChangeEvent]], None],
        *,
        batch_size: int = 500,
        types: set[str] | None = None,
    ) -> int:
        """Run ``handler`` on the next batch of events for consumer ``name``.

        Returns how many events the position moved over (0 when the consumer is up to date).

        The handler runs inside a write transaction that also moves the consumer's position past
        the batch (and past skipped events of other types), so both commit or neither does.
        """
        with self.store.write() as tx:
            p = schema.consumer_position.c
            stmt = select(p.seq).where(p.name == name)
            if self.store.is_postgres:
                stmt = stmt.with_for_update()  # one runner per consumer at a time
            row = tx.conn.execute(stmt).first()
            if row is None:
                tx.conn.execute(insert(schema.consumer_position).values(name=name, seq=0))
                after = 0
            else:
                after = int(row[0])
            if types:
                return self._consume_types(tx, name, handler, after, batch_size, types)
            events = self.read(after, batch_size, None, conn=tx.conn)
            if not events:
                return 0
            handler(tx, events)
            tx.conn.execute(update(schema.consumer_position).where(p.name == name).values(seq=events[-1].seq))
            return len(events)

    def _consume_types(self, tx, name: str, handler, after: int, batch_size: int, types: set[str]) -> int:
        """A consumer of some types reads only those (the patient linker wants 1 event in ~300 of a
        clinical load) and moves past the others in the same step instead of a batch at a time.

        ``top`` is read before the events: every event up to it has committed (seq order is commit
        order on both backends), so when the read returns fewer than a batch, no wanted event at or
        below ``top`` was left out and the position may move there."""
        c = schema.change_event.c
        top = int(tx.conn.execute(select(func.max(c.seq))).scalar() or 0)
        events = self.read(after, batch_size, types, conn=tx.conn)
        if events:
            handler(tx, events)
        if len(events) == batch_size:
            new = events[-1].seq
        else:
            new = max(top, events[-1].seq if events else 0)
        if new <= after:
            return 0
        p = schema.consumer_position.c
        tx.conn.execute(update(schema.consumer_position).where(p.name == name).values(seq=new))
        return new - after
