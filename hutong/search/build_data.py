"""Developer tool: compile the official R4 definitions into ``hutong/search/data/search_params.json.gz``.

Run ``python -m hutong.search.build_data [path/to/fhir_r4_definitions]``. It reads the shared definitions
(``search-parameters.json``, ``profiles-resources.json.gz``, ``profiles-types.json.gz``) and writes a compact
file the package reads at run time (the package never reads the shared folder itself).

What it compiles:
- every SearchParameter, per resource type: code, type, URL, documentation, targets and the FHIRPath
  expression turned into typed path *branches* (``steps`` + possible leaf types), using the
  StructureDefinitions to expand choice elements (``value[x]``) and to know each leaf's data type;
- composite parameters with their components (fixing the swapped components of the official
  ``DocumentReference-relationship``);
- the five CompartmentDefinitions; per type the summary elements and the mandatory top-level elements.
Expressions outside the compiled subset are recorded as unsupported with the reason.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "search_params.json.gz"
DEFAULT_SRC = HERE.parents[1] / ".." / "shared" / "data" / "fhir_r4_definitions"

#: Parameters whose values come from the resource table or the raw content, not from an index table.
TABLE_PARAMS = {"_id", "_lastUpdated", "_text", "_content"}


class Unsupported(Exception):
    pass


def split_top(expr: str, sep: str = "|") -> list[str]:
    """Split ``expr`` on ``sep`` outside parentheses and quotes."""
    out, depth, quote, cur = [], 0, False, []
    for ch in expr:
        if ch == "'" and depth >= 0:
            quote = not quote
        if not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == sep and depth == 0:
                out.append("".join(cur).strip())
                cur = []
                continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return [p for p in out if p]


def normalise(branch: str) -> str:
    """Rewrite ``(P as T)rest`` into ``P.as(T)rest`` and strip redundant outer parentheses."""
    branch = branch.strip()
    m = re.fullmatch(r"\((.*) as ([A-Za-z]+)\)(.*)", branch)
    if m:
        return normalise(m.group(1)) + f".as({m.group(2)})" + m.group(3)
    if branch.startswith("(") and branch.endswith(")") and split_top(branch[1:-1], "|") == [branch[1:-1].strip()]:
        return normalise(branch[1:-1])
    return branch


def tokens(branch: str) -> list[str]:
    """Split a path on dots outside parentheses."""
    return split_top(branch, ".")


class Model:
    """Element types from the StructureDefinitions."""

    def __init__(self, src: Path):
        self.elements: dict[str, dict] = {}
        self.kinds: dict[str, str] = {}
        self.resource_types: list[str] = []
        self.summary: dict[str, list[str]] = {}
        self.mandatory: dict[str, list[str]] = {}
        self.compartments: dict[str, dict[str, list[str]]] = {}
        for name in ("profiles-types.json.gz", "profiles-resources.json.gz"):
            bundle = json.load(gzip.open(src / name))
            for entry in bundle["entry"]:
                res = entry["resource"]
                if res["resourceType"] == "CompartmentDefinition":
                    self.compartments[res["code"]] = {
                        r["code"]: r["param"] for r in res.get("resource", []) if r.get("param")
                    }
                if res["resourceType"] != "StructureDefinition" or res.get("derivation") == "constraint":
                    continue
                self.kinds[res["type"]] = res["kind"]
                if res["kind"] == "resource" and not res.get("abstract"):
                    self.resource_types.append(res["type"])
                summ, mand = [], []
                for el in res["snapshot"]["element"]:
                    self.elements[el["path"]] = el
                    parts = el["path"].split(".")
                    if len(parts) == 2 and res["kind"] == "resource":
                        if el.get("isSummary"):
                            summ.append(parts[1])
                        if el.get("min", 0) >= 1:
                            mand.append(parts[1])
                if res["kind"] == "resource":
                    self.summary[res["type"]] = summ
                    self.mandatory[res["type"]] = mand

    def element(self, path: str) -> tuple[str, dict] | None:
        if path in self.elements:
            return path, self.elements[path]
        if path + "[x]" in self.elements:
            return path + "[x]", self.elements[path + "[x]"]
        return None

    def step(self, ctx: tuple[str, str], name: str) -> tuple[list[tuple[str, str]], bool, str]:
        """Follow field ``name`` from context (sd type, path). Returns next contexts, choice flag, json name."""
        _sd, path = ctx
        found = self.element(f"{path}.{name}")
        if found is None:
            raise Unsupported(f"unknown element {path}.{name}")
        epath, el = found
        if el.get("contentReference"):
            ref = el["contentReference"].lstrip("#")
            return [(ref.split(".")[0], ref)], False, name
        types = [t["code"] for t in el.get("type", [])]
        choice = epath.endswith("[x]")
        out = []
        for t in types:
            if t.startswith("http://hl7.org/fhirpath/System."):
                t = "string"
            if t in ("BackboneElement", "Element") and not choice:
                out.append((path.split(".")[0], epath))
            else:
                out.append((t, t))
        return out, choice, name


def compile_branch(model: Model, branch: str, root: str | None) -> dict:
    """Compile one ``|`` branch into ``{"steps": [...], "leaf": [types]}``."""
    toks = tokens(normalise(branch))
    steps: list[list] = []
    if root is None:  # expression starts with a resource type name (or Resource/DomainResource)
        first = toks.pop(0)
        ctx = [(first, first)]
    else:  # component expression relative to an element context
        ctx = root
        if toks and toks[0] == "%resource":
            raise Unsupported("component refers to %resource")
    i = 0
    while i < len(toks):
        tok = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        m_idx = re.fullmatch(r"([A-Za-z]+)\[(\d+)\]", tok)
        if re.fullmatch(r"[A-Za-z]+", tok) or m_idx:
            name = m_idx.group(1) if m_idx else tok
            nctx, choice, _ = [], False, name
            for c in ctx:
                n, ch, _ = model.step(c, name)
                nctx += n
                choice = choice or ch
            m_as = re.fullmatch(r"(?:as|ofType)\(([A-Za-z]+)\)", nxt)
            if choice:
                allowed = [t for t, _ in nctx]
                if m_as:
                    want = m_as.group(1)
                    allowed = [t for t in allowed if t.lower() == want.lower()]
                    nctx = [c for c in nctx if c[0].lower() == want.lower()]
                    if not allowed:
                        raise Unsupported(f"{name} has no type {want}")
                    i += 1
                steps.append(["c", name, [t[0].upper() + t[1:] for t in allowed]])
            else:
                if m_as:
                    want = m_as.group(1)
                    nctx = [c for c in nctx if c[0].lower() == want.lower()]
                    if not nctx:
                        raise Unsupported(f"{name} is never {want}")
                    i += 1
                steps.append(["f", name])
            if m_idx:
                steps.append(["i", int(m_idx.group(2))])
            ctx = nctx
        elif m := re.fullmatch(r"where\(resolve\(\) is ([A-Za-z]+)\)", tok):
            steps.append(["r", m.group(1)])
        elif m := re.fullmatch(r"where\(([A-Za-z]+) ?= ?'([^']*)'\)", tok):
            steps.append(["w", m.group(1), m.group(2)])
        elif m := re.fullmatch(r"(?:as|ofType)\(([A-Za-z]+)\)", tok):
            want = m.group(1)
            ctx = [c for c in ctx if c[0].lower() == want.lower()]
            if not ctx:
                raise Unsupported(f"type filter {want} never matches")
        else:
            raise Unsupported(f"FHIRPath form not compiled: {tok}")
        i += 1
    leaf = sorted({c[0] for c in ctx})
    return {"steps": steps, "leaf": leaf, "ctx": ctx}


def main(src: Path = DEFAULT_SRC) -> None:
    model = Model(src)
    bundle = json.load(open(src / "search-parameters.json"))
    sps = [e["resource"] for e in bundle["entry"]]
    by_url = {s["url"]: s for s in sps}
    params: dict[str, dict[str, dict]] = {t: {} for t in model.resource_types}
    common: dict[str, dict] = {}
    unsupported: list[dict] = []

    for sp in sps:
        code = sp["code"]
        bases = sp["base"]
        info = {
            "code": code,
            "type": sp["type"],
            "url": sp["url"],
            "doc": (sp.get("description") or "").strip()[:400],
            "targets": sp.get("target", []),
        }
        is_common = bases in (["Resource"], ["DomainResource"])
        if code in TABLE_PARAMS:
            entry = dict(info, branches=[], table=True)
            common[code] = entry
            continue
        expr = sp.get("expression")
        if not expr:
            unsupported.append({"code": code, "base": bases, "reason": "no FHIRPath expression; named queries (_query) are not defined on this server"})
            continue
        if code == "deceased" and "exists()" in expr:  # Patient-deceased: boolean-or-date choice
            branch = {"steps": [["c", "deceased", ["Boolean", "DateTime"]]], "leaf": ["boolean", "dateTime"]}
            params["Patient"][code] = dict(info, branches=[branch], special="deceased", expr=expr)
            continue
        per_type: dict[str, list[str]] = {}
        for br in split_top(expr):
            first = tokens(normalise(br))[0]
            if first not in model.kinds and first not in ("Resource", "DomainResource") and len(bases) == 1:
                # e.g. InsurancePlan-name is "name | alias": a path relative to its single base
                br, first = f"{bases[0]}.{br}", bases[0]
            per_type.setdefault(first, []).append(br)
        targets_types = ["Resource"] if is_common else bases
        for rtype in targets_types:
            branches = per_type.get(rtype, [])
            try:
                if not branches:
                    raise Unsupported("no expression branch for this type")
                compiled = [compile_branch(model, b, None) for b in branches]
                entry = dict(info, expr=" | ".join(branches))
                entry["branches"] = [{"steps": c["steps"], "leaf": c["leaf"]} for c in compiled]
                if sp["type"] == "composite" or sp["type"] == "special":
                    comps = []
                    ctx = [cc for c in compiled for cc in c["ctx"]]
                    components = sp.get("component", [])
                    if sp["id"] == "DocumentReference-relationship":
                        # Official defect: expressions of the two components are swapped (see SOURCE.md).
                        components = [
                            {"definition": components[0]["definition"], "expression": "target"},
                            {"definition": components[1]["definition"], "expression": "code"},
                        ]
                    if sp["type"] == "special":  # Location.near: position latitude/longitude
                        comps = [{"type": "number", "branches": [{"steps": [["f", "latitude"]], "leaf": ["decimal"]}]},
                                 {"type": "number", "branches": [{"steps": [["f", "longitude"]], "leaf": ["decimal"]}]}]
                    for comp in components:
                        csp = by_url[comp["definition"]]
                        cexpr = comp["expression"]
                        cbranches = []
                        for cb in split_top(cexpr):
                            if cb.startswith("%resource."):
                                c = compile_branch(model, rtype + cb[len("%resource"):], None)
                                c["from_root"] = True
                            else:
                                c = compile_branch(model, cb, ctx)
                            cbranches.append({k: v for k, v in c.items() if k != "ctx"})
                        comps.append({"code": csp["code"], "type": csp["type"], "branches": cbranches})
                    entry["components"] = comps
                if is_common:
                    common[code] = entry
                else:
                    params[rtype][code] = entry
            except Unsupported as exc:
                unsupported.append({"code": code, "base": [rtype], "reason": str(exc), "expr": expr})
    out = {
        "source": "HL7 FHIR R4 4.0.1 (hl7.fhir.r4.core 4.0.1, CC0-1.0)",
        "resource_types": sorted(model.resource_types),
        "params": {t: sorted(p.values(), key=lambda x: x["code"]) for t, p in params.items()},
        "common": sorted(common.values(), key=lambda x: x["code"]),
        "unsupported": unsupported,
        "compartments": model.compartments,
        "summary": model.summary,
        "mandatory": model.mandatory,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(OUT, "wb", mtime=0) as fh:
        fh.write(json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode())
    n = sum(len(v) for v in params.values())
    print(f"wrote {OUT}: {n} type params, {len(common)} common, {len(unsupported)} unsupported")
    for u in unsupported:
        print("  unsupported:", u["code"], u["base"], u["reason"])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SRC)
