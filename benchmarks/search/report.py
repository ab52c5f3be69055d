"""Print the Markdown tables of RESULTS.md from ``results_<scale>x.json`` (written by bench_search.py)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    runs = {}
    for scale in (1, 10):
        path = HERE / f"results_{scale}x.json"
        if path.exists():
            for backend, res in json.loads(path.read_text()).items():
                runs[(backend, scale)] = res
    if not runs:
        print("no results")
        return
    cols = sorted(runs, key=lambda k: (k[1], k[0]))
    names = list(next(iter(runs.values()))["queries"])
    head = "| query | " + " | ".join(f"{b} {s}× median / p95 (SQL floor) ms" for b, s in cols) + " |"
    print(head)
    print("|---|" + "---|" * len(cols))
    for n in names:
        cells = []
        for key in cols:
            r = runs[key]["queries"].get(n)
            cells.append("—" if r is None else f"{r['median_ms']} / {r['p95_ms']} ({r.get('sql_floor_median_ms', '—')})")
        print(f"| {n} | " + " | ".join(cells) + " |")
    print()
    for key in cols:
        qs = runs[key]["queries"].values()
        med = sorted(r["median_ms"] for r in qs)
        worst = max(r["p95_ms"] for r in qs)
        over = [n for n, r in runs[key]["queries"].items() if r["median_ms"] > 10 or r["p95_ms"] > 50]
        print(f"- {key[0]} {key[1]}×: load {runs[key]['load']}; median of medians {med[len(med) // 2]} ms; "
              f"worst p95 {worst} ms; over target: {', '.join(over) or 'none'}")


if __name__ == "__main__":
    main()
