"""Report-interpretation speed: a blood count + liver panel (20 items) interpreted in process,
beside the baseline of looking up the same items' intervals only (no conversion, no text).

    python benchmarks/reportread/bench_interpret.py
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hutong.reportread.catalog import identify, read_critical_table  # noqa: E402
from hutong.reportread.interpret import Person, national_interval  # noqa: E402
from hutong.reportread.report import from_bundle, interpret  # noqa: E402
from tests.reportread.helpers import CBC, LFT, bundle, obs, panel  # noqa: E402


def main() -> int:
    patient = {"resourceType": "Patient", "id": "b", "gender": "female", "birthDate": "1970-01-01"}
    rows = panel(CBC + LFT) + [obs("cr", None, "肌酐(Cr)", 1.1, "mg/dL"), obs("tc", None, "总胆固醇", 220, "mg/dL")]
    doc = bundle(patient, rows)
    table = read_critical_table()
    interpret(from_bundle(doc), table)  # warm caches (ucumvert grammar, unit factors)
    n = 2000
    full, base = [], []
    for _ in range(n):
        t = time.perf_counter()
        interpret(from_bundle(doc), table)
        full.append((time.perf_counter() - t) * 1000)
    person = Person("female", 54)
    for _ in range(n):
        t = time.perf_counter()
        for o in rows:
            a = identify([c["code"] for c in o["code"]["coding"]], [o["code"]["text"]])
            national_interval(a, person)
        base.append((time.perf_counter() - t) * 1000)

    def q(v, p):
        return statistics.quantiles(v, n=100)[p - 1]

    lines = ["# Report-interpretation benchmark", "",
             f"Command: `python benchmarks/reportread/bench_interpret.py` ({time.strftime('%Y-%m-%d %H:%M')}, Python "
             f"{platform.python_version()}, 2 shared cores: figures vary with load). One report of {len(rows)} items "
             f"(blood count, liver panel, creatinine and cholesterol in mg/dL), {n} runs in process.", "",
             "| | p50 | p95 | reports/s (1 core) |", "|---|---:|---:|---:|",
             f"| full interpretation (convert, interval, flag, critical check, explanation, summary) | {q(full, 50):.2f} ms | "
             f"{q(full, 95):.2f} ms | {1000 / statistics.mean(full):,.0f} |",
             f"| baseline: identify + interval lookup only | {q(base, 50):.2f} ms | {q(base, 95):.2f} ms | "
             f"{1000 / statistics.mean(base):,.0f} |", ""]
    out = Path(__file__).resolve().parent / "RESULTS.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
