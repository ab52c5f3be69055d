"""The FHIRPath engine statistics use: fhirpathpy (R4 model) with the functions SQL on FHIR v2 adds.

fhirpathpy evaluates the expressions; this module compiles each expression once, passes
constants and ``%rowIndex`` as variables, and adds the SQL on FHIR functions fhirpathpy lacks:
``getResourceKey()``, ``getReferenceKey([type])``, ``lowBoundary()`` and ``highBoundary()``
(FHIRPath 2.1 / 3.0, used by the view tests). Results come back as plain JSON values
(str, int, float, bool, dict), dates and times in their FHIR string form.
"""

from __future__ import annotations

import calendar
import re
from decimal import Decimal
from functools import lru_cache

from fhirpathpy.engine import do_eval
from fhirpathpy.engine.invocations.constants import constants
from fhirpathpy.engine.nodes import FP_DateTime, FP_Quantity, FP_Time, FP_Type, ResourceNode
from fhirpathpy.engine.util import arraify, get_data
from fhirpathpy.models import models
from fhirpathpy.parser import parse

R4 = models["r4"]


class FhirPathError(ValueError):
    """An expression that does not parse or cannot be evaluated."""


def _node_fhir_type(node) -> str | None:
    """The FHIR type of a node (``dateTime``, ``decimal``…) when fhirpathpy knows it."""
    if isinstance(node, ResourceNode):
        if node.path and "." not in node.path and node.path[:1].islower():
            return node.path
        try:
            info = node.get_type_info()
            return info.name
        except Exception:  # noqa: BLE001 - type information is best effort
            return None
    return None


def _get_resource_key(ctx, inputs):
    out = []
    for node in inputs:
        data = get_data(node)
        if isinstance(data, dict) and data.get("resourceType") and data.get("id"):
            out.append(data["id"])
    return out


def _get_reference_key(ctx, inputs, type_spec=None):
    wanted = None
    if type_spec is not None:
        wanted = getattr(type_spec, "name", None) or str(type_spec)
        wanted = wanted.split(".")[-1]
    out = []
    for node in inputs:
        data = get_data(node)
        ref = data.get("reference") if isinstance(data, dict) else None
        if not isinstance(ref, str) or "/" not in ref:
            continue
        parts = ref.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        rtype, rid = parts[-2], parts[-1]
        if wanted and rtype != wanted:
            continue
        out.append(rid)
    return out


_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_TIME_RE = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$")


def _decimal_boundary(value, high: bool, precision: int | None):
    text = repr(value) if isinstance(value, float) else str(value)
    d = Decimal(text)
    scale = max(0, -d.as_tuple().exponent)
    half = Decimal(5) * Decimal(10) ** -(scale + 1)
    result = d + half if high else d - half
    if precision is not None:
        result = result.quantize(Decimal(10) ** -precision)
    return float(result) if result != result.to_integral_value() or scale else int(result)


def _date_boundary(text: str, high: bool) -> str | None:
    m = _DATE_RE.match(text)
    if not m:
        return None
    y, mo, d = m.group(1), m.group(2), m.group(3)
    if mo is None:
        mo = "12" if high else "01"
    if d is None:
        d = f"{calendar.monthrange(int(y), int(mo))[1]:02d}" if high else "01"
    return f"{y}-{mo}-{d}"


def _datetime_boundary(text: str, high: bool) -> str | None:
    m = _DATETIME_RE.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    date = _date_boundary("-".join(p for p in (y, mo, d) if p), high)
    hh = hh or ("23" if high else "00")
    mi = mi or ("59" if high else "00")
    ss = ss or ("59" if high else "00")
    frac = (frac or "")[:3].ljust(3, "9" if high and not frac else "0")
    if tz is None:
        # no offset: the widest interval runs from +14:00 (earliest) to -12:00 (latest)
        tz = "-12:00" if high else "+14:00"
    return f"{date}T{hh}:{mi}:{ss}.{frac}{tz}"


def _time_boundary(text: str, high: bool) -> str | None:
    m = _TIME_RE.match(text)
    if not m:
        return None
    hh, mi, ss, frac = m.groups()
    mi = mi or ("59" if high else "00")
    ss = ss or ("59" if high else "00")
    frac = (frac or "")[:3].ljust(3, "9" if high and not frac else "0")
    return f"{hh}:{mi}:{ss}.{frac}"


def _boundary(high: bool):
    def fn(ctx, inputs, precision=None):
        out = []
        for node in inputs:
            data = get_data(node)
            kind = _node_fhir_type(node)
            if isinstance(data, FP_Type):
                data = str(data)
                kind = kind or ("time" if isinstance(node, FP_Time) else "dateTime")
            if isinstance(data, bool):
                continue
            if isinstance(data, (int, float, Decimal)) and kind not in ("date", "dateTime", "time", "instant"):
                if kind == "integer" and isinstance(data, int):
                    out.append(data)
                else:
                    out.append(_decimal_boundary(data, high, precision))
            elif isinstance(data, str):
                if kind == "time":
                    r = _time_boundary(data, high)
                elif kind == "date":
                    r = _date_boundary(data, high)
                elif kind in ("dateTime", "instant"):
                    r = _datetime_boundary(data, high)
                else:
                    r = _date_boundary(data, high) if _DATE_RE.match(data) else _datetime_boundary(data, high)
                if r is not None:
                    out.append(r)
        return out
    return fn


def _join(ctx, inputs, separator=""):
    # FHIRPath 3.0: join() of an empty collection is the empty string (fhirpathpy gives empty)
    parts = []
    for node in inputs:
        data = get_data(node)
        if not isinstance(data, str):
            raise FhirPathError(f"join() needs strings, not {type(data).__name__}")
        parts.append(data)
    return [(separator or "").join(parts)]


FUNCTIONS = {
    "join": {"fn": _join, "arity": {0: [], 1: ["String"]}},
    "getResourceKey": {"fn": _get_resource_key},
    "getReferenceKey": {"fn": _get_reference_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
    "lowBoundary": {"fn": _boundary(False), "arity": {0: [], 1: ["Integer"]}},
    "highBoundary": {"fn": _boundary(True), "arity": {0: [], 1: ["Integer"]}},
}


class Expression:
    """One compiled FHIRPath expression."""

    __slots__ = ("text", "_tree")

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise FhirPathError(f"FHIRPath expression must be a non-empty string, not {text!r}")
        self.text = text
        try:
            self._tree = _parse(text)
        except Exception as exc:  # noqa: BLE001 - the parser raises plain exceptions
            raise FhirPathError(f"FHIRPath expression {text!r} does not parse: {exc}") from None

    def nodes(self, focus, variables: dict | None = None) -> list:
        """Evaluate on ``focus`` (a resource dict or a node from an earlier evaluation): raw nodes."""
        constants.reset()
        root = focus if isinstance(focus, ResourceNode) else focus
        data_root = arraify(root)
        env = {"context": root, "ucum": "http://unitsofmeasure.org", "resource": root, "rootResource": root}
        if variables:
            env.update(variables)
        ctx = {"dataRoot": data_root, "vars": env, "model": R4, "userInvocationTable": FUNCTIONS,
               "$this": data_root}
        try:
            result = do_eval(ctx, data_root, self._tree["children"][0])
        except FhirPathError:
            raise
        except Exception as exc:  # noqa: BLE001 - fhirpathpy raises plain exceptions
            raise FhirPathError(f"FHIRPath expression {self.text!r} failed: {exc}") from None
        return [n for n in arraify(result) if not _is_bare_extension(n)]

    def values(self, focus, variables: dict | None = None) -> list:
        """Evaluate and turn the result into plain JSON values."""
        return [plain(n) for n in self.nodes(focus, variables)]


@lru_cache(maxsize=4096)
def _parse(text: str):
    return parse(text)


def compile_expression(text: str) -> Expression:
    """A compiled expression (``FhirPathError`` when it does not parse)."""
    return Expression(text)


def _is_bare_extension(node) -> bool:
    # fhirpathpy represents a primitive's extensions (``_birthDate``) as a node holding only them;
    # like fhirpathpy's own evaluate, leave those out of results
    return isinstance(node, ResourceNode) and isinstance(node.data, dict) and list(node.data) == ["extension"]


def plain(node):
    """A node as a JSON value: FHIR strings for dates and times, numbers for decimals."""
    data = get_data(node) if isinstance(node, ResourceNode) else node
    if isinstance(data, FP_Quantity):
        return {"value": _number(data.value), "unit": data.unit}
    if isinstance(data, (FP_DateTime, FP_Time, FP_Type)):
        return str(data)
    if isinstance(data, Decimal):
        return _number(data)
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


def _number(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    return value
