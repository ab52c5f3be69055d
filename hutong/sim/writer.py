"""Streaming NDJSON output: one file per resource type, optional per-institution copies, truth CSVs."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import orjson

RESOURCE_ORDER = (
    "Organization", "Location", "HealthcareService", "Practitioner", "PractitionerRole", "Patient",
    "Encounter", "Condition", "Observation", "ImagingStudy", "DiagnosticReport", "MedicationRequest",
)
_PATIENT_BUCKETS = 64
_FLUSH_BYTES = 32 * 1024 * 1024


class Writer:
    """Writes resources as they are generated; memory stays flat (bounded buffers only)."""

    def __init__(self, out: Path, per_institution: bool = False) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "truth").mkdir(exist_ok=True)
        self.files: dict[str, object] = {}
        self.counts: dict[str, int] = dict.fromkeys(RESOURCE_ORDER, 0)
        self.per_institution = per_institution
        if per_institution:
            shutil.rmtree(self.out / "institutions", ignore_errors=True)  # appends below must start empty
        self._inst: dict[tuple[str, str], bytearray] = {}
        self._inst_bytes = 0
        self._tmp = self.out / ".patient-buckets"
        # Patient records go through hashed buckets so that one person's records are not adjacent in the
        # file (adjacency would leak the truth to a patient index reading the file in order).
        self._tmp.mkdir(exist_ok=True)
        self._buckets = [open(self._tmp / f"{i:02d}.ndjson", "wb", buffering=256 * 1024) for i in range(_PATIENT_BUCKETS)]
        self._truth: dict[str, tuple[object, csv.writer]] = {}
        for t in RESOURCE_ORDER:
            if t != "Patient":
                self.files[t] = open(self.out / f"{t}.ndjson", "wb", buffering=1024 * 1024)

    def truth(self, name: str, header: tuple[str, ...]):
        """A CSV writer for ``truth/{name}.csv`` (created with its header on first use)."""
        if name not in self._truth:
            fh = open(self.out / "truth" / f"{name}.csv", "w", encoding="utf-8", newline="")
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            self._truth[name] = (fh, w)
        return self._truth[name][1]

    def write(self, res: dict, org: str | None = None) -> None:
        t = res["resourceType"]
        line = orjson.dumps(res, option=orjson.OPT_APPEND_NEWLINE)
        self.counts[t] += 1
        if t == "Patient":
            self._buckets[int(res["id"][:4], 16) % _PATIENT_BUCKETS].write(line)
        else:
            self.files[t].write(line)
        if org and self.per_institution:
            buf = self._inst.get((org, t))
            if buf is None:
                buf = self._inst[(org, t)] = bytearray()
            buf += line
            self._inst_bytes += len(line)
            if self._inst_bytes > _FLUSH_BYTES:
                self._flush_inst()

    def _flush_inst(self) -> None:
        for (org, t), buf in sorted(self._inst.items()):
            if buf:
                d = self.out / "institutions" / org
                d.mkdir(parents=True, exist_ok=True)
                with open(d / f"{t}.ndjson", "ab") as fh:
                    fh.write(buf)
        self._inst.clear()
        self._inst_bytes = 0

    def append_chunk(self, chunk: Path) -> None:
        """Append a closed chunk writer's output (``close(merge_patients=False)``) and delete it."""
        chunk = Path(chunk)
        counts = orjson.loads((chunk / "counts.json").read_bytes())
        for t, n in counts.items():
            self.counts[t] += n
        for t, fh in self.files.items():
            with open(chunk / f"{t}.ndjson", "rb") as src:
                shutil.copyfileobj(src, fh, 1024 * 1024)
        for i, fh in enumerate(self._buckets):
            with open(chunk / ".patient-buckets" / f"{i:02d}.ndjson", "rb") as src:
                shutil.copyfileobj(src, fh, 1024 * 1024)
        for name, (fh, _w) in self._truth.items():
            with open(chunk / "truth" / f"{name}.csv", encoding="utf-8", newline="") as src:
                src.readline()  # its header
                shutil.copyfileobj(src, fh, 1024 * 1024)
        if self.per_institution:
            self._flush_inst()
            inst = chunk / "institutions"
            for org_dir in sorted(inst.iterdir()) if inst.exists() else ():
                d = self.out / "institutions" / org_dir.name
                d.mkdir(parents=True, exist_ok=True)
                for f in sorted(org_dir.iterdir()):
                    with open(f, "rb") as src, open(d / f.name, "ab") as dst:
                        shutil.copyfileobj(src, dst, 1024 * 1024)
        shutil.rmtree(chunk)

    def close(self, merge_patients: bool = True) -> None:
        """Close every file. A chunk writer (``merge_patients=False``) keeps its Patient buckets and
        writes its counts for ``append_chunk``; the run's writer merges the buckets into Patient.ndjson."""
        for fh in self.files.values():
            fh.close()
        for fh in self._buckets:
            fh.close()
        if not merge_patients:
            if self.per_institution:
                self._flush_inst()
            for fh, _ in self._truth.values():
                fh.close()
            (self.out / "counts.json").write_bytes(orjson.dumps(self.counts))
            return
        with open(self.out / "Patient.ndjson", "wb") as dst:
            for i in range(_PATIENT_BUCKETS):
                p = self._tmp / f"{i:02d}.ndjson"
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
        shutil.rmtree(self._tmp)
        if self.per_institution:
            self._flush_inst()
        for fh, _ in self._truth.values():
            fh.close()
