"""Property-based: search results equal a brute-force evaluation over the same resources (both backends).

The brute force reads the resources directly and applies the FHIR search rules written independently here
(Python ``datetime``/``Decimal`` arithmetic, no code shared with the index).
"""

from __future__ import annotations

import random
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SYSTEMS = ["http://snomed.info/sct", "urn:local", None]
CODES = ["a", "B", "c1", "a1"]
VALUES = [Decimal("5"), Decimal("5.4"), Decimal("5.45"), Decimal("100"), Decimal("-1"), Decimal("0.05")]
DATES = ["2019", "2019-06", "2019-06-15", "2019-06-15T10:30:00Z", "2019-12-31T23:00:00-02:00", "2020-01-01",
         "2018-03-04T05:06:07.5Z"]
NAMES = ["Ádam", "adams", "Bob", "bö", "王伟", "Zhang San"]


def make_data(seed: int):
    rnd = random.Random(seed)
    patients, observations = [], []
    for i in range(6):
        patients.append({"resourceType": "Patient", "id": f"p{i}",
                         "name": [{"family": rnd.choice(NAMES), "given": [rnd.choice(NAMES)]}]})
    for i in range(40):
        o = {"resourceType": "Observation", "id": f"o{i:02d}", "status": rnd.choice(["final", "amended"])}
        if rnd.random() < 0.9:
            codings = []
            for _ in range(rnd.choice([1, 1, 2])):
                c = {"code": rnd.choice(CODES)}
                s = rnd.choice(SYSTEMS)
                if s:
                    c["system"] = s
                codings.append(c)
            o["code"] = {"coding": codings}
        else:
            o["code"] = {"text": "none"}
        r = rnd.random()
        if r < 0.6:
            o["effectiveDateTime"] = rnd.choice(DATES)
        elif r < 0.85:
            a, b = sorted(rnd.sample(DATES[:4] + ["2020-01-01"], 2), key=lambda d: _range(d)[0])
            o["effectivePeriod"] = {"start": a, "end": b} if _range(a)[0] <= _range(b)[1] else {"start": a}
        if rnd.random() < 0.8:
            o["valueQuantity"] = {"value": float(rnd.choice(VALUES)), "system": "http://unitsofmeasure.org",
                                  "code": rnd.choice(["mg", "g"])}
            o["_v"] = None
        if rnd.random() < 0.85:
            o["subject"] = {"reference": f"Patient/p{rnd.randrange(6)}"}
        observations.append(o)
    return patients, observations


# ------------------------------------------------------------------ brute force (independent rules)
def _range(s: str) -> tuple[datetime, datetime]:
    """Inclusive-exclusive range [lo, hi) of a FHIR date string."""
    tz = UTC
    if len(s) == 4:
        lo = datetime(int(s), 1, 1, tzinfo=tz)
        return lo, lo.replace(year=lo.year + 1)
    if len(s) == 7:
        lo = datetime(int(s[:4]), int(s[5:7]), 1, tzinfo=tz)
        return lo, (lo + timedelta(days=32)).replace(day=1)
    if len(s) == 10:
        lo = datetime(int(s[:4]), int(s[5:7]), int(s[8:10]), tzinfo=tz)
        return lo, lo + timedelta(days=1)
    text = s.replace("Z", "+00:00")
    lo = datetime.fromisoformat(text).astimezone(tz)
    frac = s.split(".")[1].rstrip("Z").split("+")[0].split("-")[0] if "." in s else ""
    width = timedelta(seconds=1) / (10 ** len(frac)) if frac else timedelta(seconds=1)
    return lo, lo + width


def _date_match(value_range, prefix, q):
    lo, hi = value_range
    ql, qh = q
    eq = lo >= ql and hi <= qh
    return {
        "eq": eq, "ne": not eq, "gt": hi > qh, "lt": lo < ql, "ge": hi > qh or eq, "le": lo < ql or eq,
        "sa": lo >= qh, "eb": hi <= ql,
    }[prefix]


def _obs_range(o):
    if "effectiveDateTime" in o:
        return _range(o["effectiveDateTime"])
    if "effectivePeriod" in o:
        p = o["effectivePeriod"]
        lo = _range(p["start"])[0]
        hi = _range(p["end"])[1] if "end" in p else datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        return lo, hi
    return None


def _num_match(v: Decimal, prefix: str, text: str) -> bool:
    q = Decimal(text)
    half = Decimal(5).scaleb(q.as_tuple().exponent - 1)
    return {
        "eq": q - half <= v < q + half, "ne": not (q - half <= v < q + half), "gt": v > q, "lt": v < q,
        "ge": v >= q, "le": v <= q, "sa": v > q, "eb": v < q,
    }[prefix]


def _token_match(o, value: str) -> bool:
    codings = (o.get("code") or {}).get("coding") or []
    if "|" not in value:
        return any(c.get("code") == value for c in codings)
    s, c = value.split("|")
    if s == "":
        return any("system" not in x and x.get("code") == c for x in codings)
    if c == "":
        return any(x.get("system") == s for x in codings)
    return any(x.get("system") == s and x.get("code") == c for x in codings)


def _norm(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch)).casefold()


def brute(patients, observations, name, value):
    out = set()
    for o in observations:
        code, _, mod = name.partition(":")
        vals = value.split(",")
        if code == "code":
            if mod == "not":
                ok = not any(_token_match(o, v) for v in vals)
            else:
                ok = any(_token_match(o, v) for v in vals)
        elif code == "date":
            r = _obs_range(o)
            ok = r is not None and any(_date_match(r, v[:2], _range(v[2:])) for v in vals)
        elif code == "value-quantity":
            vq = o.get("valueQuantity")
            ok = False
            if vq:
                for v in vals:
                    parts = v.split("|")
                    num_ok = _num_match(Decimal(str(vq["value"])), parts[0][:2], parts[0][2:])
                    unit_ok = len(parts) == 1 or vq["code"] == parts[2]
                    ok = ok or (num_ok and unit_ok)
        elif code == "subject.name":
            ref = (o.get("subject") or {}).get("reference")
            ok = False
            if ref:
                pat = next(p for p in patients if f"Patient/{p['id']}" == ref)
                parts = [_norm(p) for n in pat["name"] for p in [n["family"], *n["given"]]]
                ok = any(p.startswith(_norm(v)) for p in parts for v in vals)
        else:
            raise AssertionError(code)
        if ok:
            out.add(o["id"])
    return out


# ------------------------------------------------------------------ strategies
prefixes = st.sampled_from(["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"])
token_values = st.one_of(
    st.sampled_from(CODES + ["zz"]),
    st.tuples(st.sampled_from([s for s in SYSTEMS if s] + [""]), st.sampled_from(CODES + [""])).filter(
        lambda t: t[0] or t[1]
    ).map(lambda t: f"{t[0]}|{t[1]}"),
)
date_values = st.tuples(prefixes, st.sampled_from(DATES + ["2019-06-15T10:30:00+08:00", "2018", "2021"])).map(
    lambda t: t[0] + t[1]
)
number_values = st.tuples(
    prefixes, st.sampled_from(["5", "5.4", "5.45", "5.40", "100", "1e2", "-1", "0.05", "0.1", "6"]),
    st.sampled_from(["", "|http://unitsofmeasure.org|mg", "||g"]),
).map(lambda t: t[0] + t[1] + t[2])
queries = st.one_of(
    st.tuples(st.sampled_from(["code", "code:not"]), st.lists(token_values, min_size=1, max_size=3).map(",".join)),
    st.tuples(st.just("date"), st.lists(date_values, min_size=1, max_size=2).map(",".join)),
    st.tuples(st.just("value-quantity"), number_values),
    st.tuples(st.just("subject.name"), st.sampled_from(["a", "ad", "ÁD", "b", "bo", "王", "zhang s", "x"])),
)


@pytest.fixture
def dataset(store):
    patients, observations = make_data(20260101)
    with store.write() as tx:
        for p in patients:
            tx.update("Patient", p["id"], dict(p))
        for o in observations:
            o = {k: v for k, v in o.items() if k != "_v"}
            tx.update("Observation", o["id"], o)
    observations = [{k: v for k, v in o.items() if k != "_v"} for o in observations]
    return store, patients, observations


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(qs=st.lists(queries, min_size=1, max_size=2))
def test_search_equals_brute_force(dataset, qs):
    store, patients, observations = dataset
    expected = {o["id"] for o in observations}
    for name, value in qs:
        expected &= brute(patients, observations, name, value)
    with store.read() as tx:
        got = set(tx.search_ids("Observation", list(qs)))
    assert got == expected, qs
