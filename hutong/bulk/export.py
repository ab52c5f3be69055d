"""The one NDJSON exporter: ``hutong export`` and Bulk Data ``$export`` jobs both write through it.

Resources are read in id order in chunks (keyset on ``res_id``), so memory stays flat and a job can
stop between chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import false, select

from hutong.search.compartment import compartment_filter, compartment_types
from hutong.search.fence import on_row
from hutong.store.schema import resource as R

CHUNK = 2000


def scope_types(level: str, types: list[str] | None, present: Iterable[str]) -> list[str]:
    """The resource types an export of ``level`` (``system``, ``patient``, ``group``) writes."""
    present = set(present)
    if level == "system":
        wanted = types or sorted(present)
    else:
        allowed = set(compartment_types("Patient"))
        wanted = [t for t in (types or sorted(allowed)) if t in allowed]
    return [t for t in wanted if t in present]


def write_type(conn, res_type: str, path: Path, *, patients: list[str] | None = None, compartment: bool = False,
               since_us: int | None = None, stop: Callable[[], bool] = lambda: False, fence=None) -> int:
    """Write the current resources of ``res_type`` to ``path`` as NDJSON; returns how many.

    ``compartment`` limits them to the Patient compartment (of ``patients``, or of every patient
    when ``patients`` is None); ``fence`` is the job owner's visibility rules (``hutong/search/fence.py``).
    An empty result leaves no file."""
    conds = [R.c.res_type == res_type, R.c.deleted == false()]
    if compartment:
        conds.append(compartment_filter("Patient", patients, [res_type]))
    if since_us is not None:
        conds.append(R.c.ts_us >= since_us)
    visible = on_row(fence, res_type)
    if visible is not None:
        conds.append(visible)
    count, last = 0, ""
    with open(path, "wb") as fh:
        while not stop():
            rows = conn.execute(select(R.c.res_id, R.c.content).where(*conds, R.c.res_id > last)
                                .order_by(R.c.res_id).limit(CHUNK)).all()
            if not rows:
                break
            for _rid, content in rows:
                fh.write(content.encode() if isinstance(content, str) else content)
                fh.write(b"\n")
            count += len(rows)
            last = rows[-1][0]
    if not count:
        path.unlink(missing_ok=True)
    return count


def present_types(conn) -> list[str]:
    """Resource types with at least one stored row."""
    return [t for (t,) in conn.execute(select(R.c.res_type).distinct())]


def export_ndjson(store, out: Path, types: list[str] | None = None, *, since_us: int | None = None,
                  progress: bool = False) -> dict[str, int]:
    """Write current resources to ``out/<Type>.ndjson`` (``hutong export``); returns counts per type."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with store.read() as tx:
        for res_type in scope_types("system", types, present_types(tx.conn)):
            n = write_type(tx.conn, res_type, out / f"{res_type}.ndjson", since_us=since_us)
            if n:
                counts[res_type] = n
    return counts
