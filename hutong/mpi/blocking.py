"""Blocking: only records that share at least one key are ever compared.

Several keys, each tolerant of a different kind of error, so that one mistyped field does not hide a match:
the ID number (whole, and each half with the name's initials, so a typo in either half still meets), the
phone, pinyin name + birth year (homophones, traditional forms), fuzzy pinyin / look-alike shape + birth year,
birth date + family or given initial (a wrong name), postcode or division code + family sound, Soundex of
both names (Latin), and other identifiers. Large groups (王伟 born 1985) fall back to a sorted window.
"""

from __future__ import annotations

import numpy as np

from hutong.mpi.features import FeatureTable
from hutong.mpi.names import initials

KEY_KINDS = (
    "id", "id_a", "id_b", "id_c", "phone", "py_year", "fpy_year", "shape_year", "dob_fam", "dob_given", "dob_sex",
    "post_fam", "code_name", "sx_sx", "identifier", "name_addr",
)


def record_keys(f: dict) -> dict[str, str]:
    """Blocking keys of one normalised record (kind → value; missing keys left out)."""
    out: dict[str, str] = {}
    idv = f.get("id", "")
    py = f.get("name_py", "")
    ini = initials(py)[:3]
    year = f.get("birth_year", "")
    birth = f.get("birth", "")
    if idv:
        out["id"] = idv
        if len(idv) == 18:
            # three pieces (division, birth date, sequence + check); one typo breaks one piece, so one of the
            # three pairs of pieces still meets. Each key is specific enough not to grow with the index.
            p1, p2, p3 = idv[:6], idv[6:14], idv[14:]
            out["id_a"] = p1 + p2
            out["id_b"] = p2 + p3
            out["id_c"] = p1 + p3 + "|" + ini[:2]
        elif len(idv) >= 8:
            h = len(idv) // 2
            out["id_a"] = idv[:h] + "|" + ini[:2]
            out["id_b"] = idv[h:] + "|" + ini[:2]
    if f.get("phone") and len(f["phone"]) >= 7:
        out["phone"] = f["phone"]
    if py and year:
        out["py_year"] = py + "|" + year
        out["fpy_year"] = f.get("name_fpy", "") + "|" + year
        if f.get("cjk"):
            out["shape_year"] = f.get("name_shape", "") + "|" + year
    if len(birth) == 8:
        fam, giv = f.get("family_py", ""), f.get("given_py", "")
        if fam:
            out["dob_fam"] = birth + "|" + fam[:1]
        if giv:
            out["dob_given"] = birth + "|" + giv[:1]
        if f.get("sex"):
            # a wholly different name: birth date + sex (+ city, when known, so the key stays small)
            out["dob_sex"] = birth + "|" + f["sex"] + "|" + f.get("address_code", "")[:4]
    if f.get("postcode") and f.get("family_sx"):
        out["post_fam"] = f["postcode"] + "|" + f["family_sx"]
    if f.get("address_code") and ini:
        out["code_name"] = f["address_code"] + "|" + ini + "|" + year[:3]
    if f.get("family_sx") and f.get("given_sx") and not f.get("cjk"):
        # Soundex is too coarse for pinyin (the pinyin keys above cover Chinese names)
        a, b = sorted((f["family_sx"], f["given_sx"]))  # order-free: tolerant of given/family swaps
        out["sx_sx"] = a + b
    if f.get("identifier"):
        out["identifier"] = f["identifier"]
    if f.get("address") and f.get("family_sx"):
        # the address's end (street number, building, unit) survives a dropped province or city prefix, and
        # unlike its beginning it does not put a whole street into one block
        out["name_addr"] = f["address"][-10:] + "|" + f["family_sx"]
    return out


def key_columns(t: FeatureTable) -> dict[str, list[str]]:
    """Blocking keys for every record of ``t`` as columns (``""`` where a record has no such key)."""
    cols: dict[str, list[str]] = {k: [""] * len(t) for k in KEY_KINDS}
    names = list(t.columns)
    rows = zip(*(t.columns[n] for n in names), strict=True)
    for r, values in enumerate(rows):
        for kind, val in record_keys(dict(zip(names, values, strict=True))).items():
            cols[kind][r] = val
    return cols


def _group_pairs(codes: np.ndarray, max_group: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs within each group of equal codes (groups above ``max_group`` get a sliding window)."""
    valid = np.flatnonzero(codes >= 0)
    if len(valid) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = valid[np.argsort(codes[valid], kind="stable")]
    sc = codes[order]
    brk = np.flatnonzero(np.diff(sc)) + 1
    starts = np.concatenate([[0], brk])
    sizes = np.diff(np.concatenate([starts, [len(sc)]]))
    out_i, out_j = [], []
    for s in np.unique(sizes):
        if s < 2:
            continue
        st = starts[sizes == s]
        if s <= max_group:
            mat = order[st[:, None] + np.arange(s)[None, :]]
            a, b = np.triu_indices(s, k=1)
            out_i.append(mat[:, a].ravel())
            out_j.append(mat[:, b].ravel())
        else:
            for g in st:
                members = order[g:g + s]
                for d in range(1, window + 1):
                    out_i.append(members[:-d])
                    out_j.append(members[d:])
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


def candidate_pairs(
    t: FeatureTable,
    *,
    split: int | None = None,
    max_group: int = 60,
    window: int = 8,
    kinds: tuple[str, ...] = KEY_KINDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Unique candidate pairs ``(i, j)`` with ``i < j`` sharing a blocking key. With ``split`` (two-file link:
    records ``< split`` are the left file) only cross-file pairs are kept."""
    cols = key_columns(t)
    n = len(t)
    encoded = []
    for kind in kinds:
        col = cols[kind]
        vocab: dict[str, int] = {}
        codes = np.fromiter((-1 if not v else vocab.setdefault(v, len(vocab)) for v in col), dtype=np.int64, count=n)
        i, j = _group_pairs(codes, max_group, window)
        if len(i) == 0:
            continue
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        if split is not None:
            keep = (lo < split) & (hi >= split)
            lo, hi = lo[keep], hi[keep]
        encoded.append(lo * n + hi)
    if not encoded:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    uniq = np.unique(np.concatenate(encoded))
    return uniq // n, uniq % n
