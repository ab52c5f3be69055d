"""Post a simulated province to a running FHIR server in transaction (or batch) Bundles of PUT requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from hutong.sim.writer import RESOURCE_ORDER


def iter_bundles(out_dir: Path, size: int = 500, bundle_type: str = "transaction") -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(resource type, entry count, Bundle JSON)`` in dependency order (referenced types first)."""
    out_dir = Path(out_dir)
    for t in RESOURCE_ORDER:
        path = out_dir / f"{t}.ndjson"
        if not path.exists():
            continue
        entries: list[bytes] = []
        with open(path, "rb") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                rid = orjson.loads(line)["id"]
                # Splice the stored JSON text in as-is instead of re-serialising it.
                entries.append(b'{"resource":' + line + b',"request":{"method":"PUT","url":"' + f"{t}/{rid}".encode() + b'"}}')
                if len(entries) >= size:
                    yield t, len(entries), _bundle(entries, bundle_type)
                    entries = []
        if entries:
            yield t, len(entries), _bundle(entries, bundle_type)


def _bundle(entries: list[bytes], bundle_type: str) -> bytes:
    return b'{"resourceType":"Bundle","type":"' + bundle_type.encode() + b'","entry":[' + b",".join(entries) + b"]}"


def count_lines(out_dir: Path) -> int:
    """Number of resources in the NDJSON files of ``out_dir``."""
    total = 0
    for t in RESOURCE_ORDER:
        p = Path(out_dir) / f"{t}.ndjson"
        if p.exists():
            with open(p, "rb") as fh:
                total += sum(1 for _ in fh)
    return total


def load(out_dir: Path, url: str, size: int = 500, bundle_type: str = "transaction", progress: bool = True,
         timeout: float = 300.0, headers: dict | None = None, transport: httpx.BaseTransport | None = None) -> dict:
    """POST every resource to the FHIR base ``url``; returns ``{"resources": n, "bundles": m, "errors": k}``.

    A ``transaction`` Bundle failing as a whole counts all its entries as errors; in a ``batch`` Bundle each
    entry's response status is checked.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = count_lines(out_dir)
    done = bundles = errors = 0
    hdrs = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **(headers or {})}
    first_error = ""
    cols = (TextColumn("[bold]导入 {task.fields[rtype]:<18}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} 条/秒"), TimeRemainingColumn())
    with httpx.Client(timeout=timeout, transport=transport) as client, Progress(*cols, disable=not progress) as bar:
        task = bar.add_task("load", total=total, rtype="", rate="")
        for rtype, n, body in iter_bundles(out_dir, size, bundle_type):
            resp = client.post(url.rstrip("/"), content=body, headers=hdrs)
            bundles += 1
            if resp.status_code >= 400:
                errors += n
                first_error = first_error or f"{resp.status_code}: {resp.text[:300]}"
            elif bundle_type == "batch":
                for e in resp.json().get("entry", []):
                    status = (e.get("response") or {}).get("status", "")
                    if status[:1] not in ("2",):
                        errors += 1
                        first_error = first_error or f"{status}: {str(e)[:300]}"
            done += n
            speed = bar.tasks[0].speed
            bar.update(task, advance=n, rtype=rtype, rate=f"{speed:,.0f}" if speed else "")
    return {"resources": done, "bundles": bundles, "errors": errors, "first_error": first_error}
