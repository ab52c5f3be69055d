"""Bulk Data ``$export`` jobs, kept as rows in the store so that any worker process answers for them.

A kick-off inserts a ``queued`` row; a runner thread in every server process claims queued jobs
(and jobs whose runner stopped sending heartbeats) with a conditional UPDATE, so exactly one
process runs each. The runner writes one NDJSON file per resource type under
``data_dir/exports/<job id>/`` and records each finished file in the row: a job whose process died
resumes at the first type not yet recorded. Status polls, cancellation and downloads read the row,
from whichever worker they reach. Jobs older than ``export_retention_hours`` are deleted with
their files.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import BigInteger, Column, Index, String, Table, Text, delete, insert, or_, select, update

from hutong.api.logs import log_background_failure
from hutong.bulk.export import present_types, scope_types, write_type
from hutong.core.clock import http_date, instant_now, now_us
from hutong.core.errors import FhirError
from hutong.search.fence import owner_fence
from hutong.store.schema import metadata

log = logging.getLogger("hutong.bulk")

bulk_job = Table(
    "bulk_job", metadata,
    Column("id", String(32), primary_key=True),
    Column("level", String(8), nullable=False),  # system | patient | group
    Column("group_id", String(64)),
    Column("types", Text),  # comma-separated, empty for all
    Column("since_us", BigInteger),
    Column("request_url", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("owner", String(128), nullable=False),
    Column("status", String(12), nullable=False),  # queued | running | done | failed | cancelled
    Column("progress", String(64), nullable=False, default=""),
    Column("error", Text),
    Column("output", Text, nullable=False, default="[]"),  # JSON list of manifest entries
    Column("transaction_time", String(40), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("heartbeat_us", BigInteger, nullable=False),
    Column("runner", String(96)),
    Index("ix_bulk_job_status", "status", "heartbeat_us"),
)

TABLES = (bulk_job,)

#: A running job whose runner has not sent a heartbeat for this long is taken over by another.
STALE_US = 30_000_000
HEARTBEAT_US = 5_000_000


@dataclass
class JobStatus:
    """What a status poll answers."""

    status: str
    progress: str
    error: str | None
    manifest: dict | None
    expires: str


def _folder(store, job_id: str) -> Path:
    return Path(store.settings.data_dir) / "exports" / job_id


def kickoff(store, *, level: str, group_id: str | None, types: list[str] | None, since_us: int | None,
            request_url: str, base_url: str, owner: str) -> str:
    """Record a new export job; returns its id (the runner picks it up)."""
    job_id = uuid.uuid4().hex
    ts = now_us()
    with store.write() as tx:
        if level == "group":
            group = tx.read("Group", group_id)
            if group is None or group.deleted:
                raise FhirError(404, "not-found", f"Group/{group_id} is not known")
        tx.conn.execute(insert(bulk_job).values(
            id=job_id, level=level, group_id=group_id, types=",".join(types or []), since_us=since_us,
            request_url=request_url, base_url=base_url, owner=owner, status="queued", progress="queued",
            output="[]", transaction_time=instant_now(), created_us=ts, heartbeat_us=ts))
    return job_id


def _row(conn, job_id: str):
    return conn.execute(select(bulk_job).where(bulk_job.c.id == job_id)).first()


def status(store, job_id: str) -> JobStatus:
    """The job's state (404 for unknown, cancelled or expired jobs)."""
    with store.read(snapshot=False) as tx:
        row = _row(tx.conn, job_id)
    if row is None or row.status == "cancelled":
        raise FhirError(404, "not-found", "unknown, cancelled or expired export job")
    manifest = None
    if row.status == "done":
        manifest = {
            "transactionTime": row.transaction_time,
            "request": row.request_url,
            "requiresAccessToken": bool(store.settings.extra.get("auth_required", False)),
            "output": orjson.loads(row.output),
            "error": [],
        }
    expires = http_date(row.created_us + store.settings.export_retention_hours * 3_600_000_000)
    return JobStatus(row.status, row.progress, row.error, manifest, expires)


def cancel(store, job_id: str) -> None:
    """Cancel a job (or delete a finished one): the runner stops at its next chunk; files go."""
    with store.write() as tx:
        row = _row(tx.conn, job_id)
        if row is None or row.status == "cancelled":
            raise FhirError(404, "not-found", "unknown, cancelled or expired export job")
        tx.conn.execute(update(bulk_job).where(bulk_job.c.id == job_id).values(status="cancelled"))
    if row.status != "running":
        shutil.rmtree(_folder(store, job_id), ignore_errors=True)


def output_file(store, job_id: str, name: str) -> Path:
    """The path of one finished output file (404 otherwise)."""
    if "/" in name or ".." in name or not name.endswith(".ndjson"):
        raise FhirError(404, "not-found", "no such export file")
    with store.read(snapshot=False) as tx:
        row = _row(tx.conn, job_id)
    if row is None or row.status != "done":
        raise FhirError(404, "not-found", "no such export file")
    path = _folder(store, job_id) / name
    if not path.is_file():
        raise FhirError(404, "not-found", "no such export file")
    return path


#: The runner of each open store in this process (a kick-off wakes it instead of waiting for its poll).
_RUNNERS: dict[int, JobRunner] = {}


def wake(store) -> None:
    """Tell this process's runner that a job is waiting."""
    runner = _RUNNERS.get(id(store))
    if runner is not None:
        runner.wake()


class JobRunner:
    """The per-process thread that claims and runs export jobs (``wake()`` after a kick-off)."""

    POLL_S = 2.0

    def __init__(self, store):
        self.store = store
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hutong-export-jobs", daemon=True)

    def start(self) -> None:
        _RUNNERS[id(self.store)] = self
        self._thread.start()

    def stop(self) -> None:
        _RUNNERS.pop(id(self.store), None)
        self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.expire()
                while not self._stop.is_set() and self.run_one():
                    pass
            except Exception as exc:  # a broken job must not kill the runner; the job is marked failed below
                log_background_failure(log, "export runner error", exc)
            self._wake.wait(self.POLL_S)
            self._wake.clear()

    def expire(self) -> int:
        """Delete jobs older than the retention period, with their files."""
        cutoff = now_us() - self.store.settings.export_retention_hours * 3_600_000_000
        with self.store.write() as tx:
            old = [r.id for r in tx.conn.execute(select(bulk_job.c.id).where(bulk_job.c.created_us < cutoff))]
            if old:
                tx.conn.execute(delete(bulk_job).where(bulk_job.c.id.in_(old)))
        for job_id in old:
            shutil.rmtree(_folder(self.store, job_id), ignore_errors=True)
        return len(old)

    def _claim(self):
        ts = now_us()
        with self.store.write() as tx:
            row = tx.conn.execute(
                select(bulk_job).where(or_(bulk_job.c.status == "queued",
                                           (bulk_job.c.status == "running") & (bulk_job.c.heartbeat_us < ts - STALE_US)))
                .order_by(bulk_job.c.created_us).limit(1)).first()
            if row is None:
                return None
            claimed = tx.conn.execute(
                update(bulk_job).where(bulk_job.c.id == row.id, bulk_job.c.status == row.status,
                                       bulk_job.c.heartbeat_us == row.heartbeat_us)
                .values(status="running", runner=self.name, heartbeat_us=ts)).rowcount
        return row if claimed == 1 else None

    def run_one(self) -> bool:
        """Claim and run one job; False when there was none."""
        row = self._claim()
        if row is None:
            return False
        try:
            self._export(row)
        except FhirError as exc:
            self._finish(row.id, "failed", error=exc.diagnostics)
        except Exception as exc:  # report any failure through the status endpoint
            log.exception("export %s failed", row.id)
            self._finish(row.id, "failed", error=f"export failed: {type(exc).__name__}")
        return True

    def _still_mine(self, job_id: str) -> bool:
        with self.store.write() as tx:
            return tx.conn.execute(
                update(bulk_job).where(bulk_job.c.id == job_id, bulk_job.c.status == "running",
                                       bulk_job.c.runner == self.name).values(heartbeat_us=now_us())).rowcount == 1

    def _export(self, row) -> None:
        folder = _folder(self.store, row.id)
        folder.mkdir(parents=True, exist_ok=True)
        output = orjson.loads(row.output)
        done = {o["type"] for o in output}  # a resumed job skips the files already recorded
        last_beat = now_us()
        cancelled = False

        def stop() -> bool:
            nonlocal last_beat, cancelled
            if self._stop.is_set():
                return True
            if now_us() - last_beat > HEARTBEAT_US:
                last_beat = now_us()
                cancelled = not self._still_mine(row.id)
            return cancelled

        fence = owner_fence(self.store, row.owner)  # the owner's tenant and consent rules, as of now
        with self.store.read() as tx:
            patients = None
            if row.level == "group":
                group = tx.read("Group", row.group_id)
                if group is None or group.deleted:
                    raise FhirError(404, "not-found", f"Group/{row.group_id} is not known")
                patients = [m["entity"]["reference"].split("/", 1)[1]
                            for m in group.resource.get("member") or []
                            if isinstance((m or {}).get("entity"), dict)
                            and str(m["entity"].get("reference", "")).startswith("Patient/")]
            types = scope_types(row.level, [t for t in (row.types or "").split(",") if t] or None,
                                present_types(tx.conn))
            for n, res_type in enumerate(types):
                if res_type in done:
                    continue
                self._progress(row.id, f"{n}/{len(types)} types")
                count = write_type(tx.conn, res_type, folder / f"{res_type}.ndjson", patients=patients,
                                   compartment=row.level != "system", since_us=row.since_us, stop=stop,
                                   fence=fence)
                if stop():
                    break
                if count:
                    output.append({"type": res_type, "url": f"{row.base_url}/$export-file/{row.id}/{res_type}.ndjson",
                                   "count": count})
                    self._record(row.id, output)
        if cancelled or not self._still_mine(row.id):
            shutil.rmtree(folder, ignore_errors=True)
            return
        if self._stop.is_set():
            return  # the process is stopping: another runner resumes it after STALE_US
        self._finish(row.id, "done", output=output)

    def _progress(self, job_id: str, text: str) -> None:
        with self.store.write() as tx:
            tx.conn.execute(update(bulk_job).where(bulk_job.c.id == job_id, bulk_job.c.runner == self.name)
                            .values(progress=text, heartbeat_us=now_us()))

    def _record(self, job_id: str, output: list[dict]) -> None:
        with self.store.write() as tx:
            tx.conn.execute(update(bulk_job).where(bulk_job.c.id == job_id, bulk_job.c.runner == self.name)
                            .values(output=orjson.dumps(output).decode(), heartbeat_us=now_us()))

    def _finish(self, job_id: str, state: str, *, output: list[dict] | None = None, error: str | None = None) -> None:
        values: dict = {"status": state, "progress": state, "heartbeat_us": now_us()}
        if output is not None:
            values["output"] = orjson.dumps(output).decode()
        if error is not None:
            values["error"] = error
        with self.store.write() as tx:
            tx.conn.execute(update(bulk_job).where(bulk_job.c.id == job_id, bulk_job.c.status == "running")
                            .values(**values))
