"""The resource store: versioned FHIR resources with a transactional change log.

A ``Store`` hands out transactions (``store.write()`` / ``store.read()``). A ``Tx`` performs the
FHIR interactions (create, update, patch, delete, read, vread, history) inside one database
transaction. Inserts of new resources, their versions, search-index rows and change events are
buffered and sent with ``executemany`` at the next flush point (before any query and at commit),
which keeps bundle ingest to a handful of round trips.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import jsonpatch
import orjson
from sqlalchemy import Engine, func, insert, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError

from hutong.config import Settings, load_settings
from hutong.core.clock import instant, now_us
from hutong.core.errors import FhirError, Issue, bad_request, gone, not_found, precondition_failed
from hutong.core.ids import ID_PATTERN, ID_RE, new_id
from hutong.fhir.resource_types import RESOURCE_TYPES
from hutong.store import schema
from hutong.store.engine import create_schema, make_engine, write_gate
from hutong.store.outbox import ChangeEvent, Outbox

#: A conditional reference (``Patient?identifier=…``), resolved by search in bundles.
CONDITIONAL_REF = re.compile(r"^[A-Z][A-Za-z]+\?")
_REF_RE = re.compile(rf"^([A-Z][A-Za-z]+)/({ID_PATTERN})(?:/_history/({ID_PATTERN}))?$")
#: Advisory lock key (PostgreSQL) that orders change-event sequence numbers by commit order.
_OUTBOX_LOCK = 72616471


_SQLITE_INSERT: dict[tuple[str, tuple[str, ...]], str] = {}
_COLUMNS: dict[str, tuple[str, ...]] = {}


def _column_names(table) -> tuple[str, ...]:
    names = _COLUMNS.get(table.name)
    if names is None:
        names = _COLUMNS[table.name] = tuple(c.name for c in table.columns)
    return names


def dumps(resource: dict) -> str:
    return orjson.dumps(resource).decode()


@dataclass
class StoredResource:
    """One version of a resource as stored."""

    res_type: str
    res_id: str
    version_id: int
    ts_us: int
    deleted: bool
    tenant: str
    content: str | None
    method: str = ""

    @property
    def resource(self) -> dict:
        return orjson.loads(self.content) if self.content else {}

    @property
    def last_updated(self) -> str:
        return instant(self.ts_us)

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def location(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version_id}"


@dataclass
class WriteResult:
    """What a write did: ``created``, ``updated``, ``deleted``, ``unchanged`` or ``existing``."""

    outcome: str
    stored: StoredResource | None

    @property
    def status(self) -> int:
        return {"created": 201, "updated": 200, "deleted": 204, "unchanged": 200, "existing": 200}[
            self.outcome
        ]


@dataclass
class Prepared:
    """A resource ready to store: stamped, validated, serialised and indexed (``Store.prepare``).

    ``wanted`` maps each relative reference's (type, id) to its Reference object; whether those
    exist is checked inside the write transaction."""

    res_type: str
    res_id: str
    version_id: int
    ts_us: int
    resource: dict
    content: str
    source: str | None
    wanted: dict[tuple[str, str], dict]
    index_rows: list


def _check_id(res_id: str, expression: str = "id") -> None:
    if not isinstance(res_id, str) or not ID_RE.match(res_id):
        raise bad_request(f"invalid resource id {str(res_id)[:80]!r}: must match [A-Za-z0-9-.]{{1,64}}", expression)


def reference_objects(resource: dict) -> list[dict]:
    """Every ``Reference``-like object (a dict with a string ``reference``) in ``resource``,
    contained resources included. Iterative and path-free because it runs several times per write; see
    ``iter_references`` when a path is needed for a message."""
    found: list[dict] = []
    stack: list = [resource]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            ref = node.get("reference")
            if ref is not None and type(ref) is str:
                found.append(node)
            for value in node.values():
                t = type(value)
                if t is dict or t is list:
                    push(value)
        else:
            for item in node:
                t = type(item)
                if t is dict or t is list:
                    push(item)
    return found


def iter_references(node, path: str = "") -> Iterator[tuple[dict, str]]:
    """Every ``Reference`` object inside ``node`` with its path (slower; for error messages)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield node, path
        for key, value in node.items():
            if key == "reference":
                continue
            if isinstance(value, (dict, list)):
                yield from iter_references(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                yield from iter_references(item, f"{path}[{i}]")


def reference_path(resource: dict, ref_obj: dict) -> str:
    """The FHIRPath-like path of ``ref_obj`` inside ``resource`` (for error messages)."""
    for obj, path in iter_references(resource):
        if obj is ref_obj:
            return path
    return ""


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
            return _column_names(table), rows
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
        r = schema.resource.c
        stmt = select(r.res_type, r.res_id, r.version_id, r.ts_us, r.deleted, r.tenant, r.content).where(
            r.res_type == res_type, r.res_id == res_id
        )
        if for_update and self.store.is_postgres:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).first()
        if row is None:
            return None
        return StoredResource(*row)

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
    ) -> list[StoredResource]:
        """Versions newest first; ``at_or_before`` is a keyset cursor (ts_us, type, id, version)."""
        self.flush()
        v = schema.resource_version.c
        stmt = self._versions_select()
        if res_type:
            stmt = stmt.where(v.res_type == res_type)
        if res_id:
            stmt = stmt.where(v.res_id == res_id)
        if since_us is not None:
            stmt = stmt.where(v.ts_us >= since_us)
        if at_or_before is not None:
            ts, t, i, ver = at_or_before
            stmt = stmt.where(tuple_(v.ts_us, v.res_type, v.res_id, v.version_id) <= (ts, t, i, ver))
        stmt = stmt.order_by(v.ts_us.desc(), v.res_type.desc(), v.res_id.desc(), v.version_id.desc()).limit(count)
        return [StoredResource(*row) for row in self.conn.execute(stmt)]

    def search_ids(self, res_type: str, params: list[tuple[str, str]], limit: int | None = None) -> list[str]:
        """Ids of current resources matching FHIR search ``params`` (needs the search index)."""
        self.store.check_type(res_type)
        index = self.store.index
        if index is None:
            raise FhirError(501, "not-supported", "search is not available on this node")
        self.flush()
        return index.search_ids(self.conn, res_type, params, limit=limit)

    def search_query(self, res_type: str, query: str, limit: int | None = 2) -> list[str]:
        """``search_ids`` for a URL query string such as ``identifier=sys|123&active=true``."""
        from urllib.parse import parse_qsl

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
        if self.store.index is not None:
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

    def patch(self, res_type: str, res_id: str, operations, *, if_match: int | None = None) -> WriteResult:
        """Apply a JSON Patch (RFC 6902) to the current version."""
        self._require_writable()
        current = self.read_current(res_type, res_id)
        if if_match is not None and current.version_id != if_match:
            raise precondition_failed(
                f"{res_type}/{res_id}: If-Match version {if_match} but the current version is {current.version_id}"
            )
        if not isinstance(operations, list):
            raise bad_request("a JSON Patch body must be an array of operations")
        try:
            patched = jsonpatch.JsonPatch(operations).apply(current.resource)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError, KeyError) as exc:
            raise FhirError(422, "processing", f"JSON Patch could not be applied: {exc}") from exc
        if not isinstance(patched, dict):
            raise FhirError(422, "processing", "JSON Patch did not produce a resource")
        if patched.get("resourceType") != res_type or patched.get("id") != res_id:
            raise FhirError(422, "processing", "JSON Patch may not change resourceType or id")
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
        if self.store.index is not None:
            self.store.index.clear(self.conn, res_type, res_id)
        stored = self._write_version(res_type, res_id, version, ts, None, "DELETE", "delete", None)
        return WriteResult("deleted", stored)

    def conditional_update(self, res_type: str, query: str, resource: dict, *, if_match: int | None = None):
        """PUT ``Type?criteria``: update the one match, create if none, 412 if several."""
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

    def conditional_delete(self, res_type: str, query: str, *, multiple: bool = False) -> list[WriteResult]:
        """DELETE ``Type?criteria``; several matches need ``multiple`` (else 412)."""
        matches = self.search_query(res_type, query, limit=None if multiple else 2)
        if len(matches) > 1 and not multiple:
            raise precondition_failed(f"conditional delete criteria match more than one {res_type}")
        return [self.delete(res_type, m) for m in matches]

    def commit_buffers(self) -> None:
        self.flush()
        self._flush_events()


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


class Store:
    """The system of record. ``Store.open(settings)`` connects and creates the schema."""

    def __init__(
        self,
        engine: Engine,
        *,
        settings: Settings | None = None,
        validator: Callable[[dict], list[Issue]] | None = None,
        index=None,
        referential_integrity: bool = True,
    ):
        self.engine = engine
        self.settings = settings or load_settings()
        self.is_postgres = engine.dialect.name == "postgresql"
        self.validator = validator
        self.index = index
        self.referential_integrity = referential_integrity
        self.base_url = ""
        self.outbox = Outbox(self)
        self._consumers: dict[str, tuple[Callable, set[str] | None]] = {}
        self._commit_listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None, **kwargs) -> Store:
        """Connect to the configured database, create or migrate the schema, load validator and index."""
        settings = settings or load_settings()
        engine = make_engine(settings.sqlalchemy_url)
        create_schema(engine)
        if "validator" not in kwargs:
            kwargs["validator"] = _default_validator()
        if "index" not in kwargs:
            kwargs["index"] = _default_index()
        return cls(engine, settings=settings, **kwargs)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ types
    def known_types(self) -> frozenset[str]:
        return RESOURCE_TYPES

    def is_known_type(self, res_type: str) -> bool:
        return res_type in self.known_types()

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
        if self.validator is not None:
            issues = self.validator(resource)
            if issues:
                errors = [i for i in issues if i.severity in ("error", "fatal")]
                if errors:
                    first = errors[0]
                    raise FhirError(
                        400, first.code, f"{res_type} is not valid: {first.diagnostics}", issues=errors[:50]
                    )
        wanted = self._wanted_references(resource, res_type, references)
        rows = []
        if self.index is not None:
            # As tuples in column order, built here so the write transaction only hands them over.
            for table, row in self.index.index_rows(res_type, res_id, resource):
                rows.append((table, tuple([row.get(c) for c in _column_names(table)])))
        return Prepared(res_type, res_id, version_id, ts_us, resource, dumps(resource), _source(resource), wanted,
                        rows)

    def _wanted_references(self, resource: dict, res_type: str,
                           references: list[dict] | None = None) -> dict[tuple[str, str], dict]:
        """Check every reference's form; return the relative ones by (type, id)."""
        contained_ids = {
            c.get("id") for c in resource.get("contained") or () if isinstance(c, dict)
        }
        wanted: dict[tuple[str, str], dict] = {}
        for ref_obj in reference_objects(resource) if references is None else references:
            ref = ref_obj["reference"]
            if ref.startswith("#"):
                if ref[1:] and ref[1:] not in contained_ids:
                    raise bad_request(f"reference {ref!r} names no contained resource",
                                      f"{res_type}.{reference_path(resource, ref_obj)}")
                continue
            if CONDITIONAL_REF.match(ref):
                raise bad_request(f"conditional reference {ref[:120]!r} is only allowed in a transaction or batch",
                                  f"{res_type}.{reference_path(resource, ref_obj)}")
            if "://" in ref or ref.startswith("urn:"):
                if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
                    continue
                base = self.base_url
                if base and ref.startswith(base + "/"):
                    ref = ref[len(base) + 1 :]
                else:
                    continue  # an external reference: not ours to resolve
            m = _REF_RE.match(ref)
            if not m:
                raise bad_request(f"invalid reference {ref[:120]!r}", f"{res_type}.{reference_path(resource, ref_obj)}")
            rtype, rid = m.group(1), m.group(2)
            if rtype not in RESOURCE_TYPES:
                raise bad_request(f"reference {ref[:120]!r} names an unknown resource type",
                                  f"{res_type}.{reference_path(resource, ref_obj)}")
            wanted.setdefault((rtype, rid), ref_obj)
        return wanted

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def write(self, tenant: str | None = None) -> Iterator[Tx]:
        """A write transaction: commits at exit (buffers flushed, change events written), rolls back on error."""
        with write_gate(self.engine), self.engine.connect() as conn:
            conn.info["write"] = True
            try:
                with conn.begin():
                    tx = Tx(self, conn, True, tenant or self.settings.default_tenant)
                    yield tx
                    tx.commit_buffers()
            except IntegrityError as exc:
                raise FhirError(409, "conflict", "the write conflicted with a concurrent change; retry") from exc
            finally:
                conn.info["write"] = False
        if tx.events:
            self._notify()

    @contextmanager
    def read(self, snapshot: bool = True) -> Iterator[Tx]:
        """A read-only transaction: a consistent snapshot on both backends.

        ``snapshot=False`` is for single-statement reads (read by id): on PostgreSQL it runs in
        autocommit and saves the BEGIN and COMMIT round trips.
        """
        with self.engine.connect() as conn:
            if not snapshot and self.is_postgres:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                yield Tx(self, conn, False, self.settings.default_tenant)
                return
            with conn.begin():
                yield Tx(self, conn, False, self.settings.default_tenant)

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


def _default_validator():
    try:
        from hutong.fhir.validation import validate_resource
    except ImportError:
        return None
    return validate_resource


def _default_index():
    try:
        from hutong.search.index import SearchIndex
    except ImportError:
        return None
    return SearchIndex()


__all__ = [
    "Prepared",
    "Store",
    "Tx",
    "StoredResource",
    "WriteResult",
]
