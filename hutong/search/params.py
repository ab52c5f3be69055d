"""The search parameter registry compiled from the official R4 definitions (``data/search_params.json.gz``).

Each parameter's FHIRPath expression was compiled by ``build_data`` into typed path branches; here every
branch becomes a small Python closure (no FHIRPath interpreter on the write path).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "search_params.json.gz"

#: Parameters that control the result rather than filter it.
RESULT_PARAMS = {
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained",
    "_containedType", "_format", "_pretty", "_cursor", "_type", "_since",
}

Getter = Callable[[Any], list]


@dataclass
class Component:
    code: str
    type: str
    getters: list[tuple[Getter, frozenset, bool]]  # (getter, leaf types, evaluate from the resource root)


@dataclass
class Param:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    url: str
    doc: str
    targets: list[str]
    expr: str = ""
    getters: list[tuple[Getter, frozenset]] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    table_only: bool = False  # _id, _lastUpdated, _content: answered from the resource table
    special: str = ""
    #: Index rows are stored under these codes (the parameter's own, or those of the parameters it aliases).
    store_codes: list[str] = field(default_factory=list)
    #: For ``X.where(resolve() is T)`` aliases of reference parameter ``X``: the target type to require.
    store_type: str | None = None
    #: Signature of the compiled branches, for alias detection.
    sig: frozenset = frozenset()


def _ref_type(ref: Any) -> str | None:
    if isinstance(ref, dict):
        r = ref.get("reference")
        if isinstance(r, str):
            if "/_history/" in r:
                r = r.split("/_history/")[0]
            parts = r.rsplit("/", 2)
            if len(parts) >= 2:
                return parts[-2]
        return ref.get("type")
    return None


def compile_steps(steps: list) -> Getter:
    """Turn compiled path steps into a function ``node -> [(value, choice_type | None)]``."""
    funcs = []
    for st in steps:
        kind = st[0]
        if kind == "f":
            name = st[1]

            def f(items, name=name):
                out = []
                for v, _t in items:
                    if isinstance(v, dict):
                        x = v.get(name)
                        if x is None:
                            continue
                        if isinstance(x, list):
                            out.extend((y, None) for y in x)
                        else:
                            out.append((x, None))
                return out
        elif kind == "c":
            names = [(st[1] + t, t) for t in dict.fromkeys(st[2])]

            def f(items, names=names):
                out = []
                for v, _t in items:
                    if isinstance(v, dict):
                        for key, t in names:
                            x = v.get(key)
                            if x is not None:
                                if isinstance(x, list):
                                    out.extend((y, t) for y in x)
                                else:
                                    out.append((x, t))
                return out
        elif kind == "i":
            idx = st[1]

            def f(items, idx=idx):
                return items[idx : idx + 1]
        elif kind == "r":
            want = st[1]

            def f(items, want=want):
                return [(v, t) for v, t in items if _ref_type(v) == want]
        elif kind == "w":
            fld, val = st[1], st[2]

            def f(items, fld=fld, val=val):
                return [(v, t) for v, t in items if isinstance(v, dict) and v.get(fld) == val]
        else:  # pragma: no cover - build_data only emits the kinds above
            raise ValueError(kind)
        funcs.append(f)

    if len(funcs) == 1:
        only = funcs[0]

        def run1(node):
            return only([(node, None)])

        return run1

    def run(node):
        items = [(node, None)]
        for f in funcs:
            if not items:
                return items
            items = f(items)
        return items

    return run


class Registry:
    """All parameters per resource type plus compartments and summary element lists."""

    def __init__(self, path: Path = DATA):
        raw = json.loads(gzip.open(path).read())
        self.resource_types: list[str] = raw["resource_types"]
        self.compartments: dict[str, dict[str, list[str]]] = raw["compartments"]
        self.summary: dict[str, list[str]] = raw["summary"]
        self.mandatory: dict[str, list[str]] = raw["mandatory"]
        self.unsupported: list[dict] = raw["unsupported"]
        common = [self._make(p) for p in raw["common"]]
        self.common: dict[str, Param] = {p.code: p for p in common}
        self.by_type: dict[str, dict[str, Param]] = {}
        for rtype in self.resource_types:
            d = dict(self.common)
            if rtype in ("Binary", "Bundle", "Parameters"):  # not DomainResources: no narrative
                d.pop("_text", None)
            for p in raw["params"].get(rtype, []):
                d[p["code"]] = self._make(p)
            self.by_type[rtype] = d
        for d in self.by_type.values():
            self._aliases(d)
        #: Parameters with their own index rows, per type (not table-only, not an alias of others).
        self.indexed: dict[str, list[Param]] = {
            t: [p for p in d.values() if not p.table_only and p.store_codes == [p.code]] for t, d in self.by_type.items()
        }

    @staticmethod
    def _aliases(params: dict[str, Param]) -> None:
        """Store each value once: ``patient`` = ``subject`` rows whose target is a Patient; ``combo-code`` =
        ``code`` + ``component-code`` rows. An alias is only taken onto parameters with fewer branches (or the
        same branches and an earlier code), so there are no cycles."""
        cands = [p for p in params.values() if not p.table_only and not p.special and p.sig]
        for p in cands:
            p.store_codes = [p.code]
        for p in params.values():
            if not p.store_codes:
                p.store_codes = [p.code]

        def before(q: Param, p: Param) -> bool:
            return len(q.sig) < len(p.sig) or (q.sig == p.sig and q.code < p.code)

        for p in cands:
            if p.type == "reference":
                ends = {br[-1] for br in p.sig}
                if len(ends) == 1:
                    end = next(iter(ends))
                    if end.startswith('["r",'):
                        rtype = end.split('"')[3]
                        stripped = frozenset(br[:-1] for br in p.sig)
                        for q in cands:
                            if q is not p and q.type == "reference" and q.sig == stripped:
                                p.store_codes, p.store_type = [q.code], rtype
                                break
                        if p.store_type:
                            continue
            cover = [q for q in cands if q is not p and q.type == p.type and q.sig <= p.sig and before(q, p)]
            if cover and frozenset().union(*[q.sig for q in cover]) == p.sig:
                p.store_codes = sorted({q.code for q in cover})
        # resolve chains (an alias onto an alias) to the parameters that really hold rows
        for _ in range(4):
            for p in cands:
                if p.store_type is None and p.store_codes != [p.code]:
                    codes = []
                    for c in p.store_codes:
                        q = params[c]
                        codes.extend(q.store_codes if q.store_type is None else [c])
                    p.store_codes = sorted(set(codes))

    @staticmethod
    def _make(p: dict) -> Param:
        param = Param(
            code=p["code"], type=p["type"], url=p["url"], doc=p.get("doc", ""), targets=p.get("targets", []),
            expr=p.get("expr", ""), table_only=bool(p.get("table")), special=p.get("special", ""),
        )
        if p["code"] == "_text":
            # Narrative text, indexed as a string row (the definition has no expression).
            param.table_only = False
            param.getters = [(compile_steps([["f", "text"], ["f", "div"]]), frozenset({"xhtml"}))]
        sig = []
        for br in p.get("branches", []):
            param.getters.append((compile_steps(br["steps"]), frozenset(br["leaf"])))
            sig.append(tuple(json.dumps(s) for s in br["steps"]))
        comps_sig = json.dumps([[c["type"], [b["steps"] for b in c["branches"]]] for c in p.get("components", [])])
        param.sig = frozenset((*b, comps_sig) if p.get("components") else b for b in sig)
        for comp in p.get("components", []):
            getters = []
            for br in comp["branches"]:
                steps = br["steps"]
                from_root = bool(br.get("from_root"))
                getters.append((compile_steps(steps), frozenset(br["leaf"]), from_root))
            param.components.append(Component(comp.get("code", ""), comp["type"], getters))
        return param

    def get(self, res_type: str, code: str) -> Param | None:
        d = self.by_type.get(res_type)
        return d.get(code) if d else None

    def store_codes(self, res_type: str, code: str) -> list[str]:
        """The ``param`` values under which ``code``'s rows are stored for ``res_type``."""
        p = self.get(res_type, code)
        return p.store_codes if p is not None and p.store_codes else [code]

    def is_type(self, name: str) -> bool:
        return name in self.by_type


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry (loaded once, ~50 ms)."""
    return Registry()
