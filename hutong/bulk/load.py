"""Bulk load of NDJSON and Bundle files, streaming so memory stays flat (``hutong import``)."""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from hutong.core.errors import FhirError
from hutong.fhir.bundle import process_batch, process_transaction
from hutong.store import Store

#: Load order for a folder of per-type NDJSON files, so referenced resources usually come first.
TYPE_ORDER = [
    "Organization", "Location", "HealthcareService", "Endpoint", "Practitioner", "PractitionerRole",
    "Patient", "RelatedPerson", "Person", "Group", "Device", "Medication", "Encounter", "EpisodeOfCare",
    "Condition", "ServiceRequest", "Specimen", "Observation", "DiagnosticReport", "ImagingStudy",
    "MedicationRequest", "MedicationAdministration", "Procedure", "Immunization", "AllergyIntolerance",
    "CarePlan", "Goal", "DocumentReference", "Claim", "ExplanationOfBenefit",
]


@dataclass
class ImportSummary:
    """Counts of what a bulk load did."""

    files: int = 0
    resources: int = 0
    created: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def error(self, where: str, message: str) -> None:
        self.failed += 1
        if len(self.errors) < 20:
            self.errors.append(f"{where}: {message}")

    def add(self, other: ImportSummary) -> None:
        self.resources += other.resources
        self.created.update(other.created)
        self.updated.update(other.updated)

    def render(self) -> str:
        lines = [
            f"files: {self.files}  resources: {self.resources}  failed: {self.failed}"
            + (f"  ({self.resources / self.seconds:,.0f} resources/s)" if self.seconds else "")
        ]
        for res_type in sorted(set(self.created) | set(self.updated)):
            lines.append(f"  {res_type}: {self.created[res_type]} created, {self.updated[res_type]} updated")
        lines.extend(f"  error {e}" for e in self.errors)
        return "\n".join(lines)


def _open(path: Path) -> io.BufferedReader:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _type_rank(path: Path) -> tuple[int, str]:
    name = path.name.split(".")[0]
    return (TYPE_ORDER.index(name) if name in TYPE_ORDER else len(TYPE_ORDER), path.name)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files to load: folders expand to their NDJSON/JSON files, per-type files in dependency order."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            # Skip export/simulation manifests: they describe the data, they are not FHIR resources.
            files = [p for p in path.rglob("*") if p.is_file() and (".ndjson" in p.name or ".json" in p.name)
                     and not p.name.startswith("manifest")]
            out.extend(sorted(files, key=_type_rank))
        else:
            out.append(path)
    return out


def _ndjson_resources(fh, where: str, summary: ImportSummary) -> Iterator[dict]:
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            summary.error(f"{where}:{lineno}", f"not valid JSON ({exc})")
            continue
        if not isinstance(resource, dict):
            summary.error(f"{where}:{lineno}", "a line must hold one JSON object")
            continue
        yield resource


def upsert_resources(store: Store, resources: list[dict], summary: ImportSummary, where: str = "") -> None:
    """Create-or-update a batch of resources in one transaction (ids kept; a bad one is retried alone)."""
    try:
        with store.write() as tx:
            tx.check_references = False
            counts = _upsert(tx, resources)
        summary.add(counts)
    except FhirError:
        if len(resources) == 1:
            raise
        # Find the bad resources by retrying one by one; the good ones still load.
        for resource in resources:
            try:
                with store.write() as tx:
                    tx.check_references = False
                    counts = _upsert(tx, [resource])
                summary.add(counts)
            except FhirError as exc:
                rid = f"{resource.get('resourceType')}/{resource.get('id')}"
                summary.error(f"{where} {rid}", exc.diagnostics)


def _upsert(tx, resources: list[dict]) -> ImportSummary:
    """Write ``resources`` in ``tx``; the counts returned count only once the transaction commits."""
    summary = ImportSummary()
    keys = [(r.get("resourceType"), r.get("id")) for r in resources]
    wanted = [k for k in keys if isinstance(k[0], str) and isinstance(k[1], str)]
    # Deleted ones count as present: their id is taken, so they take the update path.
    present = tx.existing(set(wanted), include_deleted=True)
    seen: set[tuple[str, str]] = set()
    for resource, key in zip(resources, keys, strict=True):
        res_type = key[0] if isinstance(key[0], str) else None
        if res_type is None:
            raise FhirError(400, "required", "resourceType is missing")
        if key[1] is None:
            result = tx.create(resource)
        elif key in present or key in seen:
            result = tx.update(res_type, key[1], resource)
        else:
            result = tx.create(resource, res_id=key[1], fresh_id=True)  # absence checked above
            seen.add(key)
        if result.outcome == "created":
            summary.created[res_type] += 1
        elif result.outcome == "updated":
            summary.updated[res_type] += 1
        summary.resources += 1
    return summary


def import_paths(store: Store, paths: Iterable[Path], *, batch_size: int = 500, progress: bool = False,
                 base_url: str = "") -> ImportSummary:
    """Load NDJSON files and Bundle files (transaction, batch or collection)."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    files = expand_paths(paths)
    summary = ImportSummary()
    started = time.perf_counter()
    total_bytes = sum(f.stat().st_size for f in files if f.exists())
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   disable=not progress, transient=False)
    with bar:
        task = bar.add_task("importing", total=total_bytes)
        for path in files:
            if not path.exists():
                summary.error(str(path), "no such file")
                continue
            summary.files += 1
            bar.update(task, description=f"importing {path.name[:40]}")
            try:
                if ".ndjson" in path.name:
                    with _open(path) as fh:
                        chunk: list[dict] = []
                        for resource in _ndjson_resources(fh, path.name, summary):
                            chunk.append(resource)
                            if len(chunk) >= batch_size:
                                upsert_resources(store, chunk, summary, path.name)
                                chunk = []
                        if chunk:
                            upsert_resources(store, chunk, summary, path.name)
                else:
                    with _open(path) as fh:
                        doc = orjson.loads(fh.read())
                    _import_bundle(store, doc, summary, path.name, base_url)
            except (OSError, orjson.JSONDecodeError) as exc:
                summary.error(path.name, f"could not be read: {exc}")
            except FhirError as exc:
                summary.error(path.name, exc.diagnostics)
            bar.update(task, advance=path.stat().st_size)
    summary.seconds = time.perf_counter() - started
    return summary


def _import_bundle(store: Store, doc, summary: ImportSummary, where: str, base_url: str) -> None:
    if not isinstance(doc, dict):
        summary.error(where, "not a JSON object")
        return
    if doc.get("resourceType") != "Bundle":
        upsert_resources(store, [doc], summary, where)
        return
    kind = doc.get("type")
    entries = [e for e in doc.get("entry") or [] if isinstance(e, dict)]
    if kind == "transaction":
        response = process_transaction(store, doc, base_url)
        _count_responses(response, entries, summary)
    elif kind == "batch":
        response = process_batch(store, doc, base_url)
        for i, entry in enumerate(response["entry"]):
            status = entry["response"]["status"]
            if status[:1] in "45":
                summary.error(f"{where} entry {i}", entry["response"].get("outcome", {}).get("issue", [{}])[0].get(
                    "diagnostics", status))
        _count_responses(response, entries, summary)
    else:
        resources = [e["resource"] for e in entries if isinstance(e.get("resource"), dict)]
        for i in range(0, len(resources), 500):
            upsert_resources(store, resources[i:i + 500], summary, where)


def _count_responses(response: dict, entries: list[dict], summary: ImportSummary) -> None:
    for entry, request_entry in zip(response["entry"], entries, strict=False):
        status = entry["response"]["status"]
        res_type = (request_entry.get("resource") or {}).get("resourceType") or "?"
        if status.startswith("201"):
            summary.created[res_type] += 1
            summary.resources += 1
        elif status.startswith("200"):
            summary.updated[res_type] += 1
            summary.resources += 1
