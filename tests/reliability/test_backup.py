"""A backup taken while the node serves restores into a working node with everything in it."""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy import create_engine, text

from hutong.api.app import node_store
from hutong.store.backup import backup, restore
from tests.conftest import PG_URL, _pg_sqlalchemy_url


def _fill(store) -> list[str]:
    ids = []
    for i in range(20):
        pid = store.create({"resourceType": "Patient", "name": [{"family": "吴", "given": [str(i)]}]}).stored.res_id
        store.update("Patient", pid, {"resourceType": "Patient", "id": pid, "gender": "female"})
        ids.append(pid)
    store.run_consumers()
    return ids


def _check(store, ids: list[str]) -> None:
    with store.read() as tx:
        for pid in ids:
            assert tx.read("Patient", pid).version_id == 2
            assert tx.vread("Patient", pid, "1").resource["name"][0]["family"] == "吴"
    assert store.outbox.last_seq() >= 40


def test_backup_and_restore(store, tmp_path):
    ids = _fill(store)
    archive = backup(store.settings, tmp_path / "backup.bin")
    if not store.settings.is_postgres:
        target = replace(store.settings, data_dir=tmp_path / "restored")
        restore(target, archive)
        restored = node_store(target)
        try:
            _check(restored, ids)
            assert restored.outbox.position("mpi-linker") == store.outbox.position("mpi-linker")
        finally:
            restored.close()
        return
    # PostgreSQL: restore into a new, empty database of the same server.
    name = "hutong_restore_" + uuid.uuid4().hex[:8]
    admin = create_engine(_pg_sqlalchemy_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        base = PG_URL.rsplit("/", 1)[0]
        schema = store.settings.database_url.split("search_path%3D", 1)[1]
        target = replace(store.settings, database_url=f"{base}/{name}?options=-csearch_path%3D{schema}",
                         data_dir=tmp_path / "restored")
        restore(target, archive)
        restored = node_store(target)
        try:
            _check(restored, ids)
        finally:
            restored.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
