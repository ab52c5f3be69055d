"""The recognition catalog: which items (lab tests, exams) are recognised, where, for how long, and
from which institutions.

The catalog is FHIR: one ``ActivityDefinition`` per item, tagged ``recognition-catalog``
(``vocab.CATALOG_TAG_SYSTEM``), so it is edited with ordinary FHIR writes, versioned and audited like
every resource, and distributed down the federation with the other catalog types.

- ``code``: the item's codings, LOINC first and every local code it maps to (a result or an order
  carrying any of them is that item);
- ``topic``: the category (``vocab.CATEGORIES``);
- ``effectivePeriod``: when the item is in the catalog at all;
- extensions (``vocab.EXT_*``): ``validity-days`` (the window), ``validity-rule`` (a shorter or longer
  window for patients with a condition: ``condition`` valueCoding + ``days`` valueInteger),
  ``scope`` (province, city or consortium), ``qualified`` (an institution — ``institution``
  valueReference — or every institution of a level — ``level`` valueCode — with the ``period`` it
  passed quality control; an institution's own entries win over its level's, so a lapsed
  qualification stops recognition from its end date), ``price`` (``level`` + ``amount`` valueMoney:
  what repeating the item costs, for the savings figures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.recognition import vocab as V
from hutong.search.values import date_range

_DATA = Path(__file__).resolve().parent / "data"
_DAY_US = 86_400 * 1_000_000


def token(system: str | None, code: str | None) -> str:
    """The one form a coding takes in the catalog and the result index: ``system|code``."""
    return f"{system or ''}|{code or ''}"


@dataclass(frozen=True)
class Qualification:
    """An institution (or every institution of a level) qualified for an item during a period."""

    institution: str | None
    level: str | None
    start_us: int | None
    end_us: int | None

    def covers(self, at_us: int) -> bool:
        return (self.start_us is None or self.start_us <= at_us) and (self.end_us is None or at_us <= self.end_us)


@dataclass(frozen=True)
class Item:
    """One catalog item as the service uses it."""

    key: str
    title: str
    title_en: str
    category: str
    codes: tuple[str, ...]
    validity_days: int
    rules: tuple[tuple[str, int], ...] = ()
    scope: str = "province"
    qualifications: tuple[Qualification, ...] = ()
    prices: dict[str, float] = field(default_factory=dict)
    start_us: int | None = None
    end_us: int | None = None

    def in_force(self, at_us: int) -> bool:
        """Whether the item is in the catalog at ``at_us``."""
        return (self.start_us is None or self.start_us <= at_us) and (self.end_us is None or at_us <= self.end_us)

    def validity_for(self, conditions: frozenset[str] = frozenset()) -> int:
        """The window in days for a patient with ``conditions`` (``system|code`` tokens): the shortest
        of the default and every matching condition rule."""
        days = [d for cond, d in self.rules if cond in conditions]
        return min(days) if days else self.validity_days

    def qualified(self, institution: str, level: str | None, at_us: int) -> bool:
        """Whether ``institution`` (of ``level``) was qualified for this item at ``at_us``.

        An institution's own entries decide when it has any (so a lapsed one stops it even when its
        level qualifies); otherwise its level's entries do."""
        own = [q for q in self.qualifications if q.institution == institution]
        if own:
            return any(q.covers(at_us) for q in own)
        return any(q.covers(at_us) for q in self.qualifications if q.level is not None and q.level == level)

    def price(self, level: str | None) -> float:
        """What repeating the item costs at an institution of ``level`` (its tier's price, else any)."""
        if level in self.prices:
            return self.prices[level]
        tier = V.LEVEL_TIER.get(level or "")
        if tier in self.prices:
            return self.prices[tier]
        return self.prices.get("*", 0.0)


@dataclass(frozen=True)
class Catalog:
    """Every catalog item, and the items each coding names."""

    items: tuple[Item, ...]
    by_code: dict[str, tuple[Item, ...]]

    def items_for(self, codes) -> list[Item]:
        """The items any of ``codes`` (``system|code`` tokens) names, each once, in catalog order."""
        seen: dict[str, Item] = {}
        for c in codes:
            for it in self.by_code.get(c, ()):
                seen.setdefault(it.key, it)
        return list(seen.values())

    def get(self, key: str) -> Item | None:
        return next((i for i in self.items if i.key == key), None)


def _ext(res: dict, url: str) -> list[dict]:
    return [e for e in res.get("extension") or [] if e.get("url") == url]


def _sub(ext: dict, url: str) -> dict | None:
    return next((e for e in ext.get("extension") or [] if e.get("url") == url), None)


def _period(p: dict | None) -> tuple[int | None, int | None]:
    p = p or {}
    start = date_range(p["start"]) if p.get("start") else None
    end = date_range(p["end"]) if p.get("end") else None
    return (start[0] if start else None), (end[1] if end else None)


def item_from_resource(res: dict) -> Item:
    """An ``Item`` from a catalog ActivityDefinition; ``FhirError`` 422 when it is not one."""
    where = f"ActivityDefinition/{res.get('id')}"
    codes = tuple(token(c.get("system"), c.get("code")) for c in (res.get("code") or {}).get("coding") or []
                  if c.get("code"))
    if not codes:
        raise FhirError(422, "invalid", f"{where}: a recognition item needs code.coding", "ActivityDefinition.code")
    category = next((c.get("code") for t in res.get("topic") or [] for c in t.get("coding") or []
                     if c.get("system") == V.CATEGORY_SYSTEM), None)
    if category not in V.CATEGORIES:
        raise FhirError(422, "invalid", f"{where}: topic needs a category of {V.CATEGORY_SYSTEM}", "ActivityDefinition.topic")
    validity = next((e.get("valueInteger") for e in _ext(res, V.EXT_VALIDITY)), None)
    if not isinstance(validity, int) or validity < 0:
        raise FhirError(422, "invalid", f"{where}: {V.EXT_VALIDITY} (valueInteger ≥ 0) is required", "ActivityDefinition.extension")
    scope = next((e.get("valueCode") for e in _ext(res, V.EXT_SCOPE)), "province")
    if scope not in V.SCOPES:
        raise FhirError(422, "invalid", f"{where}: scope must be one of {', '.join(V.SCOPES)}", "ActivityDefinition.extension")
    rules = []
    for e in _ext(res, V.EXT_VALIDITY_RULE):
        cond, days = (_sub(e, "condition") or {}).get("valueCoding") or {}, (_sub(e, "days") or {}).get("valueInteger")
        if not cond.get("code") or not isinstance(days, int) or days < 0:
            raise FhirError(422, "invalid", f"{where}: a validity rule needs condition (valueCoding) and days", "ActivityDefinition.extension")
        rules.append((token(cond.get("system"), cond["code"]), days))
    quals = []
    for e in _ext(res, V.EXT_QUALIFIED):
        inst = ((_sub(e, "institution") or {}).get("valueReference") or {}).get("reference")
        level = (_sub(e, "level") or {}).get("valueCode")
        if bool(inst) == bool(level):
            raise FhirError(422, "invalid", f"{where}: a qualification names an institution or a level", "ActivityDefinition.extension")
        if inst and not inst.startswith("Organization/"):
            raise FhirError(422, "invalid", f"{where}: a qualified institution is an Organization reference", "ActivityDefinition.extension")
        start, end = _period((_sub(e, "period") or {}).get("valuePeriod"))
        quals.append(Qualification(inst.split("/", 1)[1] if inst else None, level, start, end))
    prices = {}
    for e in _ext(res, V.EXT_PRICE):
        level = (_sub(e, "level") or {}).get("valueCode") or "*"
        amount = ((_sub(e, "amount") or {}).get("valueMoney") or {}).get("value")
        if not isinstance(amount, int | float):
            raise FhirError(422, "invalid", f"{where}: a price needs amount (valueMoney)", "ActivityDefinition.extension")
        prices[level] = float(amount)
    start, end = _period(res.get("effectivePeriod"))
    title = res.get("title") or res.get("name") or res.get("id") or ""
    return Item(key=res.get("id") or "", title=title, title_en=res.get("subtitle") or res.get("name") or title,
                category=category, codes=codes, validity_days=validity, rules=tuple(rules), scope=scope,
                qualifications=tuple(quals), prices=prices, start_us=start, end_us=end)


def is_catalog_item(res: dict) -> bool:
    """Whether a resource is a recognition catalog item (an ActivityDefinition with the tag)."""
    return res.get("resourceType") == "ActivityDefinition" and any(
        t.get("system") == V.CATALOG_TAG_SYSTEM and t.get("code") == V.CATALOG_TAG
        for t in (res.get("meta") or {}).get("tag") or [])


def build_catalog(resources) -> Catalog:
    """A ``Catalog`` from ActivityDefinitions (non-catalog and retired ones are skipped)."""
    items = [item_from_resource(r) for r in resources if is_catalog_item(r) and r.get("status") != "retired"]
    by_code: dict[str, list[Item]] = {}
    for it in items:
        for c in it.codes:
            by_code.setdefault(c, []).append(it)
    return Catalog(tuple(items), {k: tuple(v) for k, v in by_code.items()})


#: The latest write time of each type recognition caches (one round trip, an index probe each: the
#: change of a catalog item, institution or consortium membership is seen by the next request).
FINGERPRINT_TYPES = ("ActivityDefinition", "Organization", "OrganizationAffiliation")
_FINGERPRINT_SQL = "SELECT " + ", ".join(
    f"(SELECT max(ts_us) FROM resource WHERE res_type = '{t}')" for t in FINGERPRINT_TYPES)


def fingerprints(conn) -> dict[str, int | None]:
    """``{type: latest ts_us}`` for the types recognition caches (deletes move it too)."""
    # straight to the driver: asked on every hook call, and SQLAlchemy's statement machinery costs
    # more than the three index probes
    row = conn.connection.dbapi_connection.execute(_FINGERPRINT_SQL).fetchone()
    return dict(zip(FINGERPRINT_TYPES, row, strict=True))


_CACHE: dict[int, tuple[int | None, Catalog]] = {}


def current_catalog(tx, fp: dict[str, int | None] | None = None) -> Catalog:
    """The catalog as stored now, rebuilt only when an ActivityDefinition changed since last time
    (``fp``: the ``fingerprints`` already read in this transaction)."""
    fp = (fp or fingerprints(tx.conn))["ActivityDefinition"]
    hit = _CACHE.get(id(tx.store))
    if hit is not None and hit[0] == fp:
        return hit[1]
    ids = tx.search_ids("ActivityDefinition", [("_tag", f"{V.CATALOG_TAG_SYSTEM}|{V.CATALOG_TAG}")])
    resources = []
    for rid in ids:
        s = tx.read("ActivityDefinition", rid)
        if s is not None and not s.deleted:
            resources.append(s.resource)
    cat = build_catalog(resources)
    _CACHE[id(tx.store)] = (fp, cat)
    return cat


@lru_cache(maxsize=1)
def starter_resources() -> tuple[dict, ...]:
    """The starter catalog shipped with the package (``data/catalog.json``, see ``data/SOURCE.md``)."""
    return tuple(json.loads((_DATA / "catalog.json").read_text("utf-8")))


def install_starter(store, *, replace: bool = False) -> dict:
    """Write the starter catalog into the store (items already there are kept unless ``replace``)."""
    created = kept = 0
    with store.write() as tx:
        for res in starter_resources():
            cur = tx.read("ActivityDefinition", res["id"])
            if cur is not None and not cur.deleted and not replace:
                kept += 1
                continue
            tx.update("ActivityDefinition", res["id"], dict(res))
            created += 1
    return {"written": created, "kept": kept, "at_us": now_us()}


def day_us(days: int) -> int:
    """``days`` in microseconds."""
    return days * _DAY_US
