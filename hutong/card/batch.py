"""Group commit for scans: one writer thread per process turns many verifications into one transaction.

Each verification needs a small write (replay control and the usage-log row) and the card's status. Done
one transaction per scan, the commit and SQLAlchemy's per-statement cost dominate and, on SQLite, request
threads queue on the database write lock (whose busy handler sleeps in steps of milliseconds). Here request
threads hand their scan to a queue and wait; a single writer thread takes everything queued so far and
settles it in one transaction with a handful of set-based statements:

1. read the status of every card in the batch (``IN`` list);
2. ``INSERT … ON CONFLICT DO NOTHING RETURNING nonce`` for every fresh code — the database decides, across
   processes too, which scan used a code first;
3. for codes already used, read where they were used and apply the replay policy;
4. insert all usage-log rows.

Results are handed back after the commit, so an accepted scan is durable before its answer leaves.
Batches form naturally: while the writer commits one batch, the next accumulates (no timer).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from hutong.card.tables import card_card, card_code_use, card_scan

log = logging.getLogger("hutong.card.batch")

MAX_BATCH = 500


@dataclass
class ScanItem:
    """One scan to settle. ``refusal`` set beforehand means "only log it"."""

    ts_us: int
    day: str
    institution: str
    terminal: str
    purpose: str
    card_id: str | None = None
    kid: str | None = None
    nonce: str | None = None
    expires_us: int = 0
    refusal: str | None = None
    future: Future | None = None


class ScanWriter:
    """The per-process writer thread (started lazily)."""

    def __init__(self, store, policy: str):
        self.store = store
        self.policy = policy
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._dialect = store.engine.dialect.name
        if self._dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        self._ins_use = (
            dialect_insert(card_code_use)
            .on_conflict_do_nothing(index_elements=["nonce"])
            .returning(card_code_use.c.nonce)
        )

    def submit(self, item: ScanItem, timeout: float = 60.0):
        """Queue ``item`` and wait until its batch committed; returns ``(refusal, card_row)``."""
        return self.submit_nowait(item).result(timeout=timeout)

    def submit_nowait(self, item: ScanItem) -> Future:
        """Queue ``item``; the future resolves to ``(refusal, card_row)`` after its batch committed."""
        self._ensure_thread()
        item.future = Future()
        self._q.put(item)
        return item.future

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hutong-card-scans", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            items = [self._q.get()]
            while len(items) < MAX_BATCH:
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self._settle(items)
            except Exception as exc:  # noqa: BLE001 - every waiting request must learn of the failure
                log.exception("settling %d card scans failed", len(items))
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(exc)
                continue
            for it, res in zip(items, results, strict=True):
                it.future.set_result(res)

    def _settle(self, items: list[ScanItem]) -> list[tuple[str | None, object]]:
        policy = self.policy
        results: list[tuple[str | None, object]] = [(it.refusal, None) for it in items]
        with self.store.write() as tx:
            conn = tx.conn
            card_ids = sorted({it.card_id for it in items if it.refusal is None and it.card_id})
            rows = {}
            if card_ids:
                for r in conn.execute(
                    select(
                        card_card.c.card_id, card_card.c.status, card_card.c.patient, card_card.c.subject,
                        card_card.c.guardian_card,
                    ).where(card_card.c.card_id.in_(card_ids))
                ):
                    rows[r.card_id] = r
            fresh: dict[str, int] = {}  # nonce -> index of the first scan in this batch using it
            pending: list[int] = []
            for i, it in enumerate(items):
                if it.refusal is not None:
                    continue
                row = rows.get(it.card_id)
                if row is None:
                    results[i] = ("unknown-card", None)
                elif row.status == "frozen":
                    results[i] = ("card-frozen", row)
                elif row.status == "revoked":
                    results[i] = ("card-revoked", row)
                else:
                    results[i] = (None, row)
                    if policy != "none":
                        pending.append(i)
                        fresh.setdefault(it.nonce, i)
            if fresh:
                params = [
                    {
                        "nonce": n,
                        "card_id": items[i].card_id,
                        "institution": items[i].institution,
                        "first_us": items[i].ts_us,
                        "uses": 1,
                        "expires_us": items[i].expires_us,
                    }
                    for n, i in fresh.items()
                ]
                inserted = {r[0] for r in conn.execute(self._ins_use, params)}
                # Scans whose code was used before (earlier batch, other process, or earlier in this batch).
                reused = [i for i in pending if not (items[i].nonce in inserted and fresh[items[i].nonce] == i)]
                if reused:
                    nonces = sorted({items[i].nonce for i in reused})
                    first_at = {
                        r.nonce: r.institution
                        for r in conn.execute(
                            select(card_code_use.c.nonce, card_code_use.c.institution).where(
                                card_code_use.c.nonce.in_(nonces)
                            )
                        )
                    }
                    extra_uses: dict[str, int] = {}
                    for i in reused:
                        it = items[i]
                        where = first_at.get(it.nonce)
                        if policy == "single-use" or where is None or where != it.institution:
                            results[i] = ("replayed", results[i][1])
                        else:
                            extra_uses[it.nonce] = extra_uses.get(it.nonce, 0) + 1
                    for nonce, n in extra_uses.items():
                        conn.execute(
                            update(card_code_use)
                            .where(card_code_use.c.nonce == nonce)
                            .values(uses=card_code_use.c.uses + n)
                        )
            conn.execute(
                insert(card_scan),
                [
                    {
                        "ts_us": it.ts_us,
                        "day": it.day,
                        "tenant": tx.tenant,
                        "institution": it.institution,
                        "terminal": it.terminal,
                        "purpose": it.purpose,
                        "result": results[i][0] or "accepted",
                        "card_id": it.card_id,
                        "kid": it.kid,
                    }
                    for i, it in enumerate(items)
                ],
            )
        return results
