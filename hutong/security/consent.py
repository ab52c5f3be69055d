"""Consent: a resident hides chosen institutions' data, or categories of data, from other institutions.

A rule comes from an **active** R4 ``Consent`` of scope ``patient-privacy`` about ``Patient/P``: its
top-level ``provision`` when that is ``type: deny``, and each nested provision of ``type: deny`` (the
exceptions of a ``permit`` base). A deny provision hides the resources of P's compartment that match
all of the criteria it gives:

- ``actor`` with ``reference: Organization/X``:
  - role ``IRCP``/``PRCP`` (v3 ParticipationType: an information *recipient*): institution X may not
    see them (nobody else is affected);
  - any other role (``CST`` custodian, ``AUT`` author…, or none): **the data institution X is the
    source of** (``meta.source`` ``urn:hutong:org:X``) is hidden from every other institution;
- ``class`` (codes of ``http://hl7.org/fhir/resource-types``): only resources of these types;
- ``code`` (CodeableConcepts): only resources whose ``category`` has one of these codings;
- ``securityLabel`` (Codings): only resources carrying one of these labels in ``meta.security``.

Without an actor the provision hides the matching data from every institution but its source.
Never hidden: from the resident themselves (and the guardians managing their record), from the
institution that is the data's source, from the node's own work; the Patient resource itself (the
identity that the patient index and the card need) is not hidden.

Rules are applied inside the SQL as a ``Fence`` (``hutong/search/fence.py``): ``NOT (in P's compartment
AND matches)``, so totals, paging, includes, chains, ``_has``, ``$everything`` and export never count a
hidden resource. The rules are kept in memory per store and reloaded when any Consent changed: a
Consent written on this worker counts at once, one written elsewhere within ``REFRESH_S`` seconds.
``provision.period``, ``purpose`` and ``dataPeriod`` are not evaluated (documented in docs/security.md).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import and_, false, func, not_, or_, select

from hutong.search.compartment import compartment_pairs
from hutong.search.tables import sp_reference, sp_token
from hutong.security.scoping import SOURCE_PREFIX
from hutong.store.schema import resource as R

REFRESH_S = 1.0
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
RECIPIENT_ROLES = frozenset({"IRCP", "PRCP"})
PRIVACY_SCOPE = "patient-privacy"


@dataclass(frozen=True)
class Rule:
    """One deny provision: whose data (``patient``), for whom, and which."""

    patient: str
    source_org: str | None = None      # hide this institution's data from the others
    recipient_org: str | None = None   # hide the data from this institution only
    types: tuple[str, ...] = ()
    codes: tuple[tuple[str | None, str], ...] = ()    # category codings
    labels: tuple[tuple[str | None, str], ...] = ()   # meta.security codings


def rules_of(consent: dict) -> list[Rule]:
    """The deny rules of one Consent resource (none when it is not an active privacy consent)."""
    if consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return []
    scope = consent.get("scope") or {}
    if scope and not any(c.get("code") == PRIVACY_SCOPE for c in scope.get("coding") or [] if isinstance(c, dict)):
        return []
    ref = (consent.get("patient") or {}).get("reference") or ""
    if not ref.startswith("Patient/"):
        return []
    patient = ref.split("/", 1)[1]
    top = consent.get("provision") or {}
    provisions = []
    if isinstance(top, dict):
        if top.get("type") == "deny":
            provisions.append(top)
        provisions += [p for p in top.get("provision") or [] if isinstance(p, dict) and p.get("type") == "deny"]
    out = []
    for prov in provisions:
        types = tuple(c.get("code") for c in prov.get("class") or []
                      if isinstance(c, dict) and c.get("system") in (None, RESOURCE_TYPES) and c.get("code"))
        codes = tuple((c.get("system"), c["code"]) for cc in prov.get("code") or [] if isinstance(cc, dict)
                      for c in cc.get("coding") or [] if isinstance(c, dict) and c.get("code"))
        labels = tuple((c.get("system"), c["code"]) for c in prov.get("securityLabel") or []
                       if isinstance(c, dict) and c.get("code"))
        actors = [a for a in prov.get("actor") or [] if isinstance(a, dict)]
        orgs = []
        for a in actors:
            aref = (a.get("reference") or {}).get("reference") or ""
            if aref.startswith("Organization/"):
                roles = {c.get("code") for c in (a.get("role") or {}).get("coding") or [] if isinstance(c, dict)}
                orgs.append((aref.split("/", 1)[1], bool(roles & RECIPIENT_ROLES)))
        if not orgs:
            out.append(Rule(patient, types=types, codes=codes, labels=labels))
        for org, recipient in orgs:
            out.append(Rule(patient, source_org=None if recipient else org, recipient_org=org if recipient else None,
                            types=types, codes=codes, labels=labels))
    return out


# ---------------------------------------------------------------------------------------------- the rule cache
class _Rules:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_store: dict[int, tuple[float, tuple, list[Rule]]] = {}
        self._dirty_until: dict[int, float] = {}

    def touched(self, store) -> None:
        """A Consent is being written on this worker: reread the rules on every call for a moment (the
        write commits after this is called)."""
        with self._lock:
            self._dirty_until[id(store)] = time.monotonic() + 5.0

    def rules(self, store, conn) -> list[Rule]:
        key = id(store)
        now = time.monotonic()
        with self._lock:
            cached = self._by_store.get(key)
            dirty = self._dirty_until.get(key, 0.0) > now
        if cached is not None and not dirty and now - cached[0] < REFRESH_S:
            return cached[2]
        stamp = tuple(conn.execute(select(func.count(), func.max(R.c.ts_us)).where(
            R.c.res_type == "Consent")).one())
        if cached is not None and cached[1] == stamp:
            with self._lock:
                self._by_store[key] = (now, stamp, cached[2])
            return cached[2]
        rules: list[Rule] = []
        if stamp[0]:
            for (content,) in conn.execute(select(R.c.content).where(R.c.res_type == "Consent", R.c.deleted == false())):
                try:
                    rules.extend(rules_of(orjson.loads(content)))
                except (orjson.JSONDecodeError, TypeError, AttributeError):
                    continue
        with self._lock:
            self._by_store[key] = (now, stamp, rules)
        return rules


RULES = _Rules()


def applicable(rules: list[Rule], caller, own_patients: frozenset[str]) -> list[Rule]:
    """The rules that hide something from ``caller`` (never the resident's own or their dependants')."""
    out = []
    for rule in rules:
        if rule.patient in own_patients:
            continue
        if rule.recipient_org is not None and rule.recipient_org != caller.institution:
            continue
        if rule.source_org is not None and rule.source_org == caller.institution:
            continue
        out.append(rule)
    return out


class ConsentFence:
    """``NOT (hidden by any applicable rule)`` on resource rows."""

    def __init__(self, rules: list[Rule], caller_institution: str | None):
        self.rules = rules
        self.institution = caller_institution
        self._pairs = compartment_pairs("Patient")

    def _source_is(self, r, org: str):
        s = SOURCE_PREFIX + org
        return or_(r.c.source == s, r.c.source.like(s + "#%"))

    def _token(self, r, res_type, param: str, codings):
        t = sp_token.alias()
        conds = [and_(t.c.system == s, t.c.code == c) if s else t.c.code == c for s, c in codings]
        sub = select(t.c.res_id).where(t.c.res_type == (res_type or r.c.res_type), t.c.param == param, or_(*conds))
        return r.c.res_id.in_(sub)

    def _hidden(self, r, res_type: str | None, rule: Rule):
        if rule.types and res_type is not None and res_type not in rule.types:
            return None
        codes = sorted({p for t, p in self._pairs if res_type is None or t == res_type})
        if not codes:
            return None
        t = sp_reference.alias()
        conds = [r.c.res_id.in_(select(t.c.res_id).where(
            t.c.res_type == (res_type or r.c.res_type), t.c.param.in_(codes), t.c.target_type == "Patient",
            t.c.target_id == rule.patient))]
        if res_type is None:
            conds.append(r.c.res_type != "Patient")
            if rule.types:
                conds.append(r.c.res_type.in_(rule.types))
        if rule.source_org is not None:
            conds.append(self._source_is(r, rule.source_org))
        if self.institution:  # the data's own source institution always sees it
            conds.append(or_(r.c.source.is_(None), not_(self._source_is(r, self.institution))))
        if rule.codes:
            conds.append(self._token(r, res_type, "category", rule.codes))
        if rule.labels:
            conds.append(self._token(r, res_type, "_security", rule.labels))
        return and_(*conds)

    def visible(self, r, res_type: str | None):
        if res_type == "Patient":
            return None
        hidden = [h for h in (self._hidden(r, res_type, rule) for rule in self.rules) if h is not None]
        if not hidden:
            return None
        return not_(or_(*hidden))


def consent_fence(caller, store, conn, own_patients: frozenset[str]) -> ConsentFence | None:
    """The consent fence for ``caller`` (None: no rule hides anything from them)."""
    rules = applicable(RULES.rules(store, conn), caller, own_patients)
    return ConsentFence(rules, caller.institution) if rules else None
