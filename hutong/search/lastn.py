"""``Observation/$lastn`` (R4): the most recent N observations per code for a subject.

The search parameters select the candidates (through the ordinary search index); the candidates are
then grouped by ``Observation.code`` as the operation defines it: two codes are one group when they
share a ``system|code`` coding (transitively: ``a`` and ``a,c`` and ``c`` are one group), text-only
codes group by their exact text. Each group is sorted newest first by the effective time and cut
at ``max`` (default 1), ties at the cut included.
"""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import select

from hutong.core.clock import instant_now
from hutong.core.errors import bad_request
from hutong.search.values import date_range
from hutong.store.schema import resource as R

#: Candidates read per request at most: $lastn is for one subject, whose observations are thousands.
MAX_CANDIDATES = 50_000
_CONTROL = ("_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor")


def _subject_given(params: list[tuple[str, str]]) -> bool:
    return any(k.split(":")[0] in ("patient", "subject") for k, _ in params)


def _code_given(params: list[tuple[str, str]]) -> bool:
    return any(k.split(":")[0] in ("category", "code", "code-value-concept", "code-value-quantity",
                                   "code-value-string", "code-value-date", "combo-code") for k, _ in params)


def _effective_us(obs: dict) -> int:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if isinstance(obs.get(key), str):
            return _start(obs[key])
    period = obs.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start") or period.get("end"), str):
        return _start(period.get("start") or period.get("end"))
    if isinstance(obs.get("issued"), str):
        return _start(obs["issued"])
    return -(1 << 62)  # no time: oldest


def _start(value: str) -> int:
    rng = date_range(value)
    return rng[0] if rng else -(1 << 62)


def _keys(obs: dict) -> list[str]:
    code = obs.get("code") if isinstance(obs.get("code"), dict) else {}
    keys = [f"{c.get('system', '')}|{c.get('code')}" for c in code.get("coding") or []
            if isinstance(c, dict) and c.get("code")]
    if not keys and isinstance(code.get("text"), str):
        keys = ["text:" + code["text"]]
    return keys


def _subject(obs: dict) -> str:
    subj = obs.get("subject")
    return subj.get("reference", "") if isinstance(subj, dict) else ""


def group_by_code(observations: list[dict]) -> list[list[dict]]:
    """Observations grouped by code as $lastn defines it (union of shared codings), per subject."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for obs in observations:
        keys = [f"{_subject(obs)}#{k}" for k in _keys(obs)] or [f"{_subject(obs)}#id:{obs.get('id')}"]
        for k in keys[1:]:
            ra, rb = find(keys[0]), find(k)
            if ra != rb:
                parent[rb] = ra
    groups: dict[str, list[dict]] = {}
    for obs in observations:
        keys = [f"{_subject(obs)}#{k}" for k in _keys(obs)] or [f"{_subject(obs)}#id:{obs.get('id')}"]
        groups.setdefault(find(keys[0]), []).append(obs)
    return list(groups.values())


def latest(group: list[dict], n: int) -> list[dict]:
    """The ``n`` most recent of a group, newest first; observations tied with the n-th are kept."""
    ordered = sorted(group, key=_effective_us, reverse=True)
    if len(ordered) <= n:
        return ordered
    cut = _effective_us(ordered[n - 1])
    return [o for i, o in enumerate(ordered) if i < n or _effective_us(o) == cut]


def lastn(tx, params: list[tuple[str, str]], base_url: str, compartment_patient: str | None = None) -> dict:
    """The searchset Bundle of ``Observation/$lastn`` for search ``params`` (plus ``max``)."""
    max_n = 1
    criteria = []
    for key, value in params:
        if key == "max":
            if not value.isdigit() or int(value) < 1:
                raise bad_request(f"max must be a positive integer, got {value[:20]!r}", "max")
            max_n = int(value)
        elif key in ("_format", "_pretty"):
            continue
        elif key.split(":")[0] in _CONTROL:
            raise bad_request(f"{key} is not supported on $lastn", key)
        else:
            criteria.append((key, value))
    if compartment_patient is not None:
        criteria.append(("patient", f"Patient/{compartment_patient}"))
    if not _subject_given(criteria):
        raise bad_request("$lastn needs a subject: the patient or subject parameter", "patient")
    if not _code_given(criteria):
        raise bad_request("$lastn needs a category or a code parameter", "category")
    ids = tx.search_ids("Observation", criteria, limit=MAX_CANDIDATES + 1)
    if len(ids) > MAX_CANDIDATES:
        raise bad_request(f"$lastn matched more than {MAX_CANDIDATES} observations: narrow the subject or codes")
    observations = []
    for i in range(0, len(ids), 500):
        rows = tx.conn.execute(select(R.c.content).where(R.c.res_type == "Observation",
                                                         R.c.res_id.in_(ids[i:i + 500]), R.c.deleted.is_(False)))
        observations.extend(orjson.loads(c) for (c,) in rows)
    chosen = [o for g in group_by_code(observations) for o in latest(g, max_n)]
    chosen.sort(key=lambda o: (_subject(o), _keys(o)[:1], -_effective_us(o)))
    bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant_now()},
                    "type": "searchset", "total": len(chosen)}
    if chosen:
        bundle["entry"] = [{"fullUrl": f"{base_url}/Observation/{o['id']}", "resource": o,
                            "search": {"mode": "match"}} for o in chosen]
    return bundle
