"""What the store hands back: a stored version, the outcome of a write, a prepared resource."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from hutong.core.clock import instant

_COLUMNS: dict[str, tuple[str, ...]] = {}


def column_names(table) -> tuple[str, ...]:
    """A table's column names in order (cached: index rows are built as tuples in this order)."""
    names = _COLUMNS.get(table.name)
    if names is None:
        names = _COLUMNS[table.name] = tuple(c.name for c in table.columns)
    return names


def dumps(resource: dict) -> str:
    """A resource as the JSON text the store keeps (and serves unchanged)."""
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
