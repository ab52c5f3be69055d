"""One database transaction of FHIR interactions (``Tx``).

A ``Tx`` performs create, update, patch, delete, read, vread and history inside one database
transaction. Inserts of new resources, their versions, search-index rows and change events are
buffered and sent at the next flush point (before any query, and at commit): ``executemany`` on
SQLite, ``COPY`` on PostgreSQL, which keeps Bundle ingest to a handful of round trips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import func, insert, select, text, tuple_, update

from hutong.core.clock import now_us
from hutong.core.errors import FhirError, bad_request, gone, not_found, precondition_failed
from hutong.core.ids import ID_RE, new_id
from hutong.store import schema
from hutong.store.outbox import ChangeEvent
from hutong.store.records import Prepared, StoredResource, WriteResult, column_names
from hutong.store.references import reference_path

if TYPE_CHECKING:
    from hutong.store.store import Store

#: Advisory lock key (PostgreSQL) that orders change-event sequence numbers by commit order.
_OUTBOX_LOCK = 72616471

_SQLITE_INSERT: dict[tuple[str, tuple[str, ...]], str] = {}

_READ_COLUMNS = "res_type, res_id, version_id, ts_us, deleted, tenant, content"
_READ_SQLITE = f"SELECT {_READ_COLUMNS} FROM resource WHERE res_type = ? AND res_id = ?"
_READ_PG = f"SELECT {_READ_COLUMNS} FROM resource WHERE res_type = %s AND res_id = %s"
_READ_PG_FOR_UPDATE = _READ_PG + " FOR UPDATE"


def _check_id(res_id: str, expression: str = "id") -> None:
    if not isinstance(res_id, str) or not ID_RE.match(res_id):
        raise bad_request(f"invalid resource id {str(res_id)[:80]!r}: must match [A-Za-z0-9-.]{{1,64}}", expression)


class Tx:
    """One database transaction of FHIR interactions. Obtain it from ``Store.write()``/``Store.read()``."""

    def __init__(self, store: Store, conn, writable: bool, tenant: str):
        self.store = store
        self.conn = conn
        self.writable = writable
        self.tenant = tenant
        self._pending: dict = {}
        self._events: list[dict] = []
        #: Resources created in this transaction but not yet flushed, for existence checks.
        self._new: set[tuple[str, str]] = set()
        self.events: list[ChangeEvent] = []
        self._flushes = 0
        #: Resources this transaction will create (ids pre-assigned by a bundle): references to them resolve.
        self.will_exist: set[tuple[str, str]] = set()
        #: Bulk loads switch this off: their references may point at resources later in the input.
        self.check_references = store.referential_integrity

    # ------------------------------------------------------------------ buffering
    def _queue(self, table, row: dict) -> None:
        self._pending.setdefault(table, []).append(row)

    def flush(self) -> None:
        """Send buffered inserts (resources, versions, index rows) to the database."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        self._flushes += 1
        order = [schema.resource, schema.resource_version]
        for table in order + [t for t in pending if t not in order]:
            rows = pending.get(table)
            if not rows:
                continue
            if self.store.is_postgres:
                if len(rows) > 8:
                    self._copy_rows(table, rows)
                else:
                    columns, values = self._row_values(table, rows)
                    self.conn.execute(insert(table), [dict(zip(columns, v, strict=True)) for v in values])
            else:
                self._sqlite_insert(table, rows)
        self._new.clear()

    @staticmethod
    def _row_values(table, rows: list) -> tuple[tuple[str, ...], list]:
        """Column names and value rows; rows are dicts or (index rows) tuples in column order."""
        if type(rows[0]) is tuple:
            return column_names(table), rows
        columns = tuple(c.name for c in table.columns if c.name in rows[0])
        return columns, [[row.get(c) for c in columns] for row in rows]

    def _sqlite_insert(self, table, rows: list) -> None:
        """executemany straight on the sqlite3 cursor: SQLAlchemy's per-row parameter processing
        costs more than SQLite's insert itself for the many small index rows."""
        columns, values = self._row_values(table, rows)
        sql = _SQLITE_INSERT.get((table.name, columns))
        if sql is None:
            names = ", ".join(f'"{c}"' for c in columns)
            sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            _SQLITE_INSERT[(table.name, columns)] = sql
        self.conn.connection.dbapi_connection.executemany(sql, values)

    def _copy_rows(self, table, rows: list) -> None:
        """PostgreSQL COPY into ``table`` inside this transaction: several times faster than
        executemany, which psycopg sends as one pipelined INSERT per row."""
        columns, values = self._row_values(table, rows)
        cur = self.conn.connection.dbapi_connection.cursor()
        names = ", ".join(f'"{c}"' for c in columns)
        with cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in values:
                copy.write_row(row)
        cur.close()

    def _flush_events(self) -> None:
        if not self._events:
            return
        if self.store.is_postgres:
            # Serialise the tail of writing transactions so seq order equals commit order:
            # a consumer that has seen seq N can never later find a committed N-1.
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _OUTBOX_LOCK})
            result = self.conn.execute(insert(schema.change_event).returning(schema.change_event.c.seq), self._events)
            seqs = [row[0] for row in result]
        else:
            # This transaction holds SQLite's only write lock: the next numbers are ours to assign.
            dbapi = self.conn.connection.dbapi_connection
            top = dbapi.execute("SELECT COALESCE(MAX(seq), 0) FROM change_event").fetchone()[0]
            seqs = range(top + 1, top + 1 + len(self._events))
            dbapi.executemany(
                "INSERT INTO change_event (seq, tenant, res_type, res_id, version_id, op, ts_us) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(q, e["tenant"], e["res_type"], e["res_id"], e["version_id"], e["op"], e["ts_us"])
                 for q, e in zip(seqs, self._events, strict=True)])
        for seq, ev in zip(seqs, self._events, strict=False):
            self.events.append(ChangeEvent(seq=seq, **ev))
        self._events = []

    def mark(self) -> tuple[int, int, dict]:
        """A point to undo buffered work back to (see ``undo_to``)."""
        return (self._flushes, len(self._events), {t: len(rows) for t, rows in self._pending.items()})

    def undo_to(self, mark: tuple[int, int, dict]) -> bool:
        """Drop work buffered since ``mark``. False when some of it was already sent to the
        database (a flush happened after this step buffered rows): then only a savepoint helps."""
        flushes, n_events, lengths = mark
        if self._flushes != flushes and len(self._events) > n_events:
            return False
        if self._flushes != flushes:
            # Everything buffered before the mark was sent; what is pending now is this step's.
            lengths = {}
        for table in list(self._pending):
            keep = lengths.get(table, 0)
            del self._pending[table][keep:]
            if not self._pending[table]:
                del self._pending[table]
        del self._events[n_events:]
        return True

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a block that can fail on its own: on error its writes (sent or buffered) are undone
        and the transaction goes on. Batch bundles run each entry in one."""
        self.flush()
        events_before = len(self._events)
        nested = self.conn.begin_nested()
        try:
            yield
            self.flush()
        except BaseException:
            nested.rollback()
            self._pending = {}
            self._new.clear()
            del self._events[events_before:]
            raise
        else:
            nested.commit()

    def _require_writable(self) -> None:
        if not self.writable:
            raise RuntimeError("write attempted in a read-only transaction")

    # ------------------------------------------------------------------ reads
    def read(self, res_type: str, res_id: str, *, for_update: bool = False) -> StoredResource | None:
        """The current version (possibly a deletion marker), or None if it never existed."""
        self.flush()
        # The hottest statement of the platform, sent straight to the driver: through SQLAlchemy's
        # statement construction and result machinery it costs several times the query itself.
        if self.store.is_postgres:
            sql = _READ_PG_FOR_UPDATE if for_update else _READ_PG
        else:
            sql = _READ_SQLITE
        row = self.conn.connection.dbapi_connection.execute(sql, (res_type, res_id)).fetchone()
        if row is None:
            return None
        return StoredResource(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])

    def read_current(self, res_type: str, res_id: str) -> StoredResource:
        """The current version, or a 404/410 FhirError."""
        self.store.check_type(res_type)
        _check_id(res_id)
        found = self.read(res_type, res_id)
        if found is None:
            raise not_found(f"{res_type}/{res_id} is not known")
        if found.deleted:
            raise gone(f"{res_type}/{res_id} has been deleted")
        return found

    @staticmethod
    def _versions_select():
        """SELECT over versions with their content: a current version keeps its content only in
        ``resource`` (stored once), older versions in ``resource_version``."""
        v, r = schema.resource_version.c, schema.resource.c
        joined = schema.resource_version.outerjoin(
            schema.resource, (r.res_type == v.res_type) & (r.res_id == v.res_id) & (r.version_id == v.version_id))
        return select(v.res_type, v.res_id, v.version_id, v.ts_us, v.deleted, v.tenant,
                      func.coalesce(v.content, r.content), v.method).select_from(joined)

    def vread(self, res_type: str, res_id: str, version_id: str) -> StoredResource:
        self.store.check_type(res_type)
        _check_id(res_id)
        if not str(version_id).isdigit():
            raise not_found(f"{res_type}/{res_id} has no version {version_id!r}")
        self.flush()
        v = schema.resource_version.c
        row = self.conn.execute(
            self._versions_select().where(v.res_type == res_type, v.res_id == res_id, v.version_id == int(version_id))
        ).first()
        if row is None:
            raise not_found(f"{res_type}/{res_id} has no version {version_id}")
        stored = StoredResource(*row)
        if stored.deleted:
            raise gone(f"{res_type}/{res_id} version {version_id} is a deletion")
        return stored

    def exists(self, res_type: str, res_id: str) -> bool:
        if (res_type, res_id) in self._new:
            return True
        found = self.read(res_type, res_id)
        return found is not None and not found.deleted

    def existing(self, keys: set[tuple[str, str]], *, include_deleted: bool = False) -> set[tuple[str, str]]:
        """Which of ``keys`` (type, id) name current, non-deleted resources (or any stored row)."""
        found = {k for k in keys if k in self._new or k in self.will_exist}
        rest = list(keys - found)
        if not rest:
            return found
        self.flush()
        r = schema.resource.c
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in rest:
            by_type.setdefault(res_type, []).append(res_id)
        # One query per type with ``res_id IN (...)``: a row-value IN over (type, id) is not
        # planned as a primary-key lookup on SQLite and would scan the whole table.
        for res_type, ids in by_type.items():
            for i in range(0, len(ids), 500):
                rows = self.conn.execute(
                    select(r.res_id).where(r.res_type == res_type, r.res_id.in_(ids[i : i + 500]),
                                           *(() if include_deleted else (r.deleted.is_(False),)))
                )
                found.update((res_type, rid) for (rid,) in rows)
        return found

    def history(
        self,
        res_type: str | None = None,
        res_id: str | None = None,
        *,
        since_us: int | None = None,
        at_or_before: tuple[int, str, str, int] | None = None,
        count: int = 50,
        types: Sequence[str] | None = None,
    ) -> list[StoredResource]:
        """Versions newest first; ``at_or_before`` is a keyset cursor (ts_us, type, id, version);
        ``types`` limits a system history to those resource types (``_history?_type=``)."""
        self.flush()
        v = schema.resource_version.c
        stmt = self._versions_select().where(*_history_scope(res_type, res_id, since_us, types))
        if at_or_before is not None:
            ts, t, i, ver = at_or_before
            stmt = stmt.where(tuple_(v.ts_us, v.res_type, v.res_id, v.version_id) <= (ts, t, i, ver))
        stmt = stmt.order_by(v.ts_us.desc(), v.res_type.desc(), v.res_id.desc(), v.version_id.desc()).limit(count)
        return [StoredResource(*row) for row in self.conn.execute(stmt)]

    def history_count(self, res_type: str | None = None, res_id: str | None = None, *,
                      since_us: int | None = None, types: Sequence[str] | None = None) -> int:
        """How many versions a history of the same scope holds (``Bundle.total``)."""
        self.flush()
        stmt = select(func.count()).select_from(schema.resource_version).where(
            *_history_scope(res_type, res_id, since_us, types))
        return int(self.conn.execute(stmt).scalar() or 0)

    def serialize_criteria(self, res_type: str, query: str) -> None:
        """Make conditional writes on the same criteria wait for each other (PostgreSQL): the search
        and the insert of a conditional create are otherwise not atomic there, and ten concurrent
        ``If-None-Exist`` requests could create ten resources. SQLite serialises writers already."""
        if not self.store.is_postgres:
            return
        try:
            params = sorted(parse_qsl(query, keep_blank_values=True))
        except ValueError:
            return  # the search itself reports the malformed criteria
        self._advisory_lock(1, res_type + "?" + "&".join(f"{k}={v}" for k, v in params))

    def _advisory_lock(self, space: int, key: str) -> None:
        """A transaction-scoped PostgreSQL advisory lock on ``key`` within ``space`` (two-int form:
        its keys never meet the outbox's one-bigint lock)."""
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big", signed=True)
        self.flush()
        self.conn.connection.dbapi_connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", (space, digest))

    def search_ids(self, res_type: str, params: list[tuple[str, str]], limit: int | None = None) -> list[str]:
        """Ids of current resources matching FHIR search ``params`` (needs the search index)."""
        self.store.check_type(res_type)
        self.flush()
        return self.store.index.search_ids(self.conn, res_type, params, limit=limit)

    def search_query(self, res_type: str, query: str, limit: int | None = 2) -> list[str]:
        """``search_ids`` for a URL query string such as ``identifier=sys|123&active=true``."""
        try:
            params = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError as exc:
            raise bad_request(f"invalid search criteria {query[:200]!r}") from exc
        if not params:
            raise bad_request("conditional operation needs search criteria")
        return self.search_ids(res_type, params, limit=limit)

    # ------------------------------------------------------------------ writes
    def _prepare(self, resource: dict, res_type: str, res_id: str, version_id: int, ts_us: int) -> Prepared:
        """Validate, stamp and serialise a resource (``Store.prepare``), then check that what it
        references exists (the part that needs the database)."""
        prepared = self.store.prepare(resource, res_type, res_id, version_id, ts_us)
        self._check_wanted(prepared)
        return prepared

    def _check_wanted(self, prepared: Prepared) -> None:
        """Referential integrity: every relative reference names an existing resource."""
        wanted = prepared.wanted
        if not wanted or not self.check_references:
            return
        found = self.existing(set(wanted))
        for key, ref_obj in wanted.items():
            if key not in found:
                raise FhirError(
                    400,
                    "not-found",
                    f"reference {key[0]}/{key[1]} does not resolve to an existing resource",
                    f"{prepared.res_type}.{reference_path(prepared.resource, ref_obj)}",
                )

    def _write_version(
        self, res_type: str, res_id: str, version_id: int, ts_us: int, content: str | None, method: str, op: str,
        prepared: Prepared | None,
    ) -> StoredResource:
        deleted = content is None
        self._queue(
            schema.resource_version,
            {
                "res_type": res_type,
                "res_id": res_id,
                "version_id": version_id,
                "ts_us": ts_us,
                "method": method,
                "deleted": deleted,
                "tenant": self.tenant,
                # The current version's content lives in ``resource`` only; it moves here when superseded.
                "content": None,
            },
        )
        if prepared is not None:
            for table, row in prepared.index_rows:
                self._queue(table, row)
        self._events.append(
            {"tenant": self.tenant, "res_type": res_type, "res_id": res_id, "version_id": version_id,
             "op": op, "ts_us": ts_us}
        )
        return StoredResource(res_type, res_id, version_id, ts_us, deleted, self.tenant, content, method)

    def create(
        self,
        resource: dict,
        *,
        res_id: str | None = None,
        if_none_exist: str | None = None,
        fresh_id: bool = False,
        prepared: Prepared | None = None,
    ) -> WriteResult:
        """Create a resource with a server-assigned id (or ``res_id``); conditional with ``if_none_exist``.

        ``fresh_id`` says ``res_id`` was just generated by the server (a UUID), so it needs no
        existence check; bundles use it to pre-assign ids for ``urn:uuid`` references.
        ``prepared`` is the output of ``Store.prepare`` for this resource (version 1, its fresh
        id), done before the write transaction began so that the CPU work runs outside the lock.
        """
        self._require_writable()
        if prepared is not None:
            self._check_wanted(prepared)
            return self._insert_new(prepared, "POST")
        res_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(res_type, str):
            raise bad_request("resourceType is missing", "resourceType")
        self.store.check_type(res_type)
        if if_none_exist:
            query = if_none_exist.split("?", 1)[1] if "?" in if_none_exist else if_none_exist
            self.serialize_criteria(res_type, query)
            matches = self.search_query(res_type, query, limit=2)
            if len(matches) > 1:
                raise precondition_failed(f"If-None-Exist criteria {if_none_exist!r} match more than one {res_type}")
            if matches:
                return WriteResult("existing", self.read(res_type, matches[0]))
        if res_id is None:
            res_id = new_id()
        elif not fresh_id:
            _check_id(res_id)
            # A deleted resource's id stays taken too: its versions keep it.
            if (res_type, res_id) in self._new or self.read(res_type, res_id) is not None:
                raise FhirError(409, "duplicate", f"{res_type}/{res_id} already exists")
        return self._insert_new(self._prepare(resource, res_type, res_id, 1, now_us()), "POST")

    def _insert_new(self, prepared: Prepared, method: str) -> WriteResult:
        """Queue version 1 of a new resource."""
        p = prepared
        self._queue(
            schema.resource,
            {"res_type": p.res_type, "res_id": p.res_id, "version_id": 1, "ts_us": p.ts_us, "deleted": False,
             "tenant": self.tenant, "source": p.source, "content": p.content},
        )
        self._new.add((p.res_type, p.res_id))
        stored = self._write_version(p.res_type, p.res_id, 1, p.ts_us, p.content, method, "create", p)
        return WriteResult("created", stored)

    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict,
        *,
        if_match: int | None = None,
        method: str = "PUT",
    ) -> WriteResult:
        """Update (or create with a client id) ``res_type/res_id``; ``if_match`` guards the version."""
        self._require_writable()
        self.store.check_type(res_type)
        _check_id(res_id)
        if not isinstance(resource, dict):
            raise bad_request("a resource must be a JSON object")
        if resource.get("resourceType") != res_type:
            raise bad_request(
                f"resourceType {resource.get('resourceType')!r} does not match {res_type!r}", "resourceType"
            )
        body_id = resource.get("id")
        if body_id is not None and body_id != res_id:
            raise bad_request(f"resource id {str(body_id)[:80]!r} does not match the URL id {res_id!r}", "id")
        current = self.read(res_type, res_id, for_update=True)
        if current is None and self.store.is_postgres and (res_type, res_id) not in self._new:
            # Two transactions creating the same new id: the second waits here for the first to
            # commit and then updates it, as on SQLite (whose writers are serialised anyway).
            self._advisory_lock(2, f"{res_type}/{res_id}")
            current = self.read(res_type, res_id, for_update=True)
        if if_match is not None:
            if current is None or current.deleted or current.version_id != if_match:
                have = "none" if current is None or current.deleted else current.version_id
                raise precondition_failed(
                    f"{res_type}/{res_id}: If-Match version {if_match} but the current version is {have}"
                )
        ts = now_us()
        if current is None:
            return self._insert_new(self._prepare(resource, res_type, res_id, 1, ts), method)
        version = current.version_id + 1
        ts = max(ts, current.ts_us + 1)
        prepared = self._prepare(resource, res_type, res_id, version, ts)
        content = prepared.content
        if not current.deleted and _same_content(current.content, content):
            return WriteResult("unchanged", current)
        self.flush()
        r = schema.resource.c
        result = self.conn.execute(
            update(schema.resource)
            .where(r.res_type == res_type, r.res_id == res_id, r.version_id == current.version_id)
            .values(version_id=version, ts_us=ts, deleted=False, tenant=self.tenant, source=prepared.source,
                    content=content)
        )
        if result.rowcount != 1:
            raise FhirError(409, "conflict", f"{res_type}/{res_id} was changed concurrently; retry")
        self._keep_superseded(current)
        self.store.index.clear(self.conn, res_type, res_id)
        stored = self._write_version(
            res_type, res_id, version, ts, content, method, "create" if current.deleted else "update", prepared
        )
        return WriteResult("created" if current.deleted else "updated", stored)

    def _keep_superseded(self, current: StoredResource) -> None:
        """The version just replaced keeps its content in ``resource_version`` from now on."""
        if current.deleted or current.content is None:
            return
        v = schema.resource_version.c
        self.conn.execute(
            update(schema.resource_version)
            .where(v.res_type == current.res_type, v.res_id == current.res_id, v.version_id == current.version_id,
                   v.content.is_(None))
            .values(content=current.content)
        )

    def patch(self, res_type: str, res_id: str, apply: Callable[[dict], dict], *,
              if_match: int | None = None) -> WriteResult:
        """Replace the current version with ``apply(current resource)`` (a JSON Patch or FHIRPath
        Patch, applied by the caller's function). The current version is read locked, so a patch
        without If-Match always applies to the latest version, however many patches race."""
        self._require_writable()
        self.store.check_type(res_type)
        _check_id(res_id)
        current = self.read(res_type, res_id, for_update=True)
        if current is None:
            raise not_found(f"{res_type}/{res_id} is not known")
        if current.deleted:
            raise gone(f"{res_type}/{res_id} has been deleted")
        if if_match is not None and current.version_id != if_match:
            raise precondition_failed(
                f"{res_type}/{res_id}: If-Match version {if_match} but the current version is {current.version_id}"
            )
        patched = apply(current.resource)
        if not isinstance(patched, dict):
            raise FhirError(422, "processing", "the patch did not produce a resource")
        if patched.get("resourceType") != res_type or patched.get("id") != res_id:
            raise FhirError(422, "processing", "a patch may not change resourceType or id")
        return self.update(res_type, res_id, patched, if_match=current.version_id, method="PATCH")

    def delete(self, res_type: str, res_id: str, *, if_match: int | None = None) -> WriteResult:
        """Delete: the resource becomes gone; its versions stay readable by vread and history."""
        self._require_writable()
        self.store.check_type(res_type)
        _check_id(res_id)
        current = self.read(res_type, res_id, for_update=True)
        if if_match is not None and (current is None or current.deleted or current.version_id != if_match):
            raise precondition_failed(f"{res_type}/{res_id}: If-Match version {if_match} is not current")
        if current is None or current.deleted:
            return WriteResult("unchanged", current)
        version = current.version_id + 1
        ts = max(now_us(), current.ts_us + 1)
        r = schema.resource.c
        self.conn.execute(
            update(schema.resource)
            .where(r.res_type == res_type, r.res_id == res_id, r.version_id == current.version_id)
            .values(version_id=version, ts_us=ts, deleted=True, content=None)
        )
        self._keep_superseded(current)
        self.store.index.clear(self.conn, res_type, res_id)
        stored = self._write_version(res_type, res_id, version, ts, None, "DELETE", "delete", None)
        return WriteResult("deleted", stored)

    def conditional_update(self, res_type: str, query: str, resource: dict, *, if_match: int | None = None):
        """PUT ``Type?criteria``: update the one match, create if none, 412 if several."""
        self.serialize_criteria(res_type, query)
        matches = self.search_query(res_type, query, limit=2)
        if len(matches) > 1:
            raise precondition_failed(f"conditional update criteria match more than one {res_type}")
        if matches:
            body_id = resource.get("id") if isinstance(resource, dict) else None
            if body_id is not None and body_id != matches[0]:
                raise bad_request(f"resource id {body_id!r} does not match the resource found ({matches[0]})", "id")
            return self.update(res_type, matches[0], resource, if_match=if_match)
        body_id = resource.get("id") if isinstance(resource, dict) else None
        if body_id is not None:
            return self.update(res_type, body_id, resource)
        return self.create(resource)

    def conditional_delete(self, res_type: str, query: str, *, limit: int = 1000) -> list[WriteResult]:
        """DELETE ``Type?criteria``: every match is deleted (none is not an error); more than
        ``limit`` matches is refused with 412, so a too-broad criterion deletes nothing."""
        matches = self.search_query(res_type, query, limit=limit + 1)
        if len(matches) > limit:
            raise precondition_failed(f"conditional delete criteria match more than {limit} {res_type}; "
                                      "narrow them (nothing was deleted)")
        return [self.delete(res_type, m) for m in matches]

    def commit_buffers(self) -> None:
        self.flush()
        self._flush_events()


def _history_scope(res_type: str | None, res_id: str | None, since_us: int | None,
                   types: Sequence[str] | None = None) -> list:
    """The conditions on ``resource_version`` of a history's scope (system, type or instance)."""
    v = schema.resource_version.c
    conds = []
    if res_type:
        conds.append(v.res_type == res_type)
    if types:
        conds.append(v.res_type.in_(list(types)))
    if res_id:
        conds.append(v.res_id == res_id)
    if since_us is not None:
        conds.append(v.ts_us >= since_us)
    return conds


def _source(resource: dict) -> str | None:
    meta = resource.get("meta")
    if isinstance(meta, dict):
        src = meta.get("source")
        if isinstance(src, str):
            return src[:256]
    return None


def _same_content(old: str | None, new: str) -> bool:
    """Equal apart from meta.versionId/lastUpdated: an update that changes nothing makes no version."""
    if old is None:
        return False
    a, b = orjson.loads(old), orjson.loads(new)
    for doc in (a, b):
        meta = doc.get("meta")
        if isinstance(meta, dict):
            meta.pop("versionId", None)
            meta.pop("lastUpdated", None)
            if not meta:
                doc.pop("meta")
    return a == b
