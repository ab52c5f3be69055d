"""Data-level rules for FHIR calls, applied before the call runs (the query itself is narrowed, so
``total``, paging and ``_include`` see only what the caller may see):

- **Writes**: an institution's ``meta.source`` (``urn:hutong:org:<id>``) is set by the server from
  the caller, never trusted from the body; an institution may update or delete only what it is the
  source of. Platform-level callers without an institution (the province's own systems, operators)
  may relay data for institutions and keep the body's ``meta.source``.
- **Residents** are confined to their own compartment (and their dependants'): a search gets the
  compartment's criterion added (``patient=`` / ``_id=``), a read by id is checked, anything else
  (system-wide search, history across resources, other operations) is refused.
- **Doctors** (a signed-in clinician) read a patient's data from another institution only within a
  care relationship (a workstation opening, a card scan at their institution — ``share_care``) or by
  breaking the glass (``X-Hutong-Break-Glass: <reason>``), which is recorded and flagged for review.
  A doctor's search must name the patient.
- **City tenants** (``hutong/security/tenancy.py``) and **consent** (``hutong/security/consent.py``) are
  fences: SQL conditions the search layer adds to every query of the call (``call.fence``,
  ``hutong/search/fence.py``); a read by id of a fenced-off resource answers 404.
- **Guardians**: a resident's compartment includes the dependants whose cards they manage (the card's
  guardian relation, ``card_card.guardian_card``).
"""

from __future__ import annotations

from hutong.core.caller import Caller
from hutong.core.errors import FhirError

#: ``meta.source`` of an institution's data (the platform's convention; a ``#fragment`` may name the
#: sending system, e.g. ``urn:hutong:org:h1#hl7v2``).
SOURCE_PREFIX = "urn:hutong:org:"
BREAK_GLASS_HEADER = "x-hutong-break-glass"
#: Types that hold no one's personal data: anyone allowed to search may search them unfiltered.
DIRECTORY_TYPES = frozenset({
    "Organization", "Location", "Practitioner", "PractitionerRole", "HealthcareService", "Endpoint",
    "CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition", "SearchParameter", "OperationDefinition",
    "Questionnaire", "PlanDefinition", "ActivityDefinition", "Library", "Measure", "Medication", "Device",
    "Substance", "NamingSystem", "CapabilityStatement", "Subscription", "SubscriptionTopic", "Binary",
})
_RESIDENT_NAMES = frozenset({"read", "vread", "search-type", "history-instance"})
_PATIENT_PARAMS = ("patient", "subject", "beneficiary")


def source_institution(source: str) -> str | None:
    """The institution a ``meta.source`` names (None: none)."""
    if source.startswith(SOURCE_PREFIX):
        return source[len(SOURCE_PREFIX):].split("#", 1)[0] or None
    return None


def _is_person(caller: Caller, role: str) -> bool:
    return role in caller.roles and "system" not in caller.roles and caller.scopes is None


def _compartment(call) -> bool:
    return "{comp}" in call.interaction.pattern


def narrow(caller: Caller, permission: str, call) -> None:
    """Apply the data-level rules to ``call`` (may add query criteria, set ``meta.source``; raises 403)."""
    if call is None or caller.auth == "internal":
        return
    letter = permission.rpartition(".")[2]
    if letter in ("c", "u", "d") and call.interaction.name in ("create", "update", "patch", "delete"):
        _write(caller, call)
    if _is_person(caller, "resident"):
        _resident(caller, call)
    elif _is_person(caller, "clinician"):
        _clinician(caller, call)
    _fence(caller, call)


# ---------------------------------------------------------------------------------------------- writes
def _write(caller: Caller, call) -> None:
    body = call.req.body
    if caller.institution and isinstance(body, dict) and call.interaction.name in ("create", "update"):
        # An institution's writes are its own: the body's meta.source is kept only when it names the
        # caller's institution (with a #fragment naming the sending system), else replaced.
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        given = meta.get("source") if isinstance(meta.get("source"), str) else ""
        if source_institution(given) != caller.institution:
            given = SOURCE_PREFIX + caller.institution
        body["meta"] = {**meta, "source": given}
    if call.interaction.name in ("update", "patch", "delete") and caller.institution and call.res_id:
        current = _current(call)
        if current is None:
            return
        owner = source_institution((current.get("meta") or {}).get("source") or "")
        if owner is not None and owner != caller.institution:
            raise FhirError(403, "forbidden", "an institution may change only the data it is the source of "
                            f"({call.res_type}/{call.res_id} comes from another institution)")


def _current(call) -> dict | None:
    tx = call.tx
    if tx is not None:
        stored = tx.read(call.res_type, call.res_id)
    else:
        with call.store.read() as rtx:
            stored = rtx.read(call.res_type, call.res_id)
    if stored is None or stored.deleted:
        return None
    return stored.resource


# ---------------------------------------------------------------------------------------------- residents
def resident_patients(caller: Caller, store=None, conn=None) -> frozenset[str]:
    """The Patients a resident may see: themselves and the dependants they manage (the card's guardian
    relation: active cards whose ``guardian_card`` is one of the resident's own active cards)."""
    if not caller.patient:
        return frozenset()
    if store is None and conn is None:
        return frozenset({caller.patient})
    from hutong.security.guardians import dependants

    return frozenset({caller.patient, *dependants(store, caller.patient, conn)})


def _resident(caller: Caller, call) -> None:
    mine = resident_patients(caller, call.store, call.tx.conn if call.tx is not None else None)
    if not mine:
        raise FhirError(403, "forbidden", "this resident account is not linked to a patient record")
    name = call.interaction.name
    op = call.interaction.operation
    type_ = call.res_type or call.interaction.fixed_type
    if op == "everything":
        if call.res_id not in mine:
            raise FhirError(403, "forbidden", "a resident may open only their own record")
        return
    if name not in _RESIDENT_NAMES:
        raise FhirError(403, "forbidden", "residents may read and search their own record only")
    if _compartment(call):
        if call.params.get("type") != "Patient" or call.res_id not in mine:
            raise FhirError(403, "forbidden", "a resident may search only their own record")
        return
    if name == "search-type":
        _confine_search(call, type_, mine)
        return
    # read, vread, history of one resource
    if type_ == "Patient":
        if call.res_id not in mine:
            raise FhirError(403, "forbidden", "a resident may read only their own record")
        return
    if type_ in DIRECTORY_TYPES:
        return
    current = _current(call)
    if current is None:
        return  # 404 or 410 from the handler, which says nothing about whose it was
    from hutong.security.audit import patients_of

    if not patients_of(current) or not patients_of(current) <= mine:
        raise FhirError(403, "forbidden", "a resident may read only their own record")


def _confine_search(call, type_: str | None, mine: frozenset[str]) -> None:
    if type_ == "Patient":
        call.req.query.append(("_id", ",".join(sorted(mine))))
        return
    if type_ in DIRECTORY_TYPES:
        return
    param = _patient_param(type_)
    if param is None:
        raise FhirError(403, "forbidden", f"residents may not search {type_}")
    call.req.query.append((param, ",".join(f"Patient/{p}" for p in sorted(mine))))


def _patient_param(type_: str | None) -> str | None:
    if not type_:
        return None
    from hutong.search.params import registry

    reg = registry()
    for code in _PATIENT_PARAMS:
        if reg.get(type_, code) is not None:
            return code
    return None


# ---------------------------------------------------------------------------------------------- doctors
def _clinician(caller: Caller, call) -> None:
    name = call.interaction.name
    type_ = call.res_type or call.interaction.fixed_type
    if type_ in DIRECTORY_TYPES and call.interaction.operation is None:
        return
    if name in ("create", "update", "patch", "delete"):
        return  # writes are the doctor's own institution's (meta.source), checked above
    patients: set[str] = set()
    if call.interaction.operation == "everything" or _compartment(call):
        if call.params.get("type", "Patient") != "Patient":
            raise FhirError(403, "forbidden", "a doctor opens records through the Patient compartment")
        if call.res_id:
            patients.add(call.res_id)
    elif name == "search-type":
        patients = _named_patients(call, type_)
        if not patients:
            raise FhirError(403, "forbidden", "a doctor's search must name the patient (patient=…)")
    elif name in ("read", "vread", "history-instance"):
        if type_ == "Patient":
            patients.add(call.res_id)
        else:
            current = _current(call)
            if current is None:
                return
            owner = source_institution((current.get("meta") or {}).get("source") or "")
            if caller.institution and owner == caller.institution:
                return  # the doctor's own institution's record
            from hutong.security.audit import patients_of

            patients = patients_of(current)
    else:
        return  # operations (e.g. $match, $lastn) carry their own rules and scopes
    for patient in patients:
        if not _in_care(call, caller, patient):
            reason = break_glass_reason(call)
            if len(reason) >= 4:
                from hutong.security.policy import role_allows

                if role_allows(caller.roles, "security.break_glass"):
                    continue  # audited with the reason and flagged for review
            raise FhirError(403, "forbidden", "no care relationship with this patient: open the record from the "
                            "workstation (a visit, referral or card scan) or break the glass with a stated reason "
                            "(X-Hutong-Break-Glass)", details_code="no-care-relationship")


def break_glass_reason(call) -> str:
    """The stated reason of a break-the-glass request (percent-encoded UTF-8 in the header)."""
    from urllib.parse import unquote

    return unquote(call.req.header(BREAK_GLASS_HEADER) or "").strip()[:300]


def _named_patients(call, type_: str | None) -> set[str]:
    out: set[str] = set()
    for key, value in call.req.query:
        base = key.split(":")[0]
        if (type_ == "Patient" and base == "_id") or base in _PATIENT_PARAMS:
            for item in value.split(","):
                item = item.strip()
                if item.startswith("Patient/"):
                    item = item[len("Patient/"):]
                if item and "/" not in item:
                    out.add(item)
    return out


def _in_care(call, caller: Caller, patient: str) -> bool:
    try:
        from hutong.share.launch import has_care_relationship
    except ImportError:  # a node without the shared record has no care relationships to consult
        return False
    return has_care_relationship(call.store, caller.client_id, patient)


# ---------------------------------------------------------------------------------------------- fences
#: What a city-tenant caller may do (each applies the fence); other operations would read around it.
_FENCED_NAMES = frozenset({"read", "vread", "history-instance", "search-type", "search-system", "create", "update",
                           "patch", "delete", "capabilities", "batch", "transaction", "validate"})
_FENCED_OPERATIONS = frozenset({"everything", "export", "export-status", "export-file", "export-poll-status",
                                "validate", "docref"})
_INSTANCE_NAMES = frozenset({"read", "vread", "history-instance", "update", "patch", "delete"})


def _fence(caller: Caller, call) -> None:
    """Set ``call.fence`` (city tenant, consent) and check a call on one resource against it (404)."""
    from hutong.security.consent import RULES

    store = call.store
    name = call.interaction.name
    op = call.interaction.operation
    type_ = call.res_type or call.interaction.fixed_type
    if type_ == "Consent" and name in ("create", "update", "patch", "delete"):
        RULES.touched(store)
    tx = call.tx
    if tx is not None:
        return _fence_in(caller, call, tx.conn, name, op, type_)
    from contextlib import ExitStack

    with ExitStack() as stack:  # most calls need no query here: open a connection only when one is asked
        return _fence_in(caller, call, _LazyConn(store, stack), name, op, type_)


class _LazyConn:
    """A read connection opened on its first ``execute`` (the hot read path of a province caller without
    consent rules to reload never opens one)."""

    def __init__(self, store, stack):
        self._store, self._stack, self._conn = store, stack, None

    def execute(self, *args, **kwargs):
        if self._conn is None:
            self._conn = self._stack.enter_context(self._store.read(snapshot=False)).conn
        return self._conn.execute(*args, **kwargs)


def _fence_in(caller: Caller, call, conn, name: str, op: str | None, type_: str | None) -> None:
    from hutong.search.fence import combine, is_visible
    from hutong.security.consent import consent_fence
    from hutong.security.tenancy import tenant_fence

    store = call.store
    city = tenant_fence(caller, store, conn)
    own = resident_patients(caller, store, conn) if _is_person(caller, "resident") else frozenset()
    fence = combine(city, consent_fence(caller, store, conn, own))
    if fence is None:
        return
    call.fence = fence
    op_name = op or call.interaction.pattern.split("/", 1)[0].lstrip("$")
    if city is not None and name not in _FENCED_NAMES and (name != "operation" or op_name not in _FENCED_OPERATIONS):
        raise FhirError(403, "forbidden", "this interaction is not available to a city tenant's caller "
                        "(it would read past the city's fence)")
    if name in ("history-type", "history-system"):
        raise FhirError(403, "forbidden", "history across resources is not available to a caller whose view is "
                        "limited (city tenant or a resident's consent): read the history of one resource")
    if city is not None and op == "export" and owner_fence(store, caller.client_id) is None:
        raise FhirError(403, "forbidden", "a city tenant exports with a registered client (its job keeps the city's fence)")
    res_id = call.res_id
    if not res_id or not type_:
        return
    if name in _INSTANCE_NAMES or op in ("everything", "export") or _compartment(call):
        if not is_visible(conn, fence, type_, res_id):
            raise FhirError(404, "not-found", f"{type_}/{res_id} is not known")


def owner_fence(store, owner: str):
    """The fence of an export job's owner, from its registration as it is now (a client or an account)."""
    from sqlalchemy import select

    from hutong.search.fence import combine
    from hutong.security.consent import consent_fence
    from hutong.security.tables import security_client, security_user
    from hutong.security.tenancy import tenant_fence

    with store.read(snapshot=False) as tx:
        row = tx.conn.execute(select(security_client.c.institution, security_client.c.tenant)
                              .where(security_client.c.client_id == owner)).first()
        patient = None
        if row is None:
            row = tx.conn.execute(select(security_user.c.institution, security_user.c.tenant, security_user.c.patient)
                                  .where(security_user.c.username == owner)).first()
            patient = row.patient if row is not None else None
        if row is None:
            return None
        who = Caller(client_id=owner, institution=row.institution, tenant=row.tenant, patient=patient, auth="token")
        own = resident_patients(who, store, tx.conn) if patient else frozenset()
        return combine(tenant_fence(who, store, tx.conn), consent_fence(who, store, tx.conn, own))


def install() -> None:
    """Hand the search layer the owner-fence resolver (export jobs run after their request)."""
    from hutong.search.fence import register_owner_fence

    register_owner_fence(owner_fence)
