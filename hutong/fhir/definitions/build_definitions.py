"""Compile the official FHIR R4 (4.0.1) StructureDefinitions into ``r4_elements.json.gz``.

Run once by a developer when the definitions change (never at run time)::

    .venv/bin/python hutong/fhir/definitions/build_definitions.py [SOURCE_DIR]

``SOURCE_DIR`` defaults to ``../shared/data/fhir_r4_definitions`` next to the repository and must hold
``profiles-resources.json.gz``, ``profiles-types.json.gz`` and ``valuesets.json.gz`` (HL7, CC0-1.0).

Output layout (kept small: only what the structural validator needs)::

    {
      "fhirVersion": "4.0.1",
      "primitives": ["base64Binary", ...],          # primitive types (JSON leaf values)
      "resources": ["Account", ...],               # the 146 concrete resource types
      "types": {"Patient": ELEMS, "HumanName": ELEMS, ...},   # resources and complex data types
      "valueSets": {"http://hl7.org/fhir/ValueSet/administrative-gender": ["male", ...], ...}
    }
    ELEMS = {name: [types, min, max, children, binding]}

``name`` is the element name as in the definition (``value[x]`` for a choice); ``types`` the list of type
codes (``BackboneElement``/``Element`` with inline children, ``Resource`` for a nested resource); ``max``
is ``"*"`` or a number as a string; ``children`` is a nested ELEMS for backbone elements, a
``"#Path.to.element"`` string for a ``contentReference``, or ``null``; ``binding`` is the canonical of a
*required* value set that could be expanded offline (only for ``code`` elements), else ``null``.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / ".." / "shared" / "data" / "fhir_r4_definitions"
OUTPUT = HERE / "r4_elements.json.gz"

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."

# Where the R4 snapshot types an element as a FHIRPath System type, the spec's own tables name a FHIR
# type. ``Resource.id`` is rendered "string" by the fhir-type extension, but the spec (and every
# server) treat it as an ``id``; we follow the spec table so bad ids are caught.
ID_PATH_SUFFIX = ".id"


def _load_bundle(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [e["resource"] for e in json.load(fh)["entry"]]


def _type_codes(el: dict, is_resource_id: bool) -> list[str]:
    codes: list[str] = []
    for ty in el.get("type", []):
        code = ty["code"]
        if code.startswith(SYSTEM_PREFIX):
            mapped = next(
                (x["valueUrl"] for x in ty.get("extension", []) if x["url"] == FHIR_TYPE_EXT), None
            )
            code = mapped or code[len(SYSTEM_PREFIX) :].lower()
            if is_resource_id:
                code = "id"
        if code not in codes:
            codes.append(code)
    return codes


def _compile_sd(sd: dict, value_sets: dict[str, list[str]], used_vs: set[str]) -> dict:
    """Turn one snapshot into a nested ELEMS tree rooted at the type."""
    root_path = sd["type"]
    is_resource = sd["kind"] == "resource"
    root: dict = {}
    # path -> ELEMS dict holding that path's children
    holders: dict[str, dict] = {root_path: root}
    for el in sd["snapshot"]["element"]:
        path = el["path"]
        if path == root_path:
            continue
        parent, _, name = path.rpartition(".")
        holder = holders.get(parent)
        if holder is None:  # child of an element we skipped (cannot happen in the core spec)
            raise SystemExit(f"orphan element {path}")
        # primitive types: only id/extension matter; ".value" is the JSON value itself
        if sd["kind"] == "primitive-type" and name == "value":
            continue
        types = _type_codes(el, is_resource and path == root_path + ID_PATH_SUFFIX)
        children = None
        if "contentReference" in el:
            children = el["contentReference"]
            types = ["BackboneElement"]
        elif types in (["BackboneElement"], ["Element"]) and path.count(".") >= 1:
            children = {}
            holders[path] = children
        binding = None
        b = el.get("binding")
        if b and b.get("strength") == "required" and types == ["code"] and b.get("valueSet"):
            url = b["valueSet"].split("|", 1)[0]
            if url in value_sets:
                binding = url
                used_vs.add(url)
        holder[name] = [types, el["min"], el["max"], children, binding]
    return root


def _expand_value_sets(entries: list[dict]) -> dict[str, list[str]]:
    """Expand the value sets that are plain enumerations of FHIR-defined code systems.

    Anything needing a filter, an import, or an external code system (UCUM, BCP-47, MIME types…) is
    left out: the validator then simply does not check that binding.
    """
    systems: dict[str, list[str]] = {}

    def walk(concepts, out):
        for c in concepts:
            out.append(c["code"])
            walk(c.get("concept", []), out)

    for r in entries:
        if r["resourceType"] == "CodeSystem" and r.get("content") == "complete" and r.get("concept"):
            codes: list[str] = []
            walk(r["concept"], codes)
            systems[r["url"]] = codes
    out: dict[str, list[str]] = {}
    for r in entries:
        if r["resourceType"] != "ValueSet":
            continue
        compose = r.get("compose")
        if not compose or compose.get("exclude"):
            continue
        codes: list[str] = []
        ok = True
        for inc in compose.get("include", []):
            if inc.get("filter") or inc.get("valueSet") or "system" not in inc:
                ok = False
                break
            if inc.get("concept"):
                codes.extend(c["code"] for c in inc["concept"])
            elif inc["system"] in systems:
                codes.extend(systems[inc["system"]])
            else:
                ok = False
                break
        if ok and codes:
            out[r["url"]] = sorted(set(codes))
    return out


def build(source: Path) -> dict:
    resources = _load_bundle(source / "profiles-resources.json.gz")
    types = _load_bundle(source / "profiles-types.json.gz")
    value_sets = _expand_value_sets(_load_bundle(source / "valuesets.json.gz"))
    used_vs: set[str] = set()
    out_types: dict[str, dict] = {}
    primitives: list[str] = []
    concrete: list[str] = []
    for sd in types + resources:
        if sd["resourceType"] != "StructureDefinition" or sd.get("derivation") != "specialization":
            continue  # skips constraint profiles (SimpleQuantity, MoneyQuantity) and base Element/Resource
        if sd["kind"] == "logical":
            continue
        if sd["kind"] == "primitive-type":
            primitives.append(sd["type"])
        if sd["kind"] == "resource" and not sd.get("abstract"):
            concrete.append(sd["type"])
        out_types[sd["type"]] = _compile_sd(sd, value_sets, used_vs)
    # The abstract bases carry the structure of Element (used for `_x` primitive siblings) and
    # Extension; keep Element too, it is referenced by name.
    for sd in types:
        if sd["resourceType"] == "StructureDefinition" and sd["type"] in ("Element", "BackboneElement"):
            out_types[sd["type"]] = _compile_sd(sd, value_sets, used_vs)
    # xhtml is a primitive in FHIR JSON (Narrative.div is a string)
    if "xhtml" not in primitives:
        primitives.append("xhtml")
    return {
        "fhirVersion": "4.0.1",
        "primitives": sorted(primitives),
        "resources": sorted(concrete),
        "types": out_types,
        "valueSets": {u: value_sets[u] for u in sorted(used_vs)},
    }


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    data = build(source.resolve())
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    # mtime=0 keeps the output byte-for-byte reproducible
    with open(OUTPUT, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    print(
        f"wrote {OUTPUT.name}: {len(data['resources'])} resources, {len(data['types'])} types, "
        f"{len(data['valueSets'])} value sets, {len(raw):,} bytes raw, {OUTPUT.stat().st_size:,} gz"
    )


if __name__ == "__main__":
    main(sys.argv)
