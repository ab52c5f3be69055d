"""Materialised views for analytics: ViewDefinitions run into DuckDB tables, queried read-only.

A view is materialised from the store (``materialize``) or from a Bulk Data export
(``materialize_ndjson``: NDJSON files as ``$export`` writes them; Parquet files are read by
DuckDB directly), into one DuckDB database file per node (``<data_dir>/stats/analytics.duckdb``).
DuckDB's extensions would download on first use, which an isolated network forbids: nothing here
needs one (Parquet and JSON reading are built into the wheel). Queries (``query``) open the file
read-only with external access off, so a SELECT cannot read or write files of the server.
"""

from __future__ import annotations

import fcntl
import gzip
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from hutong.core.errors import bad_request
from hutong.stats.run import load_duckdb, stored_resources
from hutong.stats.views import View

TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
MAX_QUERY_ROWS = 100_000


def database_path(settings) -> Path:
    """The node's analytics database file."""
    path = Path(settings.data_dir) / "stats" / "analytics.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _writer(path: Path):
    """One writer at a time across the node's processes, and no reader meanwhile (DuckDB lets one
    process write a database file, or several read it)."""
    import duckdb

    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        con = duckdb.connect(str(path))
        try:
            yield con
        finally:
            con.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _reader(path: Path):
    import duckdb

    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        con = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
        try:
            con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


def table_name(view: View, table: str | None) -> str:
    """The table a view materialises into: ``table``, else the view's name."""
    name = table or view.name
    if not name or not TABLE_NAME.match(name):
        raise bad_request(f"table name {str(name)[:70]!r} must start with a letter and hold letters, digits, _")
    return name


def materialize(store, view: View, path: Path, table: str | None = None) -> int:
    """Run ``view`` over the store's current resources into DuckDB table ``table``; the row count."""
    name = table_name(view, table)

    def rows():
        with store.read() as tx:
            for resource in stored_resources(tx, view.resource):
                yield from view.rows(resource)

    with _writer(path) as con:
        return load_duckdb(con, name, view, rows())


def ndjson_resources(files) -> Iterator[dict]:
    """Resources from NDJSON files (``.ndjson`` or ``.ndjson.gz``), as Bulk Data exports them."""
    for f in files:
        opener = gzip.open if str(f).endswith(".gz") else open
        with opener(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)


def materialize_ndjson(view: View, files, path: Path, table: str | None = None) -> int:
    """Run ``view`` over Bulk Data NDJSON files into DuckDB table ``table``; the row count."""
    name = table_name(view, table)
    with _writer(path) as con:
        return load_duckdb(con, name, view, view.run(ndjson_resources(files)))


def query(path: Path, sql: str, params: list | None = None, max_rows: int = MAX_QUERY_ROWS) -> dict:
    """Run one read-only SQL statement on the analytics database: ``{"columns", "rows"}``."""
    import duckdb

    text = sql.strip().rstrip(";")
    if not re.match(r"(?is)^\s*(select|with)\b", text) or ";" in text:
        raise bad_request("only one SELECT (or WITH … SELECT) statement is allowed", "sql")
    if not path.exists():
        raise bad_request("nothing has been materialised on this node yet", "sql")
    with _reader(path) as con:
        try:
            cur = con.execute(text, params or [])
            columns = [d[0] for d in cur.description]
            rows = cur.fetchmany(max_rows + 1)
        except duckdb.Error as exc:
            raise bad_request(f"SQL error: {str(exc).splitlines()[0][:300]}", "sql") from None
    return {"columns": columns, "rows": [list(r) for r in rows[:max_rows]], "truncated": len(rows) > max_rows}


def tables(path: Path) -> list[dict]:
    """The materialised tables with their row counts."""
    if not path.exists():
        return []
    with _reader(path) as con:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        return [{"table": n, "rows": con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]} for n in names]
