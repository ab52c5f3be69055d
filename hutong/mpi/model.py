"""Fellegi–Sunter model: m/u probabilities per comparison level, estimated from the data.

As in Splink: ``u`` (the chance of each level among non-matching pairs) comes from comparing random pairs;
``m`` (among matching pairs) and the match prior ``λ`` come from expectation–maximisation over the
blocked candidate pairs, with ``u`` held fixed. Exact agreement on a value is then re-weighted by how common
that value is (term-frequency adjustment: a shared 王伟 says less than a shared rare name).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from hutong.mpi.compare import BY_NAME, Comparison, compare_all, id_conflict
from hutong.mpi.features import FeatureTable

#: HL7 match-grade codes (http://terminology.hl7.org/CodeSystem/match-grade).
GRADES = ("certain", "probable", "possible", "certainly-not")
MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"


@dataclass(frozen=True)
class Thresholds:
    """Match probability at or above which a pair is graded certain / probable / possible (configuration)."""

    certain: float = 0.99
    probable: float = 0.9
    possible: float = 0.5
    #: Batch deduplication joins records whose pair probability reaches this.
    link: float = 0.9
    #: Highest probability allowed for two records with different *valid* resident IDs.
    id_conflict_cap: float = 0.3
    #: Highest probability for a pair with nothing but name / birth date / sex (and places) in common: no
    #: agreeing resident ID, phone, address or other identifier. Below ``certain``, so such a pair (two 王伟
    #: born the same day) goes to review instead of being linked automatically. 1.0 switches the rule off.
    uncorroborated_cap: float = 0.985
    #: Highest probability for two records with different given names (or two newborn placeholders) and no
    #: agreeing resident ID, whatever else they share: twins. Below ``link``, so such a pair is reviewed.
    twin_cap: float = 0.85

    def grade(self, p: float) -> str:
        """The HL7 match grade for probability ``p``."""
        if p >= self.certain:
            return "certain"
        if p >= self.probable:
            return "probable"
        if p >= self.possible:
            return "possible"
        return "certainly-not"


_ORDER = {"一": "1", "二": "2", "三": "3", "大": "1", "小": "2", "甲": "1", "乙": "2", "长": "1", "次": "2"}


def _birth_order(placeholder: str) -> str:
    """The birth order a desk gave twins' placeholders (王丽之子一, 新生儿2, 王丽之长女 → "1"…), or ""."""
    if not placeholder or placeholder == "1":
        return ""
    last = placeholder[-1]
    if last.isdigit():
        return last
    if last in "一二三甲乙":
        return _ORDER[last]
    m = re.search(r"之([长次大小])[子女]", placeholder)
    return _ORDER[m.group(1)] if m else ""


def _monotone(m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Make the Bayes factor m/u non-increasing from the best level to the worst (pool adjacent violators,
    weighted by u): a closer agreement can never be weaker evidence than a looser one."""
    blocks: list[list[float]] = []  # [sum_m, sum_u, count]
    for mv, uv in zip(m.tolist(), u.tolist(), strict=True):
        blocks.append([mv, uv, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            b = blocks.pop()
            blocks[-1][0] += b[0]
            blocks[-1][1] += b[1]
            blocks[-1][2] += b[2]
    out = []
    pos = 0
    for sm, su, cnt in blocks:
        ratio = sm / su
        out += [ratio * x for x in u[pos:pos + cnt]]
        pos += cnt
    arr = np.asarray(out, dtype=float)
    return arr / arr.sum()


def _initial_m(n_levels: int) -> np.ndarray:
    # Matches mostly agree exactly; the rest spread geometrically over the weaker levels.
    if n_levels == 1:
        return np.ones(1)
    rest = np.array([0.5 ** k for k in range(1, n_levels)])
    rest = rest / rest.sum() * 0.1
    return np.concatenate([[0.9], rest])


@dataclass
class Model:
    """A trained (or default) Fellegi–Sunter model over a list of comparisons."""

    comparisons: list[str]
    m: list[np.ndarray]
    u: list[np.ndarray]
    lam: float = 0.01
    thresholds: Thresholds = field(default_factory=Thresholds)
    em_iterations: int = 0
    #: Records in the data the model was fitted on. Non-zero means ``lam`` is, as in Splink, the chance that
    #: two *random* records match (blocking-independent); online it is rescaled to the index size, keeping the
    #: expected number of matching records per record. Zero (older models): ``lam`` is used as it is.
    n_records: int = 0

    @property
    def comps(self) -> list[Comparison]:
        """The comparison objects, in column order."""
        return [BY_NAME[n] for n in self.comparisons]

    # --- estimation ----------------------------------------------------------------------------------

    @classmethod
    def estimate_u(
        cls,
        comps: list[Comparison],
        t: FeatureTable,
        *,
        n_pairs: int = 300_000,
        split: int | None = None,
        seed: int = 1,
        workers: int = 0,
    ) -> Model:
        """A model whose ``u`` comes from ``n_pairs`` random pairs (cross pairs only when ``split`` is the size
        of the left file in a two-file link); ``m`` starts at a prior to be refined by :meth:`train_em`."""
        rng = np.random.default_rng(seed)
        n = len(t)
        if split is None:
            i = rng.integers(0, n, n_pairs)
            j = rng.integers(0, n, n_pairs)
            keep = i != j
            i, j = i[keep], j[keep]
        else:
            i = rng.integers(0, split, n_pairs)
            j = rng.integers(split, n, n_pairs)
        gamma, _ = compare_all(comps, t, i, j, workers=workers)
        u = []
        for k, c in enumerate(comps):
            col = gamma[:, k]
            counts = np.bincount(col[col >= 0].astype(np.int64), minlength=len(c.levels)).astype(float)
            total = counts.sum()
            # smoothing: a level never seen among random pairs still gets a small, finite u
            u.append((counts + 0.5) / (total + 0.5 * len(c.levels)) if total else np.full(len(c.levels), 1 / len(c.levels)))
        return cls([c.name for c in comps], [_initial_m(len(c.levels)) for c in comps], u)

    def train_em(self, gamma: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6, lam0: float | None = None) -> Model:
        """Estimate ``m`` and ``λ`` by EM over candidate pairs' levels (``u`` fixed). Returns ``self``."""
        if len(gamma) == 0:
            return self
        patterns, counts = np.unique(gamma, axis=0, return_counts=True)
        counts = counts.astype(float)
        m, seed_lam = self._seed_m(patterns, counts)
        lam = lam0 if lam0 is not None else seed_lam
        logu = self._log_table(self.u, patterns)
        it = 0
        for step in range(1, max_iter + 1):
            it = step
            logm = self._log_table(m, patterns)
            a = math.log(lam) + logm
            b = math.log(1 - lam) + logu
            mx = np.maximum(a, b)
            w = np.exp(a - mx) / (np.exp(a - mx) + np.exp(b - mx))
            wc = w * counts
            new_m = []
            for k in range(len(m)):
                col = patterns[:, k]
                mask = col >= 0
                s = np.bincount(col[mask].astype(np.int64), weights=wc[mask], minlength=len(m[k]))
                tot = s.sum()
                nm = (s + 1e-6) / (tot + 1e-6 * len(s)) if tot > 0 else m[k]
                new_m.append(_monotone(nm, self.u[k]))
            new_lam = float(wc.sum() / counts.sum())
            new_lam = min(max(new_lam, 1e-6), 1 - 1e-6)
            delta = max(float(np.max(np.abs(a_ - b_))) for a_, b_ in zip(new_m, m, strict=True))
            delta = max(delta, abs(new_lam - lam))
            m, lam = new_m, new_lam
            if delta < tol:
                break
        if self._diverged(m):
            # EM wandered into another mode (e.g. "same household"): keep the seed estimate, refit λ only
            m = self._seed
            logm = self._log_table(m, patterns)
            a = math.log(lam) + logm
            b = math.log(1 - lam) + logu
            mx = np.maximum(a, b)
            w = np.exp(a - mx) / (np.exp(a - mx) + np.exp(b - mx))
            lam = float(min(max((w * counts).sum() / counts.sum(), 1e-6), 1 - 1e-6))
            it = -it
        self.m, self.lam, self.em_iterations = m, lam, it
        return self

    def _diverged(self, m: list[np.ndarray]) -> bool:
        """Implausible for true matches: most of them disagreeing completely on name or birth date."""
        for k, name in enumerate(self.comparisons):
            # birth dates: "different" and "a generation apart" both count as disagreeing completely
            worst = m[k][-2:].sum() if name == "birth_date" and len(m[k]) > 5 else m[k][-1]
            if name in ("name", "birth_date", "id_number") and worst > 0.3:
                return True
        return False

    def _seed_m(self, patterns: np.ndarray, counts: np.ndarray) -> tuple[list[np.ndarray], float]:
        """Starting point for EM, as Splink trains in sessions: ``m`` of every field from pairs sharing the ID
        number (except the ID itself), and ``m`` of the ID from pairs sharing name and birth date. EM then
        starts in the "same person" mode rather than, say, "same household"."""
        names_ = self.comparisons
        col = {n: k for k, n in enumerate(names_)}
        m = [x.copy() for x in self.m]
        rules: list[tuple[np.ndarray, set[str]]] = []
        if "id_number" in col:
            rules.append((patterns[:, col["id_number"]] == 0, {"id_number"}))
        name_cols = [col[n] for n in ("name", "given", "family") if n in col]
        if name_cols and "birth_date" in col:
            rule = patterns[:, col["birth_date"]] == 0
            for k in name_cols:
                rule &= patterns[:, k] == 0
            rules.append((rule, {"birth_date", *[names_[k] for k in name_cols]}))
        done: set[str] = set()
        any_seed = np.zeros(len(patterns), dtype=bool)
        for seed, used in rules:
            if counts[seed].sum() < 10:
                continue
            any_seed |= seed
            for k, name in enumerate(names_):
                if name in used or name in done:
                    continue
                c = patterns[seed, k]
                mask = c >= 0
                if mask.any():
                    s = np.bincount(c[mask].astype(np.int64), weights=counts[seed][mask], minlength=len(m[k]))
                    m[k] = _monotone((s + 1.0) / (s.sum() + len(s)), self.u[k])
                    done.add(name)
        n_seed = counts[any_seed].sum()
        lam = float(min(0.9, max(0.01, n_seed / counts.sum()))) if n_seed else 0.1
        self._seed = [x.copy() for x in m]
        return m, lam

    @staticmethod
    def _log_table(probs: list[np.ndarray], patterns: np.ndarray) -> np.ndarray:
        out = np.zeros(len(patterns))
        for k, p in enumerate(probs):
            col = patterns[:, k]
            mask = col >= 0
            out[mask] += np.log(np.maximum(p[col[mask].astype(np.int64)], 1e-12))
        return out

    # --- scoring ---------------------------------------------------------------------------------------

    def bayes_factors(self, gamma: np.ndarray, tf: np.ndarray | None = None) -> np.ndarray:
        """log2 Bayes factor per pair and comparison (0 where a value is missing), term-frequency adjusted."""
        n, k = gamma.shape
        out = np.zeros((n, k))
        comps = self.comps
        for c in range(k):
            col = gamma[:, c]
            mask = col >= 0
            lv = col[mask].astype(np.int64)
            m = self.m[c][lv]
            u = self.u[c][lv].copy()
            if tf is not None and comps[c].tf_levels:
                t = tf[mask, c]
                adj = np.isin(lv, comps[c].tf_levels) & ~np.isnan(t)
                # replace u by the value's own frequency, bounded so one odd value cannot dominate
                u[adj] = np.clip(t[adj], u[adj] / 20.0, 1.0)
            out[mask, c] = np.log2(np.maximum(m, 1e-12) / np.maximum(u, 1e-12))
        return out

    def prior(self, n_index: int | None = None) -> float:
        """Prior match probability of one pair: ``lam`` for the fitted data, or for an index of ``n_index``
        records the same expected number of matches per record spread over that many (bounded to 0.5)."""
        if not self.n_records or not n_index:
            return self.lam
        rho = self.lam * max(1, self.n_records - 1)
        return float(min(0.5, max(1e-12, rho / max(1, n_index - 1))))

    def match_weight(self, gamma: np.ndarray, tf: np.ndarray | None = None, n_index: int | None = None) -> np.ndarray:
        """Total match weight (log2 odds) per pair, prior included."""
        lam = self.prior(n_index)
        return math.log2(lam / (1 - lam)) + self.bayes_factors(gamma, tf).sum(axis=1)

    def probability(self, gamma: np.ndarray, tf: np.ndarray | None = None, n_index: int | None = None) -> np.ndarray:
        """Posterior match probability per pair."""
        w = np.clip(self.match_weight(gamma, tf, n_index), -60, 60)
        return 1.0 / (1.0 + np.power(2.0, -w))

    def set_random_pair_prior(self, n_candidates: int, n_all_pairs: int, n_records: int) -> None:
        """Turn ``lam`` from EM (the share of matches among *blocked* pairs) into the chance that two random
        records match, as Splink does, so that the prior no longer depends on how tight blocking is (the
        evidence that put a pair into a block is counted by its comparison's weight already)."""
        if n_all_pairs > 0 and n_candidates > 0:
            self.lam = float(min(max(self.lam * n_candidates / n_all_pairs, 1e-12), 0.5))
            self.n_records = int(n_records)

    def score_pairs(self, t: FeatureTable, i: np.ndarray, j: np.ndarray, *,
                    n_index: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, levels, log2 Bayes factors) for pairs ``(i[k], j[k])`` of table ``t``; ``n_index`` is the
        size of the index the candidates come from (online)."""
        gamma, tf = compare_all(self.comps, t, i, j)
        bf = self.bayes_factors(gamma, tf)
        lam = self.prior(n_index)
        prior = math.log2(lam / (1 - lam))
        w = np.clip(prior + bf.sum(axis=1), -60, 60)
        p = 1.0 / (1.0 + np.power(2.0, -w))
        return self.apply_rules(p, t, i, j, gamma), gamma, bf

    def apply_rules(self, p: np.ndarray, t: FeatureTable, i: np.ndarray, j: np.ndarray,
                    gamma: np.ndarray | None = None) -> np.ndarray:
        """Hard evidence on top of the weights: different valid resident IDs cap the probability; a pair with no
        corroborating identifier or contact (see :attr:`Thresholds.uncorroborated_cap`) stays below certain."""
        th = self.thresholds
        if "id_number" in self.comparisons:
            conflict = id_conflict(t, i, j)
            p = np.where(conflict, np.minimum(p, th.id_conflict_cap), p)
        if gamma is not None and len(p):
            p = self._household_rules(p, t, i, j, gamma)
        if gamma is not None and th.uncorroborated_cap < 1.0 and len(p):
            backed = np.zeros(len(p), dtype=bool)
            for name, good in (("id_number", (0, 1)), ("phone", (0, 1)), ("address", (0, 1)), ("identifier", (0,))):
                if name in self.comparisons:
                    col = gamma[:, self.comparisons.index(name)]
                    backed |= np.isin(col, good)
            # monotone squeeze of (probable, 1] into (probable, cap]: the order of pairs is kept and nothing
            # at or below "probable" (nor the batch link threshold at its default) changes
            lo, cap = th.probable, th.uncorroborated_cap
            squeeze = ~backed & (p > lo)
            p = np.where(squeeze, lo + (p - lo) * (cap - lo) / (1.0 - lo), p)
        return p

    def _household_rules(self, p: np.ndarray, t: FeatureTable, i: np.ndarray, j: np.ndarray,
                         gamma: np.ndarray) -> np.ndarray:
        """A household shares phone, address, postcode, often a surname and (on a child's record) a parent's ID:
        those fields alone never make two members one person.

        - name (similar only, family-only, different or missing) *and* birth date (different) both disagreeing, with no
          agreeing resident ID: spouses, siblings, a newborn's placeholder record (王丽之子) and its family;
        - Chinese names: birth dates a generation apart (15+ years, not a one-digit typo) with names that are
          not the same: parent and child, whatever ID they share (a child under a parent's ID);
        - Chinese names: different given names with no agreeing ID but a shared phone, address or guardian ID
          stay below the link threshold (:attr:`Thresholds.twin_cap`): twins share everything else; two
          placeholders numbered apart (王丽之子一 / 王丽之子二) or registered by one institution are two babies.
        """
        th = self.thresholds
        col = {n: gamma[:, k] for k, n in enumerate(self.comparisons)}
        if "birth_date" not in col or not ("name" in col or "given" in col):
            return p
        bl = col["birth_date"]
        n_birth = len(self.comps[self.comparisons.index("birth_date")].levels)
        generation = bl == 7 if n_birth > 7 else np.zeros(len(p), dtype=bool)
        birth_off = bl >= n_birth - 2 if n_birth > 7 else bl == n_birth - 1
        if "name" in col:
            nl = col["name"]
            # a missing name counts too: a newborn's placeholder record shares its mother's and siblings' phone
            # and address, never their birth date
            # "similar" counts as well: 李明 / 李亮 are alike in pinyin, and with birth dates years apart are
            # brothers, not one person typed twice
            name_off = (nl >= 3) | (nl < 0)
            name_same = (nl >= 0) & (nl <= 1)
        else:
            g, f = col["given"], col.get("family", col["given"])
            name_off = ((g == 3) | (g < 0)) & ((f == 3) | (f < 0))
            name_same = np.isin(g, (0, 1)) & np.isin(f, (0, 1))
        id_ok = np.isin(col["id_number"], (0, 1)) if "id_number" in col else np.zeros(len(p), dtype=bool)
        family = birth_off & name_off & ~id_ok
        if "name" in col:
            family |= generation & ~name_same
        p = np.where(family, np.minimum(p, th.id_conflict_cap), p)
        if "name" in col:
            ph = t.col("placeholder")
            both_ph = np.fromiter((bool(ph[a]) and bool(ph[b]) for a, b in zip(i.tolist(), j.tolist(), strict=True)),
                                  dtype=bool, count=len(i))
            # "on the shared fields alone": a household phone, address or guardian ID agreeing
            shared = np.zeros(len(p), dtype=bool)
            for name, good in (("phone", (0, 1)), ("address", (0, 1)), ("guardian_id", (0,))):
                if name in col:
                    shared |= np.isin(col[name], good)
            twin_like = (nl >= 4) & ~id_ok & shared
            p = np.where(twin_like, np.minimum(p, th.twin_cap), p)
            if both_ph.any():
                # two placeholders are two babies when numbered apart (王丽之子一 / 二), or when one institution
                # registered both (a birth hospital opens one record per newborn: twins); from two
                # institutions they are usually one baby seen twice in its first weeks
                order = [_birth_order(v) for v in ph]
                src = t.col("source")
                differ = np.fromiter((bool(order[a]) and bool(order[b]) and order[a] != order[b]
                                      or bool(src[a]) and src[a] == src[b]
                                      for a, b in zip(i.tolist(), j.tolist(), strict=True)), dtype=bool, count=len(i))
                differ &= both_ph
                p = np.where(differ & ~id_ok, np.minimum(p, th.id_conflict_cap), p)
        return p

    # --- persistence -------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready parameters (with level labels, for people reading them)."""
        return {
            "lambda": self.lam,
            "em_iterations": self.em_iterations,
            "n_records": self.n_records,
            "thresholds": self.thresholds.__dict__,
            "comparisons": [
                {
                    "name": c.name,
                    "levels": list(c.levels),
                    "m": [round(float(x), 8) for x in self.m[k]],
                    "u": [round(float(x), 10) for x in self.u[k]],
                }
                for k, c in enumerate(self.comps)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        """Inverse of :meth:`to_dict`."""
        comps = d["comparisons"]
        return cls(
            [c["name"] for c in comps],
            [np.array(c["m"], dtype=float) for c in comps],
            [np.array(c["u"], dtype=float) for c in comps],
            lam=float(d.get("lambda", 0.01)),
            thresholds=Thresholds(**{**Thresholds().__dict__, **d.get("thresholds", {})}),
            em_iterations=int(d.get("em_iterations", 0)),
            n_records=int(d.get("n_records", 0)),
        )

    def explain(self, gamma_row: np.ndarray, bf_row: np.ndarray) -> list[dict]:
        """Per-field evidence for one pair: level label and its weight (log2 Bayes factor)."""
        out = []
        for k, c in enumerate(self.comps):
            lv = int(gamma_row[k])
            out.append({
                "field": c.name,
                "level": "missing" if lv < 0 else c.levels[lv],
                "weight": round(float(bf_row[k]), 3),
            })
        return out
