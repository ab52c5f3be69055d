"""Build the shipped default model: the MIT-licensed questions (training split only) plus the
questions written from the team's own knowledge base. Never the research-only sets.

    python -m hutong.triage.build --shared ../shared/data [--out hutong/triage/data/model.npz]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path

from hutong.triage import corpora
from hutong.triage.model import train
from hutong.triage.synth import synthesize

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "model.npz"
#: The MIT set is internal medicine only and very uneven; cap each department so it does not drown
#: the knowledge base's other departments.
MIT_CAP = 700
#: Weight of the knowledge base's keyword evidence blended with the model's probabilities (tuned
#: on the research sets' training split: 0.3-0.5 all help, 0.4 chosen).
KEYWORD_BLEND = 0.4


def training_set(shared: Path, seed: int = 7) -> tuple[list[str], list[str], dict]:
    """Texts and codes of the shipped model's training data, and a description of it."""
    rng = random.Random(seed)
    mit = [q for q in corpora.load(shared, corpora.MIT_SOURCES) if not q.held_out]
    by_code: dict[str, list[corpora.Question]] = {}
    for q in mit:
        by_code.setdefault(q.codes[0], []).append(q)
    texts, labels = [], []
    for code in sorted(by_code):
        qs = by_code[code]
        rng.shuffle(qs)
        for q in qs[:MIT_CAP]:
            texts.append(q.text)
            labels.append(code)
    n_mit = len(texts)
    for text, code in synthesize():
        texts.append(text)
        labels.append(code)
    info = {
        "name": "hutong-default",
        "built": time.strftime("%Y-%m-%d"),
        "sources": {
            "toyhom_neike_sample (MIT, © 2019 Toyhom; training split, ≤700 per department)": n_mit,
            "Hutong knowledge base questions (own words, Apache-2.0)": len(texts) - n_mit,
        },
        "licence": "Apache-2.0 (Hutong) with the MIT notice of Toyhom/Chinese-medical-dialogue-data",
    }
    return texts, labels, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True, help="the ../shared/data folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    t0 = time.perf_counter()
    texts, labels, info = training_set(args.shared)
    counts = Counter(labels)
    # Balanced class weights: the MIT set makes a few internal-medicine classes much larger.
    weights = [len(labels) / (len(counts) * counts[label]) for label in labels]
    model = train(texts, labels, weights=weights, meta=dict(info, keyword_blend=KEYWORD_BLEND))
    model.save(args.out)
    print(f"{len(texts)} questions, {len(model.classes)} departments, {len(model.vocabulary)} features; "
          f"{args.out} {args.out.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.0f} s")
    print(sorted(Counter(labels).items()))


if __name__ == "__main__":
    main()
