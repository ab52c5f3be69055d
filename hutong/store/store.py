"""The resource store: versioned FHIR resources with a transactional change log.

A ``Store`` hands out transactions (``store.write()`` / ``store.read()``, each a ``Tx``: see
``hutong/store/tx.py``), prepares resources for writing without the database, and runs the
change-log consumers (``hutong/store/outbox.py``). It depends on nothing above it: the validator
and the search index are passed in through the small interfaces below.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy import Engine

from hutong.config import Settings
from hutong.core.clock import instant
from hutong.core.errors import FhirError, Issue, bad_request
from hutong.store.engine import begin_transaction, create_schema, dispose_engine, make_engine, write_gate
from hutong.store.errors import connection_lost, translate
from hutong.store.outbox import Outbox
from hutong.store.records import Prepared, StoredResource, WriteResult, column_names, dumps
from hutong.store.references import relative_references
from hutong.store.tx import Tx, _source


def _invalidate_if_lost(conn, exc: BaseException) -> None:
    """Statements sent straight to the driver bypass SQLAlchemy's disconnect detection: when one
    finds the connection dead, invalidate it so the pool does not hand it out again."""
    mapped = translate(exc)
    if mapped is not None and connection_lost(mapped) and not conn.invalidated:
        conn.invalidate(exc)
        # The database went away: every pooled connection is as dead as this one. A fresh pool
        # (the old connections are dropped as they come back) spares the next requests the same error.
        conn.engine.dispose(close=False)


class Validator(Protocol):
    """Checks a resource; returns its issues (errors refuse the write)."""

    def __call__(self, resource: dict) -> list[Issue]: ...


class Indexer(Protocol):
    """Extracts search rows at write time and answers searches over them."""

    def index_rows(self, res_type: str, res_id: str, resource: dict) -> list: ...

    def clear(self, conn, res_type: str, res_id: str) -> None: ...

    def search_ids(self, conn, res_type: str, params: list[tuple[str, str]], limit: int | None = None) -> list[str]: ...

    def search(self, tx, res_type: str | None, params: list[tuple[str, str]], *, base_url: str, strict: bool,
               compartment: tuple[str, str] | None = None) -> dict: ...

    def summarize(self, resource: dict, summary: str | None, elements: list[str] | None) -> dict: ...

    def supported_params(self) -> dict[str, list[dict]]: ...


class Store:
    """The system of record: ``Store.open(settings, validator=…, index=…, resource_types=…)``.

    The store knows tables, versions and transactions; what a valid resource is and how it is
    searched are handed in (``Validator``, ``Indexer``) by whoever builds the node
    (``hutong.api.node.open_store``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings,
        validator: Validator,
        index: Indexer,
        resource_types: frozenset[str],
        referential_integrity: bool = True,
    ):
        self.engine = engine
        self.settings = settings
        self.is_postgres = engine.dialect.name == "postgresql"
        self.validator = validator
        self.index = index
        self.resource_types = resource_types
        self.referential_integrity = referential_integrity
        self.base_url = ""
        self.outbox = Outbox(self)
        self._consumers: dict[str, tuple[Callable, set[str] | None]] = {}
        self._commit_listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, *, validator: Validator, index: Indexer, resource_types: frozenset[str],
             tables: Sequence = (), referential_integrity: bool = True) -> Store:
        """Connect to the configured database and create or migrate the schema (the core tables and
        ``tables``, the capabilities' own)."""
        engine = make_engine(settings.sqlalchemy_url, lock_timeout_s=settings.db_lock_timeout_s,
                             statement_timeout_s=settings.db_statement_timeout_s)
        create_schema(engine, tables)
        return cls(engine, settings=settings, validator=validator, index=index, resource_types=resource_types,
                   referential_integrity=referential_integrity)

    def close(self) -> None:
        dispose_engine(self.engine)

    # ------------------------------------------------------------------ types
    def known_types(self) -> frozenset[str]:
        return self.resource_types

    def is_known_type(self, res_type: str) -> bool:
        return res_type in self.resource_types

    def check_type(self, res_type: str) -> None:
        if not self.is_known_type(res_type):
            raise FhirError(404, "not-supported", f"unknown resource type {str(res_type)[:64]!r}")

    # ------------------------------------------------------------------ preparing resources
    def prepare(self, resource: dict, res_type: str, res_id: str, version_id: int, ts_us: int,
                references: list[dict] | None = None) -> Prepared:
        """Stamp ``id`` and ``meta``, validate, check reference syntax, serialise and extract the
        search-index rows. Needs no database, so callers run it before taking the write lock.
        ``references`` is ``reference_objects(resource)`` when the caller already walked it."""
        if not isinstance(resource, dict):
            raise bad_request("a resource must be a JSON object")
        if resource.get("resourceType") != res_type:
            raise bad_request(
                f"resourceType {resource.get('resourceType')!r} does not match {res_type!r}", "resourceType"
            )
        resource["id"] = res_id
        meta = resource.get("meta")
        if meta is None:
            meta = {}
        elif not isinstance(meta, dict):
            raise bad_request("meta must be an object", f"{res_type}.meta")
        meta = dict(meta)
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = instant(ts_us)
        resource["meta"] = meta
        issues = self.validator(resource)
        if issues:
            errors = [i for i in issues if i.severity in ("error", "fatal")]
            if errors:
                first = errors[0]
                raise FhirError(400, first.code, f"{res_type} is not valid: {first.diagnostics}", issues=errors[:50])
        wanted = relative_references(resource, res_type, known_type=self.is_known_type, base_url=self.base_url,
                                     references=references)
        # As tuples in column order, built here so the write transaction only hands them over.
        rows = [(table, tuple([row.get(c) for c in column_names(table)]))
                for table, row in self.index.index_rows(res_type, res_id, resource)]
        return Prepared(res_type, res_id, version_id, ts_us, resource, dumps(resource), _source(resource), wanted,
                        rows)

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def write(self, tenant: str | None = None) -> Iterator[Tx]:
        """A write transaction: commits at exit (buffers flushed, change events written), rolls back on error.

        Database failures come out as the FHIR errors a client can act on (``hutong/store/errors.py``):
        409 for a conflict with a concurrent write, 503 with Retry-After when the database is busy
        or away."""
        try:
            with write_gate(self.engine), self.engine.connect() as conn:
                try:
                    with conn.begin():
                        begin_transaction(conn, write=True)
                        tx = Tx(self, conn, True, tenant or self.settings.default_tenant)
                        yield tx
                        tx.commit_buffers()
                except Exception as exc:
                    _invalidate_if_lost(conn, exc)
                    raise
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if tx.events:
            self._notify()

    @contextmanager
    def read(self, snapshot: bool = True) -> Iterator[Tx]:
        """A read-only transaction: a consistent snapshot on both backends.

        ``snapshot=False`` is for single-statement reads (read by id): on PostgreSQL it runs in
        autocommit and saves the BEGIN and COMMIT round trips.
        """
        try:
            with self.engine.connect() as conn:
                try:
                    if not snapshot:
                        if self.is_postgres:
                            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                        yield Tx(self, conn, False, self.settings.default_tenant)  # SQLite: autocommit already
                        return
                    with conn.begin():
                        begin_transaction(conn, write=False)
                        yield Tx(self, conn, False, self.settings.default_tenant)
                except Exception as exc:
                    _invalidate_if_lost(conn, exc)
                    raise
        except Exception as exc:
            mapped = translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    # ------------------------------------------------------------------ one-shot helpers
    def create(self, resource: dict, **kwargs) -> WriteResult:
        with self.write() as tx:
            return tx.create(resource, **kwargs)

    def update(self, res_type: str, res_id: str, resource: dict, **kwargs) -> WriteResult:
        with self.write() as tx:
            return tx.update(res_type, res_id, resource, **kwargs)

    def delete(self, res_type: str, res_id: str, **kwargs) -> WriteResult:
        with self.write() as tx:
            return tx.delete(res_type, res_id, **kwargs)

    def read_resource(self, res_type: str, res_id: str) -> StoredResource | None:
        with self.read() as tx:
            return tx.read(res_type, res_id)

    def get(self, res_type: str, res_id: str) -> dict | None:
        """The current resource as a dict, or None if unknown or deleted."""
        found = self.read_resource(res_type, res_id)
        if found is None or found.deleted:
            return None
        return found.resource

    # ------------------------------------------------------------------ consumers
    def register_consumer(self, name: str, handler: Callable, types: set[str] | None = None) -> None:
        """Register a change-log consumer run by ``run_consumers`` (and the server's worker thread)."""
        self._consumers[name] = (handler, set(types) if types else None)

    def run_consumers(self, max_rounds: int = 1000, *, batch_size: int = 500,
                      between: Callable[[float], None] | None = None) -> int:
        """Drain every registered consumer; returns the number of events handled.

        ``between(seconds)`` is called after each batch with the time it took (the server's worker
        uses it to pause, so a consumer catching up does not keep its process's GIL from requests)."""
        total = 0
        with self._lock:
            for _ in range(max_rounds):
                handled = 0
                for name, (handler, types) in list(self._consumers.items()):
                    t0 = time.perf_counter()
                    n = self.outbox.consume(name, handler, types=types, batch_size=batch_size)
                    handled += n
                    if n and between is not None:
                        between(time.perf_counter() - t0)
                total += handled
                if handled == 0:
                    break
        return total

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        self._commit_listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._commit_listeners:
            listener()


__all__ = ["Indexer", "Prepared", "Store", "StoredResource", "Tx", "Validator", "WriteResult"]
