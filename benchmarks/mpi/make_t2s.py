"""Regenerate hutong/mpi/data/t2s_chars.tsv from OpenCC's dictionaries (dev tool; needs opencc-python-reimplemented)."""

import os
from pathlib import Path

import opencc

d = Path(os.path.dirname(opencc.__file__)) / "dictionary"
pairs: dict[str, str] = {}
for fn in ["TSCharacters.txt", "HKVariantsRev.txt", "TWVariantsRev.txt"]:
    for line in (d / fn).read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        src, tgt = parts[0], parts[1].split(" ")[0]
        if len(src) == 1 and len(tgt) == 1 and src != tgt:
            pairs.setdefault(src, tgt)


def resolve(c: str, depth: int = 0) -> str:
    t = pairs.get(c, c)
    return t if t == c or depth > 3 else resolve(t, depth + 1)


out = {s: resolve(s) for s in pairs}
out = {s: t for s, t in out.items() if s != t}
target = Path(__file__).resolve().parents[2] / "hutong" / "mpi" / "data" / "t2s_chars.tsv"
target.write_text("".join(f"{s}\t{t}\n" for s, t in sorted(out.items())), encoding="utf-8")
print(len(out), "entries ->", target)
