"""Developer tool: rebuild the compact division files in this folder from ``../shared/data``.

Run from the repository root: ``.venv/bin/python -m hutong.china.data.build_divisions``.
Never imported at run time (the product reads only the gzip files written here).
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2] / ".." / "shared" / "data" / "china_admin_divisions"


def _write(name: str, rows: list[tuple[str, str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("code", "name", "parent"))
    w.writerows(rows)
    # mtime=0 keeps the file byte-identical between rebuilds.
    with open(HERE / name, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("utf-8"))


def main() -> None:
    """Write ``jilin_divisions.csv.gz`` (all 5 levels) and ``cn_divisions.csv.gz`` (national, 3 levels)."""
    jilin = []
    with open(SRC / "jilin_22_hierarchy.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            jilin.append((r["code"], r["name"], r["parent_code"]))
    _write("jilin_divisions.csv.gz", jilin)
    nat = []
    with open(SRC / "provinces.csv", encoding="utf-8") as fh:
        nat += [(r["code"], r["name"], "") for r in csv.DictReader(fh)]
    with open(SRC / "cities.csv", encoding="utf-8") as fh:
        nat += [(r["code"], r["name"], r["provinceCode"]) for r in csv.DictReader(fh)]
    with open(SRC / "areas.csv", encoding="utf-8") as fh:
        nat += [(r["code"], r["name"], r["cityCode"]) for r in csv.DictReader(fh)]
    _write("cn_divisions.csv.gz", nat)


if __name__ == "__main__":
    main()
