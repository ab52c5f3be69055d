"""Structural validation of FHIR R4 (4.0.1) JSON resources against the official structure definitions.

What is checked, for every element of a resource (nested resources in ``contained``,
``Bundle.entry.resource`` and ``Parameters.parameter.resource`` included, recursively):

- ``resourceType`` names one of the 146 concrete R4 resource types;
- every property is a known element (unknown ones are reported with their path);
- JSON shape against cardinality: arrays where ``max`` is ``*``, single values where it is ``1``,
  no empty arrays or objects, no ``null`` except inside primitive arrays that carry ``_x`` extensions;
- required elements (``min >= 1``) are present (a primitive with only an ``_x`` extension counts);
- data types: objects for complex types, the right JSON type for primitives, and the formats of the
  primitive types (date, dateTime, instant, time, id, code, uri, oid, uuid, base64Binary, integer ranges…);
- choice types (``value[x]``): only the typed variants (``valueQuantity``…) and at most one of them;
- ``_x`` primitive extension siblings (``_birthDate``), shaped as ``Element`` (``id``, ``extension``);
- extensions: ``url`` present, either a value or nested extensions (ext-1);
- contained resources: no nested ``contained``, no ``meta.versionId``/``lastUpdated``/``security`` (dom-2/4/5);
- ``code`` elements with a *required* binding to a FHIR-defined enumerated value set
  (``Patient.gender``, ``Observation.status``…).

Invariants: only ext-1 and, on contained resources, dom-2, dom-4 and dom-5 are checked. Not checked: all
other FHIRPath invariants (e.g. dom-3, dom-6, obs-6, ele-1 beyond empty values), profiles, extension
definitions, reference targets, extensible/preferred bindings and bindings on Coding/CodeableConcept.

The compiled definitions (``definitions/r4_elements.json.gz``, built by
``definitions/build_definitions.py``) are loaded lazily once per process. Validation is a single walk
over the JSON with one dict lookup per property, so it is cheap enough to run on every write.
"""

from __future__ import annotations

import calendar
import gzip
import json
import re
import threading
from importlib import resources as _ilr

from hutong.core.errors import FhirError, Issue
from hutong.core.ids import ID_PATTERN

__all__ = [
    "check_primitive",
    "element_type",
    "ensure_valid",
    "is_known_resource_type",
    "known_resource_types",
    "validate_resource",
]

_DATA_FILE = "r4_elements.json.gz"

# element kinds
_PRIM = 0  # JSON leaf value of a primitive type
_COMPLEX = 1  # JSON object: data type or backbone element
_RESOURCE = 2  # JSON object carrying its own resourceType
_PEXT = 3  # "_x" sibling of a primitive: Element (id, extension)

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

# --- primitive format checks -------------------------------------------------------------------
# Regexes are those of the R4 specification (profiles-types.json), compiled once. Calendar validity
# of dates ("Dates SHALL be valid dates") is checked after the regex, as the regex alone accepts 02-31.

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_HMS = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_DATE_RE = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME_RE = re.compile(_YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T" + _HMS + _TZ + r")?)?)?")
_INSTANT_RE = re.compile(_YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T" + _HMS + _TZ)
_TIME_RE = re.compile(_HMS)
_ID_RE = re.compile(ID_PATTERN)
_CODE_RE = re.compile(r"[^\s]+( [^\s]+)*")
_URI_RE = re.compile(r"\S+")
_OID_RE = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID_RE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The spec's base64 regex nests quantifiers; on megabyte attachments that is slow, so strip
# whitespace and check alphabet + padding instead (same language).
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WS_RE = re.compile(r"\s+")


def _valid_day(v: str) -> bool:
    """True unless ``v`` (already regex-checked, YYYY-MM-DD…) names a day its month lacks."""
    if len(v) < 10:
        return True
    day = int(v[8:10])
    if day <= 28:
        return True
    month = int(v[5:7])
    return day <= calendar.monthrange(int(v[0:4]), month)[1]


def _check_date(v: str) -> bool:
    return _DATE_RE.fullmatch(v) is not None and _valid_day(v)


def _check_datetime(v: str) -> bool:
    return _DATETIME_RE.fullmatch(v) is not None and _valid_day(v)


def _check_instant(v: str) -> bool:
    return _INSTANT_RE.fullmatch(v) is not None and _valid_day(v)


def _check_base64(v: str) -> bool:
    if not v:
        return False
    s = _WS_RE.sub("", v) if not v.isalnum() else v
    return len(s) % 4 == 0 and _B64_RE.fullmatch(s) is not None


def _check_xhtml(v: str) -> bool:
    # Narrative.div must be an XHTML <div>; full XHTML checking is out of scope here
    return v.lstrip().startswith("<div")


def _check_int(v: int) -> bool:
    return _INT_MIN <= v <= _INT_MAX


def _check_positive(v: int) -> bool:
    return 1 <= v <= _INT_MAX


def _check_unsigned(v: int) -> bool:
    return 0 <= v <= _INT_MAX


def _regex(rx: re.Pattern):
    # the bound method itself (truthy Match or None) saves a Python call per value
    return rx.fullmatch


_STR = frozenset((str,))
#: R4: "Strings SHOULD NOT exceed 1MB in size" — refused beyond, so a 60 MB name cannot reach the
#: store. ``base64Binary`` is exempt (attachments and Binaries are large by nature).
MAX_STRING = 1024 * 1024


#: R4 2.1.0.2 (string): "Strings SHALL NOT contain Unicode character points below 32, except for
#: u0009 (horizontal tab), u000D (carriage return) and u000A (line feed)".
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _nonempty_string(v: str) -> bool:  # JSON strings may never be empty in FHIR
    return 0 < len(v) <= MAX_STRING and _CONTROL.search(v) is None


def _limited(fmt):
    def check(v: str) -> bool:
        return len(v) <= MAX_STRING and bool(fmt(v))

    return check

#: primitive type -> (accepted Python types, format check or None, JSON type named in messages)
_PRIMITIVES: dict[str, tuple[frozenset, object, str]] = {
    "boolean": (frozenset((bool,)), None, "a JSON boolean"),
    "integer": (frozenset((int,)), _check_int, "a JSON integer"),
    "positiveInt": (frozenset((int,)), _check_positive, "a JSON integer"),
    "unsignedInt": (frozenset((int,)), _check_unsigned, "a JSON integer"),
    "decimal": (frozenset((int, float)), None, "a JSON number"),
    "string": (_STR, _nonempty_string, "a JSON string"),
    "markdown": (_STR, _nonempty_string, "a JSON string"),
    "xhtml": (_STR, _limited(_check_xhtml), "a JSON string"),
    "code": (_STR, _limited(_regex(_CODE_RE)), "a JSON string"),
    "id": (_STR, _regex(_ID_RE), "a JSON string"),
    "uri": (_STR, _limited(_regex(_URI_RE)), "a JSON string"),
    "url": (_STR, _limited(_regex(_URI_RE)), "a JSON string"),
    "canonical": (_STR, _limited(_regex(_URI_RE)), "a JSON string"),
    "oid": (_STR, _regex(_OID_RE), "a JSON string"),
    "uuid": (_STR, _regex(_UUID_RE), "a JSON string"),
    "date": (_STR, _check_date, "a JSON string"),
    "dateTime": (_STR, _check_datetime, "a JSON string"),
    "instant": (_STR, _check_instant, "a JSON string"),
    "time": (_STR, _regex(_TIME_RE), "a JSON string"),
    "base64Binary": (_STR, _check_base64, "a JSON string"),
}


def check_primitive(type_name: str, value) -> bool:
    """True if ``value`` (a parsed JSON value) is a valid FHIR R4 ``type_name`` primitive.

    Raises ``KeyError`` for a name that is not a primitive type.
    """
    pytypes, fmt, _ = _PRIMITIVES[type_name]
    return type(value) in pytypes and (fmt is None or bool(fmt(value)))


# --- compiled model ----------------------------------------------------------------------------


class _El:
    """One JSON property of a structure (a choice element yields one per typed variant)."""

    __slots__ = (
        "name", "jname", "types", "type", "kind", "array", "min", "max",
        "struct", "choice", "pytypes", "fmt", "jtype", "codes", "valueset", "base",
    )  # fmt: skip

    def __init__(self, name, jname, types, kind, array, mn, mx):
        self.name = name  # element name as defined ("value[x]")
        self.jname = jname  # JSON property name ("valueQuantity")
        self.types = types  # all type codes of the definition
        self.type = types[0] if len(types) == 1 else None
        self.kind = kind
        self.array = array
        self.min = mn
        self.max = mx  # int, or None for "*"
        self.struct = None
        self.choice = None  # choice group name ("value[x]") for typed variants
        self.pytypes = None
        self.fmt = None
        self.jtype = ""
        self.codes = None
        self.valueset = None
        self.base = jname  # for _PEXT: the primitive property it extends


class _Struct:
    """The properties allowed in one JSON object: a resource, data type or backbone element."""

    __slots__ = ("name", "props", "defs", "required", "is_resource", "is_extension")

    def __init__(self, name: str, is_resource: bool = False):
        self.name = name  # type name or element path, used in messages
        self.props: dict[str, _El] = {}  # JSON property name -> element
        self.defs: dict[str, _El] = {}  # defined element name ("value[x]") -> element
        self.required: list[tuple[str, tuple[str, ...]]] = []  # (element name, JSON keys)
        self.is_resource = is_resource
        self.is_extension = name == "Extension"


class _Model:
    __slots__ = ("structs", "resources", "resource_types", "primitives")

    def __init__(self, structs, resources, primitives):
        self.structs = structs
        self.resources = resources
        self.resource_types = frozenset(resources)
        self.primitives = primitives


_model: _Model | None = None
_lock = threading.Lock()


def _build_model(data: dict) -> _Model:
    primitives = frozenset(data["primitives"])
    concrete = data["resources"]
    abstract_resources = {"Resource", "DomainResource"}
    structs: dict[str, _Struct] = {
        name: _Struct(name, is_resource=name in abstract_resources or name in concrete)
        for name in data["types"]
    }
    by_path: dict[str, _Struct] = dict(structs)
    refs: list[tuple[_El, str]] = []
    value_sets = {url: frozenset(codes) for url, codes in data["valueSets"].items()}

    def make(name, jname, types, mn, mx, st_path):
        code = types[0]
        array = mx != "1"
        mx_int = None if mx == "*" else int(mx)
        if code in primitives:
            el = _El(name, jname, types, _PRIM, array, mn, mx_int)
            el.pytypes, el.fmt, el.jtype = _PRIMITIVES[code]
        elif code == "Resource":
            el = _El(name, jname, types, _RESOURCE, array, mn, mx_int)
        else:
            el = _El(name, jname, types, _COMPLEX, array, mn, mx_int)
            el.struct = structs.get(code)
        return el

    def fill(st: _Struct, elems: dict, prefix: str) -> None:
        for name, (types, mn, mx, children, binding) in elems.items():
            if name.endswith("[x]"):
                base = name[:-3]
                variants = []
                for t in types:
                    jname = base + t[0].upper() + t[1:]
                    el = make(name, jname, [t], mn, mx, prefix)
                    el.choice = name
                    variants.append(el)
                for el in variants:
                    st.props[el.jname] = el
                head = _El(name, base, types, _COMPLEX, mx != "1", mn, None)
                head.choice = name
                st.defs[name] = head
                keys = tuple(el.jname for el in variants)
            else:
                el = make(name, name, types, mn, mx, prefix)
                if isinstance(children, dict):
                    sub = _Struct(f"{prefix}.{name}")
                    by_path[sub.name] = sub
                    fill(sub, children, sub.name)
                    el.struct = sub
                elif isinstance(children, str):
                    refs.append((el, children.lstrip("#")))
                if binding and binding in value_sets:
                    el.codes = value_sets[binding]
                    el.valueset = binding
                st.props[name] = el
                st.defs[name] = el
                variants = [el]
                keys = (name,)
            # "_x" siblings of primitives carry the element's id/extensions
            for el in variants:
                if el.kind == _PRIM and el.type != "xhtml":  # xhtml (Narrative.div) takes no extensions
                    ext = _El(el.name, "_" + el.jname, el.types, _PEXT, el.array, 0, el.max)
                    ext.choice = el.choice
                    ext.base = el.jname
                    st.props[ext.jname] = ext
                    keys = keys + (ext.jname,)
            if mn >= 1:
                st.required.append((name, keys))

    for name, elems in data["types"].items():
        fill(structs[name], elems, name)
    for el, target in refs:
        el.struct = by_path[target]
    element = structs["Element"]
    for st in by_path.values():
        for el in st.props.values():
            if el.kind == _PEXT:
                el.struct = element
    resources = {name: structs[name] for name in concrete}
    return _Model(structs, resources, primitives)


def _get_model() -> _Model:
    global _model
    m = _model
    if m is None:
        with _lock:
            if _model is None:
                raw = (_ilr.files("hutong.fhir.definitions") / _DATA_FILE).read_bytes()
                _model = _build_model(json.loads(gzip.decompress(raw)))
            m = _model
    return m


# --- public API ----------------------------------------------------------------------------------


def known_resource_types() -> frozenset[str]:
    """The 146 concrete FHIR R4 resource type names."""
    return _get_model().resource_types


def is_known_resource_type(name: str) -> bool:
    """True if ``name`` is a concrete FHIR R4 resource type (e.g. ``"Patient"``; not ``"Resource"``)."""
    return type(name) is str and name in _get_model().resources


def _element(path: str):
    m = _get_model()
    parts = path.split(".")
    st = m.structs.get(parts[0])
    if st is None or len(parts) < 2:
        return None
    el = None
    for part in parts[1:]:
        if st is None:
            return None
        if part.endswith("]") and not part.endswith("[x]"):
            part = part[: part.index("[")]
        el = st.defs.get(part) or st.props.get(part) or st.defs.get(part + "[x]")
        if el is None or el.kind == _PEXT:
            return None
        st = el.struct if el.kind == _COMPLEX else None
    return el


def element_is_array(path: str) -> bool | None:
    """Whether the element at a dotted path repeats (``max`` > 1), or None if there is no such element."""
    el = _element(path)
    return None if el is None else bool(el.array)


def element_type(path: str) -> list[str]:
    """The type codes of the element at a dotted definition path, or ``[]`` if there is no such element.

    ``element_type("Observation.value[x]")`` -> ``["Quantity", "CodeableConcept", "string", ...]``;
    a typed choice name gives its one type (``"Observation.valueQuantity"`` -> ``["Quantity"]``);
    paths may continue into data types (``"Patient.name.family"`` -> ``["string"]``);
    backbone elements give ``["BackboneElement"]`` (or ``["Element"]`` inside data types).
    Array indexes (``name[0]``) are ignored; ``"Observation.value"`` is read as ``value[x]``.
    """
    el = _element(path)
    return list(el.types) if el is not None else []


def validate_resource(resource: dict) -> list[Issue]:
    """Check a parsed FHIR R4 JSON resource against the R4 structure definitions.

    Returns an empty list if the resource is structurally valid, else one ``Issue`` (severity
    ``error``) per problem, with a FHIRPath-like ``expression`` such as ``Patient.name[0].given[1]``.
    Issue codes: ``structure`` (unknown element, wrong JSON type or shape, cardinality), ``required``
    (missing required element), ``value`` (bad primitive format), ``code-invalid`` (code outside a
    required value set), ``invariant`` (ext-1, dom-2/4/5), ``invalid`` (not a resource, unknown resourceType).
    """
    issues: list[Issue] = []
    if type(resource) is not dict:
        issues.append(Issue("error", "invalid", "A resource must be a JSON object", []))
        return issues
    try:
        _check_resource(resource, None, _get_model(), issues)
    except RecursionError:
        # only reachable with pathologically nested input; refuse it instead of failing with a 500
        rt = resource.get("resourceType")
        where = [rt] if type(rt) is str else []
        issues.append(Issue("error", "structure", "The resource is nested too deeply to validate", where))
    return issues


def ensure_valid(resource: dict, max_issues: int = 50) -> None:
    """Raise ``FhirError`` (HTTP 400, all issues as OperationOutcome) unless ``resource`` is valid.

    FHIR REST says a resource that fails basic validation rules gets 400 Bad Request. At most
    ``max_issues`` issues are kept so a garbage upload cannot produce a huge response.
    """
    issues = validate_resource(resource)
    if issues:
        first = issues[0]
        more = f" (and {len(issues) - 1} more issues)" if len(issues) > 1 else ""
        raise FhirError(
            400, first.code, f"{first.diagnostics}{more}", first.expression, issues=issues[:max_issues]
        )


# --- the walk -----------------------------------------------------------------------------------


_Path = str | tuple  # a rendered path, or (parent, key) / (parent, key, index)


def _P(path: _Path) -> str:
    """Render a lazy path: paths are built as (parent, key[, index]) tuples and only become
    strings when an issue is reported, which keeps the valid case cheap."""
    if type(path) is str:
        return path
    if len(path) == 2:
        return f"{_P(path[0])}.{path[1]}"
    return f"{_P(path[0])}.{path[1]}[{path[2]}]"


def _err(issues: list[Issue], code: str, msg: str, path: str) -> None:
    issues.append(Issue("error", code, msg, [path]))


def _check_resource(obj: dict, path: _Path | None, m: _Model, issues: list[Issue]) -> None:
    rt = obj.get("resourceType")
    st = m.resources.get(rt) if type(rt) is str else None
    if st is None:
        where = _P(path) if path is not None else "resourceType"
        if rt is None:
            _err(issues, "required", "The resource has no resourceType", where)
        elif type(rt) is str and rt in m.structs:
            _err(issues, "invalid", f'"{rt}" is not a concrete FHIR R4 resource type', where)
        else:
            _err(issues, "invalid", f"Unknown resourceType {rt!r}: not a FHIR R4 resource type", where)
        return
    _walk(obj, st, path or rt, m, issues)


def _walk(obj: dict, st: _Struct, path: _Path, m: _Model, issues: list[Issue]) -> None:
    props = st.props
    seen_choice = None
    for key, val in obj.items():
        el = props.get(key)
        if el is None:
            if key == "resourceType" and st.is_resource:
                continue
            _unknown(key, st, path, issues)
            continue
        if el.choice is not None:
            if seen_choice is None:
                seen_choice = {el.choice: el.base}
            else:
                other = seen_choice.get(el.choice)
                if other is None:
                    seen_choice[el.choice] = el.base
                elif other != el.base:
                    _err(
                        issues, "structure",
                        f"Only one type of {el.name} is allowed in {st.name}, found both {other} and {el.base}",
                        f"{_P(path)}.{key}",
                    )  # fmt: skip
                    continue
        kind = el.kind
        if el.array:
            if type(val) is not list:
                if val is None:
                    _err(issues, "structure", f"{key} must not be null", f"{_P(path)}.{key}")
                else:
                    _err(
                        issues, "structure",
                        f"{key} must be a JSON array (cardinality {el.min}..*), found {_jname(val)}",
                        f"{_P(path)}.{key}",
                    )  # fmt: skip
                continue
            if not val:
                _err(issues, "structure", f"{key} must not be an empty array", f"{_P(path)}.{key}")
                continue
            if kind == _PRIM:
                pytypes, fmt, codes = el.pytypes, el.fmt, el.codes
                for i, item in enumerate(val):
                    if type(item) in pytypes and (fmt is None or fmt(item)):
                        if codes is None or item in codes:
                            continue
                    if item is None:
                        if not _has_ext(obj, key, i):
                            _err(
                                issues, "structure",
                                f"{key}[{i}] is null but _{key}[{i}] has no id or extension for it",
                                f"{_P(path)}.{key}[{i}]",
                            )  # fmt: skip
                        continue
                    _bad_primitive(el, item, f"{_P(path)}.{key}[{i}]", issues)
            elif kind == _COMPLEX:
                sub = el.struct
                for i, item in enumerate(val):
                    if type(item) is dict and item:
                        _walk(item, sub, (path, key, i), m, issues)
                    else:
                        _not_object(el, item, f"{_P(path)}.{key}[{i}]", issues)
            elif kind == _RESOURCE:
                for i, item in enumerate(val):
                    if type(item) is dict:
                        _check_resource(item, (path, key, i), m, issues)
                        if key == "contained":
                            _check_contained(item, (path, key, i), issues)
                    else:
                        _not_object(el, item, f"{_P(path)}.{key}[{i}]", issues)
            else:  # _PEXT array: parallel to the primitive array
                _check_ext_array(obj, el, val, path, m, issues)
            if el.max is not None and len(val) > el.max:
                _err(
                    issues, "structure",
                    f"{key} has {len(val)} items, more than the maximum of {el.max}",
                    f"{_P(path)}.{key}",
                )  # fmt: skip
        else:
            if kind == _PRIM:
                if type(val) in el.pytypes and (el.fmt is None or el.fmt(val)):
                    if el.codes is None or val in el.codes:
                        continue
                _bad_primitive(el, val, f"{_P(path)}.{key}", issues)
            elif type(val) is dict and val:
                if kind == _COMPLEX:
                    _walk(val, el.struct, (path, key), m, issues)
                elif kind == _RESOURCE:
                    _check_resource(val, (path, key), m, issues)
                else:
                    _walk(val, el.struct, (path, el.base), m, issues)
            else:
                _not_object(el, val, f"{_P(path)}.{el.base if kind == _PEXT else key}", issues)
    for name, keys in st.required:
        for k in keys:
            if k in obj:
                break
        else:
            _err(
                issues, "required",
                f"Missing required element {name} in {st.name} (minimum cardinality 1)",
                f"{_P(path)}.{name}",
            )  # fmt: skip
    if st.is_extension:
        _check_ext1(obj, path, issues)


def _jname(v) -> str:
    if v is None:
        return "null"
    if type(v) is bool:
        return "a boolean"
    if type(v) is str:
        return "a string"
    if type(v) is list:
        return "an array"
    if type(v) is dict:
        return "an object"
    return "a number"


def _unknown(key: str, st: _Struct, path: _Path, issues: list[Issue]) -> None:
    hint = ""
    if key.startswith("_") and key[1:] in st.props:
        hint = f" ({key[1:]} is not a primitive, so it has no _ sibling)"
    else:
        # a choice element written without its type suffix, e.g. "value" for value[x]
        head = st.defs.get(key + "[x]")
        if head is not None:
            hint = f" (use a typed name for {head.name}, e.g. {key}{head.types[0][0].upper()}{head.types[0][1:]})"
    _err(issues, "structure", f'Unknown element "{key}" in {st.name}{hint}', f"{_P(path)}.{key}")


def _not_object(el: _El, v, path: str, issues: list[Issue]) -> None:
    if type(v) is dict:
        _err(issues, "structure", f"{el.jname} must not be an empty object", path)
    elif type(v) is list:
        _err(issues, "structure", f"{el.jname} must be a single JSON object (cardinality ..1), found an array", path)
    else:
        what = "a resource" if el.kind == _RESOURCE else f"a {el.type or 'Element'} object"
        _err(issues, "structure", f"{el.jname} must be {what}, found {_jname(v)}", path)


def _bad_primitive(el: _El, v, path: str, issues: list[Issue]) -> None:
    if type(v) not in el.pytypes:
        if type(v) is list:
            msg = f"{el.jname} must be a single value (cardinality ..1), found an array"
        else:
            msg = f"{el.jname} is of type {el.type} and must be {el.jtype}, found {_jname(v)}"
        _err(issues, "structure", msg, path)
    elif el.fmt is not None and not el.fmt(v):
        shown = v if type(v) is not str or len(v) <= 80 else v[:77] + "..."
        if el.type in ("integer", "positiveInt", "unsignedInt"):
            _err(issues, "value", f"{shown} is out of range for {el.type} ({el.jname})", path)
        elif v == "":
            _err(issues, "value", f"{el.jname} must not be an empty string", path)
        elif type(v) is str and len(v) > MAX_STRING:
            _err(issues, "too-long", f"{el.jname} is {len(v):,} characters long; FHIR strings may be at most "
                 f"{MAX_STRING:,} (send large content as an attachment or Binary)", path)
        elif type(v) is str and _CONTROL.search(v) is not None:
            char = _CONTROL.search(v).group()
            _err(issues, "value", f"{el.jname} contains the control character U+{ord(char):04X}; FHIR strings "
                 "may not contain characters below U+0020 other than tab, carriage return and line feed", path)
        else:
            _err(issues, "value", f"{shown!r} is not a valid {el.type} ({el.jname})", path)
    else:
        _err(
            issues, "code-invalid",
            f"{v!r} is not in the required value set {el.valueset} ({el.jname})",
            path,
        )  # fmt: skip


def _has_ext(obj: dict, key: str, i: int) -> bool:
    """True if the ``_key`` sibling has a non-null entry at index ``i`` (so a null value is allowed)."""
    ext = obj.get("_" + key)
    return type(ext) is list and i < len(ext) and ext[i] is not None


def _check_ext_array(obj: dict, el: _El, val: list, path: _Path, m: _Model, issues: list[Issue]) -> None:
    base = obj.get(el.base)
    if base is not None and type(base) is list and len(base) != len(val):
        _err(
            issues, "structure",
            f"{el.jname} has {len(val)} items but {el.base} has {len(base)}; they must line up",
            f"{_P(path)}.{el.jname}",
        )  # fmt: skip
    for i, item in enumerate(val):
        if item is None:
            if base is None:  # (a null in both arrays is reported with the primitive array)
                _err(issues, "structure", f"{el.base}[{i}] has neither a value nor extensions", f"{_P(path)}.{el.base}[{i}]")
            continue
        if type(item) is dict and item:
            _walk(item, el.struct, (path, el.base, i), m, issues)
        else:
            _not_object(el, item, f"{_P(path)}.{el.base}[{i}]", issues)


def _check_ext1(obj: dict, path: _Path, issues: list[Issue]) -> None:
    has_value = False
    for key in obj:
        if key.startswith("value") or key.startswith("_value"):
            has_value = True
            break
    if has_value == ("extension" in obj):
        msg = (
            "An extension must have either extensions or a value[x], not both (ext-1)"
            if has_value
            else "An extension must have either extensions or a value[x] (ext-1)"
        )
        _err(issues, "invariant", msg, _P(path))


def _check_contained(res: dict, path: _Path, issues: list[Issue]) -> None:
    """dom-2, dom-4, dom-5: the cheap invariants on contained resources (dom-3, "is referenced", is not checked)."""
    if "contained" in res:
        _err(issues, "invariant", "A contained resource must not contain other resources (dom-2)", f"{_P(path)}.contained")
    meta = res.get("meta")
    if type(meta) is dict:
        if "versionId" in meta or "lastUpdated" in meta:
            _err(
                issues, "invariant",
                "A contained resource must not have meta.versionId or meta.lastUpdated (dom-4)",
                f"{_P(path)}.meta",
            )  # fmt: skip
        if "security" in meta:
            _err(issues, "invariant", "A contained resource must not have security labels (dom-5)", f"{_P(path)}.meta.security")
