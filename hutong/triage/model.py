"""The department model: tf-idf over words and character n-grams, a multinomial logistic
regression, stored as plain arrays (``.npz``, no pickle: a model file is data, not code).

Scoring needs only numpy and the tokenizer; scikit-learn is used to train.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from hutong.triage.knowledge import entries
from hutong.triage.text import Tokenizer

FORMAT = "hutong-triage-model/1"
_TOKENIZER: Tokenizer | None = None


def tokenizer() -> Tokenizer:
    """The process's tokenizer (jieba with the knowledge base's terms as user words)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = Tokenizer(tuple(sorted({e.term for e in entries()})))
    return _TOKENIZER


@dataclass
class TriageModel:
    """A trained department classifier."""

    classes: list[str]
    vocabulary: list[str]
    idf: np.ndarray          # (features,) float32
    coef: np.ndarray         # (classes, features) float32
    intercept: np.ndarray    # (classes,) float32
    meta: dict = field(default_factory=dict)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocabulary)}

    def _features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        counts = Counter(g for g in tokenizer()(text))
        index = self._index
        idx, val = [], []
        for gram, n in counts.items():
            j = index.get(gram)
            if j is not None:
                idx.append(j)
                val.append((1.0 + math.log(n)) * float(self.idf[j]))
        if not idx:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        v = np.asarray(val, dtype=np.float32)
        return np.asarray(idx, dtype=np.int64), v / float(np.linalg.norm(v))

    def predict_proba(self, text: str) -> dict[str, float]:
        """Probability of each department code for one question."""
        idx, val = self._features(text)
        scores = self.intercept + (self.coef[:, idx] @ val if len(idx) else 0.0)
        scores = scores - scores.max()
        p = np.exp(scores)
        p /= p.sum()
        return {c: float(x) for c, x in zip(self.classes, p, strict=True)}

    def known_features(self, text: str) -> int:
        """How many of the question's features the model knows (0: it has nothing to go on)."""
        return len(self._features(text)[0])

    # -- storage ---------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the model as one compressed ``.npz`` file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, format=FORMAT, classes=self.classes)
        vocab = np.frombuffer("\n".join(self.vocabulary).encode("utf-8"), dtype=np.uint8)
        meta_bytes = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, vocab=vocab, idf=self.idf.astype(np.float16),
                                coef=self.coef.astype(np.float16), intercept=self.intercept.astype(np.float32),
                                meta=meta_bytes)

    @classmethod
    def load(cls, path: Path) -> TriageModel:
        """Read a model written by ``save`` (ValueError for anything else)."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode("utf-8"))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"not a triage model ({meta.get('format')!r})")
                vocab = bytes(z["vocab"]).decode("utf-8").split("\n")
                model = cls(list(meta["classes"]), vocab, z["idf"].astype(np.float32),
                            z["coef"].astype(np.float32), z["intercept"].astype(np.float32), meta)
        except (OSError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read triage model {path}: {exc}") from exc
        if model.coef.shape != (len(model.classes), len(vocab)) or model.idf.shape != (len(vocab),):
            raise ValueError(f"triage model {path} has inconsistent shapes")
        return model


def train(texts: list[str], labels: list[str], *, weights: list[float] | None = None, c: float = 8.0,
          min_df: int = 2, max_features: int = 200_000, meta: dict | None = None) -> TriageModel:
    """Fit a model on questions and their department codes."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if len(set(labels)) < 2:
        raise ValueError("training needs questions of at least two departments")
    tok = tokenizer()
    vec = TfidfVectorizer(analyzer=tok, sublinear_tf=True, min_df=min(min_df, max(1, len(texts) // 50)),
                          max_features=max_features, dtype=np.float32)
    x = vec.fit_transform(texts)
    clf = LogisticRegression(C=c, max_iter=400, tol=1e-3)
    clf.fit(x, labels, sample_weight=weights)
    vocab = [""] * len(vec.vocabulary_)
    for term, j in vec.vocabulary_.items():
        vocab[j] = term
    classes = [str(c) for c in clf.classes_]
    coef, intercept = clf.coef_, clf.intercept_
    if len(classes) == 2:  # binary LR keeps one row: expand to the two-class softmax form
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    info = dict(meta or {})
    info.setdefault("trained_questions", len(texts))
    info.setdefault("per_class", dict(Counter(labels)))
    return TriageModel(classes, vocab, vec.idf_.astype(np.float32), coef.astype(np.float32),
                       intercept.astype(np.float32), info)
