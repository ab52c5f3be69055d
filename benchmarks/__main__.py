"""Run the benchmarks: ``python -m benchmarks [NAME ...]`` (all when no name is given).

Each capability's benchmark is also runnable on its own; the commands are listed in BENCHMARKS.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS = {
    "core": ["core/bench_core.py"],
    "validation": ["validation/bench_validation.py"],
    "search": ["search/bench_search.py"],
    "sim": ["sim/bench_simulate.py"],
    "mpi": ["mpi/bench_accuracy.py", "mpi/bench_speed.py"],
    "card": ["card/bench_verify.py"],
    "triage": ["triage/bench_triage.py"],
    "reportread": ["reportread/bench_interpret.py"],
    "share": ["share/bench_share.py"],
    "recognition": ["recognition/bench_recognition.py"],
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = 0
    for name in names:
        for script in BENCHMARKS[name]:
            print(f"=== {name}: {script}", flush=True)
            failed += subprocess.call([sys.executable, str(HERE / script)], cwd=HERE.parent) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
