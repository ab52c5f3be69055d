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
from typing import NamedTuple

log = logging.getLogger("hutong.card.batch")

MAX_BATCH = 500


class CardRow(NamedTuple):
    """What a scan needs of its card."""

    card_id: str
    status: str
    patient: str
    subject: str
    guardian_card: str | None


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
    loop: object = None  # the event loop of an asyncio waiter (submit_async)


def _settle_futures(pairs: list, failed: bool) -> None:
    for fut, out in pairs:
        if fut.done():  # the request was cancelled (client went away)
            continue
        if failed:
            fut.set_exception(out)
        else:
            fut.set_result(out)


class ScanWriter:
    """The per-process writer thread (started lazily)."""

    def __init__(self, store, policy: str):
        self.store = store
        self.policy = policy
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._dialect = store.engine.dialect.name

    def submit(self, item: ScanItem, timeout: float = 60.0):
        """Queue ``item`` and wait until its batch committed; returns ``(refusal, card_row)``."""
        return self.submit_nowait(item).result(timeout=timeout)

    def submit_nowait(self, item: ScanItem) -> Future:
        """Queue ``item``; the future resolves to ``(refusal, card_row)`` after its batch committed."""
        self._ensure_thread()
        item.future = Future()
        self._q.put(item)
        return item.future

    def submit_async(self, item: ScanItem):
        """Queue ``item`` from the event loop; an asyncio future resolving to ``(refusal, card_row)``.

        The writer resolves every future of a batch with one call into the loop (one wake-up per
        batch instead of one per scan: at thousands of scans a second the cross-thread wake-ups
        cost more CPU than the database work)."""
        import asyncio

        self._ensure_thread()
        loop = asyncio.get_running_loop()
        item.future = loop.create_future()
        item.loop = loop
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
                self._resolve(items, [exc] * len(items), failed=True)
                continue
            self._resolve(items, results)

    @staticmethod
    def _resolve(items: list[ScanItem], outcomes: list, failed: bool = False) -> None:
        by_loop: dict = {}
        for it, out in zip(items, outcomes, strict=True):
            if it.loop is None:
                if failed:
                    it.future.set_exception(out)
                else:
                    it.future.set_result(out)
            else:
                by_loop.setdefault(it.loop, []).append((it.future, out))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_futures, pairs, failed)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                pass

    def _settle(self, items: list[ScanItem]) -> list[tuple[str | None, object]]:
        # Plain SQL on the driver's connection: a batch is four statements, and through SQLAlchemy's
        # statement building and result machinery they cost several times what the database does.
        policy = self.policy
        results: list[tuple[str | None, object]] = [(it.refusal, None) for it in items]
        with self.store.write() as tx:
            db = tx.conn.connection.dbapi_connection
            ph = "%s" if self._dialect == "postgresql" else "?"
            card_ids = sorted({it.card_id for it in items if it.refusal is None and it.card_id})
            rows: dict[str, CardRow] = {}
            if card_ids:
                marks = ", ".join([ph] * len(card_ids))
                for r in db.execute(f"SELECT card_id, status, patient, subject, guardian_card FROM card_card "
                                    f"WHERE card_id IN ({marks})", card_ids).fetchall():
                    rows[r[0]] = CardRow(*r)
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
                values = ", ".join([f"({ph}, {ph}, {ph}, {ph}, 1, {ph})"] * len(fresh))
                params = [v for n, i in fresh.items()
                          for v in (n, items[i].card_id, items[i].institution, items[i].ts_us, items[i].expires_us)]
                # The database decides, across processes too, which scan used a code first.
                inserted = {r[0] for r in db.execute(
                    f"INSERT INTO card_code_use (nonce, card_id, institution, first_us, uses, expires_us) "
                    f"VALUES {values} ON CONFLICT (nonce) DO NOTHING RETURNING nonce", params).fetchall()}
                # Scans whose code was used before (earlier batch, other process, or earlier in this batch).
                reused = [i for i in pending if not (items[i].nonce in inserted and fresh[items[i].nonce] == i)]
                if reused:
                    nonces = sorted({items[i].nonce for i in reused})
                    marks = ", ".join([ph] * len(nonces))
                    first_at = dict(db.execute(f"SELECT nonce, institution FROM card_code_use WHERE nonce IN ({marks})",
                                               nonces).fetchall())
                    extra_uses: dict[str, int] = {}
                    for i in reused:
                        it = items[i]
                        where = first_at.get(it.nonce)
                        if policy == "single-use" or where is None or where != it.institution:
                            results[i] = ("replayed", results[i][1])
                        else:
                            extra_uses[it.nonce] = extra_uses.get(it.nonce, 0) + 1
                    for nonce, n in extra_uses.items():
                        db.execute(f"UPDATE card_code_use SET uses = uses + {ph} WHERE nonce = {ph}", (n, nonce))
            scan_rows = [(it.ts_us, it.day, tx.tenant, it.institution, it.terminal, it.purpose,
                          results[i][0] or "accepted", it.card_id, it.kid) for i, it in enumerate(items)]
            cur = db.cursor()
            cur.executemany(f"INSERT INTO card_scan (ts_us, day, tenant, institution, terminal, purpose, result, "
                            f"card_id, kid) VALUES ({', '.join([ph] * 9)})", scan_rows)
            cur.close()
        return results
