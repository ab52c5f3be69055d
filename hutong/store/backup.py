"""Backing up and restoring the store (``hutong backup`` / ``hutong restore``; docs/operations.md).

SQLite: an online, consistent copy through SQLite's backup API (the node may keep serving; the copy
is one snapshot, WAL included). PostgreSQL: ``pg_dump --format=custom`` of the node's database (or
of its schema, when the URL selects one with ``search_path``), restored with ``pg_restore`` into an
empty database. Keys are not in the database: the card key-encryption key comes from
``HUTONG_CARD_KEK`` (or the ``card-kek`` file in the data folder) and must be kept with the backup,
separately and as a secret.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from hutong.config import Settings


class BackupError(RuntimeError):
    """A backup or restore that could not be done (the message says why)."""


def _sqlite_path(settings: Settings) -> Path:
    return Path(settings.sqlalchemy_url.split("///", 1)[1])


def _pg_parts(url: str) -> tuple[str, str | None]:
    """The libpq URL without ``options`` and the schema its ``search_path`` option selects."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = None
    for opt in query.get("options", []):
        for token in unquote(opt).split():
            token = token.removeprefix("-c")
            if token.startswith("search_path="):
                schema = token.split("=", 1)[1]
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items() if k != "options")
    return parts._replace(query=rest).geturl(), schema


def backup(settings: Settings, dest: Path) -> Path:
    """Write a consistent copy of the store to ``dest``; returns it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not settings.is_postgres:
        src = _sqlite_path(settings)
        if not src.exists():
            raise BackupError(f"no database at {src}")
        with sqlite3.connect(src) as source, sqlite3.connect(dest) as target:
            source.backup(target)
        return dest
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed (Debian: postgresql-client)")
    url, schema = _pg_parts(settings.database_url)
    cmd = ["pg_dump", "--format=custom", "--no-owner", f"--file={dest}", url]
    if schema:
        cmd.insert(1, f"--schema={schema}")
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise BackupError(f"pg_dump failed: {run.stderr.strip()[:500]}")
    return dest


def restore(settings: Settings, src: Path, *, force: bool = False) -> None:
    """Put the backup ``src`` in place as the store of ``settings`` (no node may be running on it)."""
    src = Path(src)
    if not src.exists():
        raise BackupError(f"no backup at {src}")
    if not settings.is_postgres:
        target = _sqlite_path(settings)
        if target.exists() and not force:
            raise BackupError(f"{target} exists: move it aside first (or --force to replace it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
        with sqlite3.connect(src) as source, sqlite3.connect(target) as out:
            source.backup(out)
        return
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed (Debian: postgresql-client)")
    url, _schema = _pg_parts(settings.database_url)
    cmd = ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={url}", str(src)]
    if force:
        cmd[1:1] = ["--clean", "--if-exists"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise BackupError(f"pg_restore failed: {run.stderr.strip()[:500]}")
