"""SMART on FHIR system scopes (v1 ``system/Patient.read``, v2 ``system/Observation.rs``) and the
node's own ``hutong/<permission>`` scopes, and whether a set of scopes grants a permission.

FHIR data permissions are ``<Type>.<letter>`` with the letter one of SMART v2's ``c r u d s``
(``*.s`` is a search across types). Capability permissions (``card.verify``) are granted by
``hutong/card.verify``, ``hutong/card.*`` or ``hutong/*``.
"""

from __future__ import annotations

import re

from hutong.core.errors import FhirError

_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^system/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)$")
_OWN = re.compile(r"^hutong/(\*|[a-z][a-z0-9_.]*(\.\*)?)$")
FHIR_LETTERS = frozenset("cruds")
#: Capability permissions that SMART data scopes imply (Bulk Data export is reading everything).
IMPLIED_BY_DATA = {"bulk.export": ("*.r", "*.s")}


class ScopeError(ValueError):
    """A scope this node does not understand."""


def parse_scope(text: str) -> frozenset[str]:
    """The scopes of a space-separated ``scope`` string (refused: unknown forms, query restrictions)."""
    out = set()
    for word in text.split():
        if "?" in word:
            raise ScopeError(f"scope {word[:80]!r}: query-restricted scopes are not supported")
        if not (_SCOPE.match(word) or _OWN.match(word)):
            raise ScopeError(f"scope {word[:80]!r} is not a system/ or hutong/ scope this server grants")
        m = _SCOPE.match(word)
        if m and m.group(2) == "":
            raise ScopeError(f"scope {word[:80]!r} names no interaction")
        out.add(word)
    return frozenset(out)


def _fhir_grants(scope: str) -> tuple[str, str] | None:
    m = _SCOPE.match(scope)
    if not m:
        return None
    return m.group(1), _V1.get(m.group(2), m.group(2))


#: Decisions already taken: a token's scopes are asked the same few questions on every request, and
#: matching each scope's pattern cost more than the rest of the policy check (measured).
_DECIDED: dict[tuple[frozenset[str], str], bool] = {}


def grants(scopes: frozenset[str], permission: str) -> bool:
    """Whether ``scopes`` grant ``permission`` (``Patient.r``, ``*.s``, ``card.verify``…)."""
    if type(scopes) is not frozenset:
        return _grants(scopes, permission)
    key = (scopes, permission)
    got = _DECIDED.get(key)
    if got is None:
        got = _grants(scopes, permission)
        if len(_DECIDED) > 50_000:
            _DECIDED.clear()
        _DECIDED[key] = got
    return got


def _grants(scopes: frozenset[str], permission: str) -> bool:
    type_, _, letter = permission.rpartition(".")
    if letter in FHIR_LETTERS and len(letter) == 1 and (type_ == "*" or type_[:1].isupper()):
        for scope in scopes:
            got = _fhir_grants(scope)
            if got and letter in got[1] and (got[0] == "*" or got[0] == type_):
                return True
        return False
    implied = IMPLIED_BY_DATA.get(permission)
    if implied and all(grants(scopes, p) for p in implied):
        return True
    for scope in scopes:
        if not scope.startswith("hutong/"):
            continue
        want = scope[len("hutong/"):]
        if want == "*" or want == permission or (want.endswith(".*") and permission.startswith(want[:-1])):
            return True
    return False


def narrow(requested: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    """The requested scopes a client registered for ``allowed`` may have; 400 ``invalid_scope`` otherwise."""
    out = set()
    for scope in requested:
        if scope in allowed or _covered(scope, allowed):
            out.add(scope)
        else:
            raise FhirError(400, "forbidden", f"scope {scope[:80]!r} is not granted to this client")
    return frozenset(out)


def _covered(scope: str, allowed: frozenset[str]) -> bool:
    got = _fhir_grants(scope)
    if got is not None:
        type_, letters = got
        if type_ == "*":
            return all(any((g := _fhir_grants(a)) and g[0] == "*" and ch in g[1] for a in allowed) for ch in letters)
        return all(grants(allowed, f"{type_}.{ch}") for ch in letters)
    perm = scope[len("hutong/"):]
    if perm == "*":
        return "hutong/*" in allowed
    if perm.endswith(".*"):
        return "hutong/*" in allowed or scope in allowed
    return grants(allowed, perm)
