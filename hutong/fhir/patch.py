"""PATCH bodies: JSON Patch (RFC 6902) and FHIRPath Patch (a ``Parameters`` resource, R4 fhirpatch.html).

``patch_function(body, content_type)`` turns a request body into a function from the current
resource to the patched one; the store applies it to the locked current version.

FHIRPath Patch paths are evaluated by a small locator that supports what patches use in practice:
a path from the resource type through element names, ``[n]`` indexes, ``.where(criteria)`` (the
criteria evaluated by fhirpathpy on each candidate), ``.first()`` and ``.last()``. A path outside
that subset is refused with 422 naming it, rather than guessed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass

import jsonpatch

from hutong.core.errors import FhirError, bad_request
from hutong.fhir.body import media_type

SUPPORTED = ("JSON Patch (application/json-patch+json, an array of operations)",
             "FHIRPath Patch (application/fhir+json, a Parameters resource)")


def _unprocessable(message: str) -> FhirError:
    return FhirError(422, "processing", message)


def patch_function(body, content_type: str | None) -> Callable[[dict], dict]:
    """The function applying ``body`` (JSON Patch list or FHIRPath Patch Parameters) to a resource."""
    ctype = media_type(content_type)
    if isinstance(body, list) and ctype in ("", "application/json-patch+json", "application/json"):
        return lambda resource: apply_json_patch(resource, body)
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        operations = parse_fhirpath_patch(body)
        return lambda resource: apply_fhirpath_patch(resource, operations)
    raise bad_request("unsupported PATCH body: send " + " or ".join(SUPPORTED))


def apply_json_patch(resource: dict, operations: list) -> dict:
    """RFC 6902 JSON Patch."""
    try:
        return jsonpatch.JsonPatch(operations).apply(resource)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError, KeyError) as exc:
        raise _unprocessable(f"JSON Patch could not be applied: {exc}") from None


# ---------------------------------------------------------------------------------------------- FHIRPath Patch
@dataclass
class Operation:
    """One ``Parameters.parameter`` named ``operation``."""

    type: str
    path: str
    name: str | None = None
    value: object = None
    has_value: bool = False
    index: int | None = None
    source: int | None = None
    destination: int | None = None


_TYPES = ("add", "insert", "delete", "replace", "move")


def _part_value(part: dict):
    """The value a ``part`` carries: its ``value[x]``, or an object built from its own parts."""
    for key, val in part.items():
        if key.startswith("value") and key != "value" and key[5:6].isupper():
            return val, True
    if isinstance(part.get("part"), list):
        obj: dict = {}
        for sub in part["part"]:
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise bad_request("a FHIRPath Patch value part needs a name")
            val, ok = _part_value(sub)
            if ok:
                obj[sub["name"]] = val
        return obj, True
    return None, False


def parse_fhirpath_patch(body: dict) -> list[Operation]:
    """The operations of a FHIRPath Patch ``Parameters`` resource (400 when malformed)."""
    ops = []
    for i, param in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(param, dict) or param.get("name") != "operation" or not isinstance(param.get("part"), list):
            raise bad_request("every FHIRPath Patch parameter must be an 'operation' with parts", where)
        fields: dict = {}
        for part in param["part"]:
            if not isinstance(part, dict) or not isinstance(part.get("name"), str):
                raise bad_request("a FHIRPath Patch part needs a name", where)
            val, ok = _part_value(part)
            fields[part["name"]] = (val, ok)
        op_type = fields.get("type", (None, False))[0]
        path = fields.get("path", (None, False))[0]
        if op_type not in _TYPES:
            raise bad_request(f"operation type must be one of {', '.join(_TYPES)}", where)
        if not isinstance(path, str) or not path:
            raise bad_request("a FHIRPath Patch operation needs a path", where)
        op = Operation(op_type, path)
        if "value" in fields:
            op.value, op.has_value = copy.deepcopy(fields["value"][0]), fields["value"][1]
        for key in ("index", "source", "destination"):
            if key in fields:
                if not isinstance(fields[key][0], int):
                    raise bad_request(f"{key} must be an integer", where)
                setattr(op, key, fields[key][0])
        if "name" in fields:
            op.name = fields["name"][0]
        need = {"add": ("name", "value"), "insert": ("index", "value"), "replace": ("value",),
                "move": ("source", "destination"), "delete": ()}[op_type]
        for key in need:
            if key not in fields:
                raise bad_request(f"a FHIRPath Patch {op_type} needs {key}", where)
        ops.append(op)
    return ops


@dataclass
class Slot:
    """Where a located value lives: ``container[key]`` or ``container[key][index]``."""

    container: dict
    key: str
    index: int | None
    def_path: str

    @property
    def value(self):
        val = self.container[self.key]
        return val[self.index] if self.index is not None else val


_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)(\((?:[^()]|\([^()]*\))*\))?|\[(\d+)\]")


def _steps(path: str) -> list[tuple[str, str | None]]:
    """Split a path into (name, call-args or None) and ("[]", index) steps."""
    steps, pos = [], 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or m.end() == pos:
            raise _unprocessable(f"FHIRPath Patch path {path[:120]!r} is not supported by this server")
        if m.group(3) is not None:
            steps.append(("[]", m.group(3)))
        else:
            steps.append((m.group(1), m.group(2)[1:-1] if m.group(2) else None))
        pos = m.end()
    return steps


def locate(resource: dict, path: str) -> list[Slot]:
    """Every place ``path`` names in ``resource`` (a root path names the resource itself)."""
    steps = _steps(path)
    if not steps or steps[0][0] != resource.get("resourceType") or steps[0][1] is not None:
        raise _unprocessable(f"FHIRPath Patch path {path[:120]!r} must start with {resource.get('resourceType')}")
    root = Slot({"": resource}, "", None, resource["resourceType"])
    current = [root]
    for name, arg in steps[1:]:
        if name == "[]":
            i = int(arg)
            current = [current[i]] if i < len(current) else []
        elif arg is None:
            nxt = []
            for slot in current:
                obj = slot.value
                if not isinstance(obj, dict) or name not in obj:
                    continue
                def_path = f"{slot.def_path}.{name}"
                if isinstance(obj[name], list):
                    nxt.extend(Slot(obj, name, i, def_path) for i in range(len(obj[name])))
                else:
                    nxt.append(Slot(obj, name, None, def_path))
            current = nxt
        elif name == "where":
            current = [s for s in current if _truthy(s.value, arg, path)]
        elif name == "first" and arg == "":
            current = current[:1]
        elif name == "last" and arg == "":
            current = current[-1:]
        else:
            raise _unprocessable(f"FHIRPath Patch path {path[:120]!r}: {name}() is not supported by this server")
    return current


def _truthy(value, criteria: str, path: str) -> bool:
    import fhirpathpy

    try:
        result = fhirpathpy.evaluate(value, criteria)
    except Exception as exc:  # noqa: BLE001 - a bad expression is the client's error
        raise _unprocessable(f"FHIRPath Patch path {path[:120]!r}: cannot evaluate {criteria[:80]!r}: {exc}") from None
    return result == [True]


def _one(slots: list[Slot], op: Operation) -> Slot:
    if len(slots) != 1:
        raise _unprocessable(f"No content found at {op.path} when {op.type.removesuffix('e')}ing" if not slots else
                             f"{op.path} names {len(slots)} elements; a {op.type} needs exactly one")
    return slots[0]


def apply_fhirpath_patch(resource: dict, operations: list[Operation]) -> dict:
    """Apply FHIRPath Patch operations in order (on a copy)."""
    from hutong.fhir.validation import element_is_array

    doc = copy.deepcopy(resource)
    for op in operations:
        slots = locate(doc, op.path)
        if op.type == "add":
            target = _one(slots, op).value
            if not isinstance(target, dict):
                raise _unprocessable(f"{op.path} is not an element that can hold {op.name}")
            if isinstance(target.get(op.name), list):
                target[op.name].append(op.value)
            elif op.name in target:
                raise _unprocessable(f"{op.path}.{op.name} already has a value (use replace)")
            else:
                repeats = element_is_array(f"{_def_path(slots[0])}.{op.name}")
                target[op.name] = [op.value] if repeats else op.value
        elif op.type == "insert":
            lst = _list_at(slots, op)
            if op.index is None or not 0 <= op.index <= len(lst):
                raise _unprocessable(f"insert index {op.index} is outside {op.path} (0..{len(lst)})")
            lst.insert(op.index, op.value)
        elif op.type == "delete":
            if not slots:
                continue  # deleting what is not there changes nothing
            slot = _one(slots, op)
            if slot.index is None:
                del slot.container[slot.key]
            else:
                del slot.container[slot.key][slot.index]
                if not slot.container[slot.key]:
                    del slot.container[slot.key]
            _prune(doc)  # FHIR JSON has no empty objects: a container left empty goes too
        elif op.type == "replace":
            slot = _one(slots, op)
            if slot.index is None:
                slot.container[slot.key] = op.value
            else:
                slot.container[slot.key][slot.index] = op.value
        elif op.type == "move":
            lst = _list_at(slots, op)
            if not (0 <= (op.source or 0) < len(lst)) or not (0 <= (op.destination or 0) < len(lst)):
                raise _unprocessable(f"move {op.source} -> {op.destination} is outside {op.path} (0..{len(lst) - 1})")
            lst.insert(op.destination, lst.pop(op.source))
    return doc


def _prune(node) -> bool:
    """Remove empty objects and arrays below ``node``; True when ``node`` itself is now empty."""
    if isinstance(node, dict):
        for key in [k for k, v in node.items() if isinstance(v, (dict, list)) and _prune(v)]:
            del node[key]
        return not node
    if isinstance(node, list):
        node[:] = [v for v in node if not (isinstance(v, (dict, list)) and _prune(v))]
        return not node
    return False


def _def_path(slot: Slot) -> str:
    return slot.def_path


def _list_at(slots: list[Slot], op: Operation) -> list:
    """The list a path names (all its items, or an empty list element)."""
    if not slots:
        raise _unprocessable(f"No content found at {op.path}")
    first = slots[0]
    if first.index is None or any(s.container is not first.container or s.key != first.key for s in slots):
        raise _unprocessable(f"{op.path} is not a list")
    return first.container[first.key]
