"""Linked identities in searches: one person's Patient records at every institution.

The patient index (``hutong/mpi``) knows which Patient records belong to the same person; search does not
import it. A capability that offers the shared record (``hutong/share``) registers a resolver here,
``resolver(conn, patient_id) -> [patient ids]`` (the given one first), and then:

- ``Patient/{id}/$everything`` covers every linked record (``hutong/search/everything.py``; the operation
  parameter ``linked=false`` keeps the single-record answer);
- a reference parameter with the ``:linked`` modifier, ``Observation?patient:linked=Patient/123`` (also
  ``subject:linked``, ``patient:linked=123``), matches resources of any record linked to Patient/123. R4's
  ``patient`` may only point at a Patient (``patient:Person=`` is not valid), so the modifier is this
  server's documented extension, like HAPI FHIR's ``:mdm``; it is rewritten here to the standard
  ``patient=Patient/1,Patient/2,…`` (an OR list) before planning.

Without a resolver ``:linked`` is refused as an unknown modifier and ``$everything`` is single-record.
"""

from __future__ import annotations

from collections.abc import Callable

from hutong.core.errors import FhirError

MODIFIER = "linked"
#: At most this many linked records are expanded (a person has a handful; more means a bad link).
MAX_LINKED = 200

_resolver: Callable[[object, str], list[str]] | None = None


def register_resolver(resolver: Callable[[object, str], list[str]] | None) -> None:
    """Install (or remove, with None) the linked-identity resolver."""
    global _resolver
    _resolver = resolver


def resolver() -> Callable[[object, str], list[str]] | None:
    """The installed resolver, or None."""
    return _resolver


def linked_ids(conn, patient_id: str) -> list[str]:
    """Every Patient id linked to ``patient_id`` (itself first); just itself without a resolver."""
    if _resolver is None:
        return [patient_id]
    ids = _resolver(conn, patient_id) or [patient_id]
    if ids[0] != patient_id:
        ids = [patient_id] + [i for i in ids if i != patient_id]
    return ids[:MAX_LINKED]


def expand_params(conn, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Rewrite ``X:linked=Patient/id`` parameters into ``X=Patient/a,Patient/b,…`` (see the module docstring)."""
    if _resolver is None or not any(name.endswith(":" + MODIFIER) for name, _v in params):
        return params
    out = []
    for name, value in params:
        if not name.endswith(":" + MODIFIER):
            out.append((name, value))
            continue
        base = name[: -len(MODIFIER) - 1]
        if not base or ":" in base or "." in base:
            raise FhirError(400, "invalid", f"{name}: the :linked modifier applies to a plain reference parameter",
                            name)
        refs = []
        for item in value.split(","):
            item = item.strip()
            pid = item.split("/", 1)[1] if item.startswith("Patient/") else item
            if not pid or "/" in pid:
                raise FhirError(400, "invalid", f"{name} takes Patient references (Patient/123 or 123)", name)
            refs.extend(f"Patient/{i}" for i in linked_ids(conn, pid))
        out.append((base, ",".join(dict.fromkeys(refs))))
    return out
