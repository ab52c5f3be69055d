"""City tenants (省建市用): a caller bound to a city sees only its city's institutions and residents.

The province runs one platform that every city uses. A caller whose tenant is a city's platform code
(``2201`` 长春, … ``2290`` 长白山; a client registered with ``--tenant CITY``, a staff account with a
tenant) is fenced to that city; a caller of the province (no tenant, or the node's own default tenant
``22``) sees everything.

**How a resource belongs to a city** (decided from what every resource already carries):

- it was written under the city's tenant (``resource.tenant``: written by a caller of that city, or
  received from the city's own node through federation), or
- its ``meta.source`` names an institution of the city (``urn:hutong:org:<id>``, any ``#fragment``):
  an institution is the city's when its Organization's platform (the registry's ``city-platform``
  extension, else the platform of its GB/T 2260 ``division-code``) is the city;
- an **Organization** belongs to a city when it is one of the city's institutions (or was written
  under its tenant); other directory resources (Location, Practitioner, terminology…) are shared by
  the province and visible to every city;
- a **Patient** belongs to a city by the two rules above, or when its ``managingOrganization`` is one of
  the city's institutions (the city's resident registered there);
- any other resource belongs to a city by the first two rules, or when it is in the compartment of a
  Patient of the city (a city resident's record written by a hospital elsewhere in the province).

The rule is a ``Fence`` (``hutong/search/fence.py``) added to the SQL of every search, include,
chain, ``_has``, ``$everything`` and export; a read by id of another city's resource answers **404**
(as if it did not exist: HAPI FHIR's partitions do the same, and a 403 would confirm that it exists).
"""

from __future__ import annotations

import threading

from sqlalchemy import and_, false, func, or_, select

from hutong.search.compartment import compartment_pairs
from hutong.search.tables import sp_reference
from hutong.security.scoping import DIRECTORY_TYPES, SOURCE_PREFIX
from hutong.store.schema import resource as R


def city_of(caller, settings) -> str | None:
    """The city a caller is fenced to (None: the province, sees all)."""
    tenant = caller.tenant
    if not tenant or tenant == getattr(settings, "default_tenant", "22"):
        return None
    return tenant


# ---------------------------------------------------------------------------------------------- institutions
class _Institutions:
    """The Organization ids of each city, recomputed when any Organization changed (one indexed query)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_store: dict[int, tuple[tuple, dict[str, frozenset[str]]]] = {}

    def of_city(self, store, conn, city: str) -> frozenset[str]:
        stamp = tuple(conn.execute(select(func.count(), func.max(R.c.ts_us)).where(
            R.c.res_type == "Organization")).one())
        with self._lock:
            cached = self._by_store.get(id(store))
            if cached is not None and cached[0] == stamp:
                return cached[1].get(city, frozenset())
        by_city = _institutions_by_city(conn)
        with self._lock:
            self._by_store[id(store)] = (stamp, by_city)
        return by_city.get(city, frozenset())


def _institutions_by_city(conn) -> dict[str, frozenset[str]]:
    import orjson

    from hutong.registry.service import institution_from

    out: dict[str, set[str]] = {}
    for rid, content in conn.execute(select(R.c.res_id, R.c.content).where(
            R.c.res_type == "Organization", R.c.deleted == false())):
        try:
            inst = institution_from(orjson.loads(content))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if inst.platform:
            out.setdefault(inst.platform, set()).add(rid)
    return {k: frozenset(v) for k, v in out.items()}


INSTITUTIONS = _Institutions()


# ---------------------------------------------------------------------------------------------- the fence
class TenantFence:
    """The city fence: see the module docstring for the rules."""

    def __init__(self, city: str, institutions: frozenset[str]):
        self.city = city
        self.institutions = sorted(institutions)
        self._pairs = compartment_pairs("Patient")
        self._comp_codes = sorted({p for _t, p in self._pairs})

    def _sourced(self, r):
        """Written under the city's tenant, or sourced by one of its institutions (with or without #fragment)."""
        conds = [r.c.tenant == self.city]
        by_len: dict[int, list[str]] = {}
        for org in self.institutions:
            by_len.setdefault(len(org), []).append(f"{SOURCE_PREFIX}{org}#")
        for length, prefixes in by_len.items():
            # source || '#' cut after the id: 'urn:hutong:org:h1' and 'urn:hutong:org:h1#hl7v2' both give 'urn:hutong:org:h1#'
            head = func.substr(func.coalesce(r.c.source, "") + "#", 1, len(SOURCE_PREFIX) + length + 1)
            conds.append(head.in_(prefixes))
        return or_(*conds)

    def _patient_cond(self, r):
        conds = [self._sourced(r)]
        if self.institutions:
            t = sp_reference.alias()
            conds.append(r.c.res_id.in_(select(t.c.res_id).where(
                t.c.res_type == "Patient", t.c.param == "organization", t.c.target_type == "Organization",
                t.c.target_id.in_(self.institutions))))
        return or_(*conds)

    def _organization_cond(self, r):
        conds = [r.c.tenant == self.city]
        if self.institutions:
            conds.append(r.c.res_id.in_(self.institutions))
        return or_(*conds)

    def _record_cond(self, r, res_type: str | None):
        codes = sorted({p for t, p in self._pairs if t == res_type}) if res_type else self._comp_codes
        if not codes:
            return self._sourced(r)
        p = R.alias()
        patients = select(p.c.res_id).where(p.c.res_type == "Patient", p.c.deleted == false(), self._patient_cond(p))
        t = sp_reference.alias()
        linked = select(t.c.res_id).where(
            t.c.res_type == (res_type if res_type else r.c.res_type), t.c.param.in_(codes),
            t.c.target_type == "Patient", t.c.target_id.in_(patients))
        return or_(self._sourced(r), r.c.res_id.in_(linked))

    def visible(self, r, res_type: str | None):
        if res_type == "Organization":
            return self._organization_cond(r)
        if res_type == "Patient":
            return self._patient_cond(r)
        if res_type in DIRECTORY_TYPES:
            return None
        if res_type is not None:
            return self._record_cond(r, res_type)
        directory = sorted(DIRECTORY_TYPES - {"Organization"})
        return or_(
            r.c.res_type.in_(directory),
            and_(r.c.res_type == "Organization", self._organization_cond(r)),
            and_(r.c.res_type == "Patient", self._patient_cond(r)),
            and_(r.c.res_type.not_in(sorted(DIRECTORY_TYPES | {"Patient"})), self._record_cond(r, None)),
        )


def tenant_fence(caller, store, conn=None) -> TenantFence | None:
    """The fence of ``caller``'s city (None: a province caller)."""
    city = city_of(caller, store.settings)
    if city is None:
        return None
    if conn is None:
        with store.read(snapshot=False) as tx:
            return TenantFence(city, INSTITUTIONS.of_city(store, tx.conn, city))
    return TenantFence(city, INSTITUTIONS.of_city(store, conn, city))
