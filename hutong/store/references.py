"""References inside resources: finding them, checking their form, and the ones the store must resolve."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from hutong.core.errors import bad_request
from hutong.core.ids import ID_PATTERN

#: A conditional reference (``Patient?identifier=…``), resolved by search in bundles.
CONDITIONAL_REF = re.compile(r"^[A-Z][A-Za-z]+\?")
#: A relative reference ``Type/id`` or ``Type/id/_history/vid``.
REF_RE = re.compile(rf"^([A-Z][A-Za-z]+)/({ID_PATTERN})(?:/_history/({ID_PATTERN}))?$")


def reference_objects(resource: dict) -> list[dict]:
    """Every ``Reference``-like object (a dict with a string ``reference``) in ``resource``,
    contained resources included. Iterative and path-free because it runs several times per write; see
    ``iter_references`` when a path is needed for a message."""
    found: list[dict] = []
    stack: list = [resource]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            ref = node.get("reference")
            if ref is not None and type(ref) is str:
                found.append(node)
            for value in node.values():
                t = type(value)
                if t is dict or t is list:
                    push(value)
        else:
            for item in node:
                t = type(item)
                if t is dict or t is list:
                    push(item)
    return found


def iter_references(node, path: str = "") -> Iterator[tuple[dict, str]]:
    """Every ``Reference`` object inside ``node`` with its path (slower; for error messages)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield node, path
        for key, value in node.items():
            if key == "reference":
                continue
            if isinstance(value, (dict, list)):
                yield from iter_references(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                yield from iter_references(item, f"{path}[{i}]")


def reference_path(resource: dict, ref_obj: dict) -> str:
    """The FHIRPath-like path of ``ref_obj`` inside ``resource`` (for error messages)."""
    for obj, path in iter_references(resource):
        if obj is ref_obj:
            return path
    return ""


def relative_references(resource: dict, res_type: str, *, known_type: Callable[[str], bool], base_url: str = "",
                    references: list[dict] | None = None) -> dict[tuple[str, str], dict]:
    """Check the form of every reference in ``resource``; return the relative ones by (type, id)
    (the store checks that those exist). ``base_url`` references are relative ones written in full."""
    contained_ids = {
        c.get("id") for c in resource.get("contained") or () if isinstance(c, dict)
    }
    wanted: dict[tuple[str, str], dict] = {}
    for ref_obj in reference_objects(resource) if references is None else references:
        ref = ref_obj["reference"]
        if ref.startswith("#"):
            if ref[1:] and ref[1:] not in contained_ids:
                raise bad_request(f"reference {ref!r} names no contained resource",
                                  f"{res_type}.{reference_path(resource, ref_obj)}")
            continue
        if CONDITIONAL_REF.match(ref):
            raise bad_request(f"conditional reference {ref[:120]!r} is only allowed in a transaction or batch",
                              f"{res_type}.{reference_path(resource, ref_obj)}")
        if "://" in ref or ref.startswith("urn:"):
            if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
                continue
            base = base_url
            if base and ref.startswith(base + "/"):
                ref = ref[len(base) + 1 :]
            else:
                continue  # an external reference: not ours to resolve
        m = REF_RE.match(ref)
        if not m:
            raise bad_request(f"invalid reference {ref[:120]!r}", f"{res_type}.{reference_path(resource, ref_obj)}")
        rtype, rid = m.group(1), m.group(2)
        if not known_type(rtype):
            raise bad_request(f"reference {ref[:120]!r} names an unknown resource type",
                              f"{res_type}.{reference_path(resource, ref_obj)}")
        wanted.setdefault((rtype, rid), ref_obj)
    return wanted
