"""SQL on FHIR v2 ViewDefinitions: check one, then turn resources into rows.

``View(definition)`` checks the definition (resource type, column names, FHIRPath that parses,
``unionAll`` branches with the same columns, constants with a value) and raises
``ViewError`` with the JSON path of the fault. ``view.rows(resource)`` yields one dict per row,
columns in the order the specification gives (a select's ``column``, then its nested
``select``s, then its ``unionAll``). ``forEach``, ``forEachOrNull``, ``repeat``, ``where``,
``constant`` and ``%rowIndex`` follow the v2 specification; the FHIRPath is fhirpathpy's with the
view functions added (``hutong.stats.fhirpath``). The same ``View`` drives every runner: the
in-process ``$viewdefinition-run``, the DuckDB tables and the official test suite.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fhirpathpy.engine.nodes import ResourceNode

from hutong.stats.fhirpath import Expression, FhirPathError

COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

# FHIR types a column may declare, and the SQL type each becomes in a table (DuckDB/Parquet)
SQL_TYPES = {
    "boolean": "BOOLEAN", "integer": "BIGINT", "unsignedInt": "BIGINT", "positiveInt": "BIGINT",
    "integer64": "BIGINT", "decimal": "DOUBLE", "date": "VARCHAR", "dateTime": "VARCHAR",
    "instant": "VARCHAR", "time": "VARCHAR",
}

# constant value[x] → the FHIR type the value has when a path uses it
CONSTANT_TYPES = (
    "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant",
    "Integer", "Integer64", "Oid", "String", "PositiveInt", "Time", "UnsignedInt", "Uri", "Url", "Uuid",
)


class ViewError(ValueError):
    """A ViewDefinition that is not valid, or a resource the view cannot turn into rows."""

    def __init__(self, message: str, where: str = "ViewDefinition"):
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass
class ViewColumn:
    """One output column."""

    name: str
    path: Expression
    collection: bool
    type: str | None
    description: str | None = None

    def value(self, focus, variables: dict, where: str):
        values = _eval(self.path, focus, variables, where)
        if self.collection:
            return values
        if len(values) > 1:
            raise ViewError(f"column {self.name!r} gives {len(values)} values; set collection true to keep them",
                            where)
        return values[0] if values else None


@dataclass
class Select:
    """A ``select`` element: columns, nested selects, unionAll branches, and how it iterates."""

    columns: list[ViewColumn] = field(default_factory=list)
    selects: list[Select] = field(default_factory=list)
    union: list[Select] = field(default_factory=list)
    for_each: Expression | None = None
    or_null: bool = False
    repeat: list[Expression] | None = None
    where: str = "ViewDefinition"

    def names(self) -> list[str]:
        """The column names this select produces, in order."""
        out = [c.name for c in self.columns]
        for s in self.selects:
            out.extend(s.names())
        if self.union:
            out.extend(self.union[0].names())
        return out

    def rows(self, focus, row_index: int, constants: dict) -> list[dict]:
        if self.for_each is not None:
            items = _nodes(self.for_each, focus, {**constants, "rowIndex": row_index}, self.where)
        elif self.repeat is not None:
            items = []
            self._walk(focus, constants, row_index, items)
        else:
            items = None
        if items is not None:
            if not items:
                if not self.or_null:
                    return []
                # the one row of nulls; %rowIndex (and constants) still have their value there
                row = dict.fromkeys(self.names())
                row.update({c.name: c.value([], {**constants, "rowIndex": 0}, self.where) for c in self.columns})
                return [row]
            foci = list(enumerate(items))
        else:
            foci = [(row_index, focus)]
        out: list[dict] = []
        for index, item in foci:
            variables = {**constants, "rowIndex": index}
            base = {c.name: c.value(item, variables, self.where) for c in self.columns}
            parts: list[list[dict]] = [[base]]
            for s in self.selects:
                parts.append(s.rows(item, index, constants))
            if self.union:
                parts.append([r for u in self.union for r in u.rows(item, index, constants)])
            for combo in itertools.product(*parts):
                row: dict = {}
                for piece in combo:
                    row.update(piece)
                out.append(row)
        return out

    def _walk(self, node, constants: dict, row_index: int, into: list) -> None:
        for path in self.repeat or ():
            for child in _nodes(path, node, {**constants, "rowIndex": row_index}, self.where):
                into.append(child)
                self._walk(child, constants, row_index, into)


def _nodes(expr: Expression, focus, variables: dict, where: str) -> list:
    try:
        return expr.nodes(focus, variables)
    except FhirPathError as exc:
        raise ViewError(str(exc), where) from None


def _eval(expr: Expression, focus, variables: dict, where: str) -> list:
    try:
        return expr.values(focus, variables)
    except FhirPathError as exc:
        raise ViewError(str(exc), where) from None


class View:
    """A checked ViewDefinition, ready to turn resources into rows."""

    def __init__(self, definition: dict):
        if not isinstance(definition, dict):
            raise ViewError("a ViewDefinition is a JSON object")
        self.definition = definition
        resource = definition.get("resource")
        if not isinstance(resource, str) or not re.fullmatch(r"[A-Z][A-Za-z]{1,63}", resource):
            raise ViewError("resource (the FHIR resource type the view reads) is required", "ViewDefinition.resource")
        self.resource = resource
        self.name = definition.get("name") if isinstance(definition.get("name"), str) else None
        self.constants = self._constants(definition.get("constant", []))
        select = definition.get("select")
        if not isinstance(select, list) or not select:
            raise ViewError("select must be a non-empty list", "ViewDefinition.select")
        self.root = Select(selects=[self._select(s, f"ViewDefinition.select[{i}]") for i, s in enumerate(select)])
        self.where = []
        where = definition.get("where", [])
        if not isinstance(where, list):
            raise ViewError("where must be a list", "ViewDefinition.where")
        for i, w in enumerate(where):
            if not isinstance(w, dict) or "path" not in w:
                raise ViewError("each where needs a path", f"ViewDefinition.where[{i}]")
            self.where.append(self._expr(w["path"], f"ViewDefinition.where[{i}].path"))
        self.column_names = self.root.names()
        seen: set[str] = set()
        for n in self.column_names:
            if n in seen:
                raise ViewError(f"column name {n!r} is used twice", "ViewDefinition.select")
            seen.add(n)
        self.columns = self._all_columns(self.root)

    # -- checking -------------------------------------------------------------------------------

    @staticmethod
    def _expr(text, where: str) -> Expression:
        try:
            return Expression(text)
        except FhirPathError as exc:
            raise ViewError(str(exc), where) from None

    def _constants(self, items) -> dict:
        if not isinstance(items, list):
            raise ViewError("constant must be a list", "ViewDefinition.constant")
        out: dict = {}
        for i, c in enumerate(items):
            where = f"ViewDefinition.constant[{i}]"
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not COLUMN_NAME.match(c["name"]):
                raise ViewError("a constant needs a name (letters, digits, _)", where)
            values = [(k[5:], v) for k, v in c.items() if k.startswith("value") and k[5:] in CONSTANT_TYPES]
            if len(values) != 1:
                raise ViewError(f"constant {c['name']!r} needs exactly one value[x]", where)
            kind, value = values[0]
            fhir_type = kind[0].lower() + kind[1:]
            # dates and times need their type to compare as such; other values are plain
            out[c["name"]] = ResourceNode.create_node(value, fhir_type) \
                if fhir_type in ("date", "dateTime", "instant", "time") else value
        return out

    def _select(self, s, where: str) -> Select:
        if not isinstance(s, dict):
            raise ViewError("a select is a JSON object", where)
        sel = Select(where=where)
        if "forEach" in s and "forEachOrNull" in s:
            raise ViewError("forEach and forEachOrNull cannot both be given", where)
        for key in ("forEach", "forEachOrNull"):
            if key in s:
                if not isinstance(s[key], str):
                    raise ViewError(f"{key} must be a FHIRPath string", f"{where}.{key}")
                sel.for_each = self._expr(s[key], f"{where}.{key}")
                sel.or_null = key == "forEachOrNull"
        if "repeat" in s:
            if sel.for_each is not None:
                raise ViewError("repeat cannot be combined with forEach", where)
            rep = s["repeat"]
            if not isinstance(rep, list) or not rep or not all(isinstance(p, str) for p in rep):
                raise ViewError("repeat must be a non-empty list of FHIRPath strings", f"{where}.repeat")
            sel.repeat = [self._expr(p, f"{where}.repeat[{j}]") for j, p in enumerate(rep)]
        for j, col in enumerate(s.get("column", []) or []):
            cw = f"{where}.column[{j}]"
            if not isinstance(col, dict):
                raise ViewError("a column is a JSON object", cw)
            name = col.get("name")
            if not isinstance(name, str) or not COLUMN_NAME.match(name):
                raise ViewError(f"column name {name!r} must start with a letter and hold only letters, digits, _", cw)
            collection = col.get("collection", False)
            if not isinstance(collection, bool):
                raise ViewError("collection must be true or false", cw)
            ctype = col.get("type")
            if ctype is not None and not isinstance(ctype, str):
                raise ViewError("type must be a FHIR type name", cw)
            sel.columns.append(ViewColumn(name, self._expr(col.get("path"), f"{cw}.path"), collection, ctype,
                                          col.get("description")))
        for j, sub in enumerate(s.get("select", []) or []):
            sel.selects.append(self._select(sub, f"{where}.select[{j}]"))
        union = s.get("unionAll", []) or []
        if not isinstance(union, list):
            raise ViewError("unionAll must be a list", f"{where}.unionAll")
        for j, sub in enumerate(union):
            sel.union.append(self._select(sub, f"{where}.unionAll[{j}]"))
        if sel.union:
            first = sel.union[0].names()
            for j, u in enumerate(sel.union[1:], start=1):
                if u.names() != first:
                    raise ViewError(f"unionAll branch {j} has columns {u.names()}, branch 0 has {first}",
                                    f"{where}.unionAll[{j}]")
        return sel

    def _all_columns(self, sel: Select) -> list[ViewColumn]:
        out = list(sel.columns)
        for s in sel.selects:
            out.extend(self._all_columns(s))
        if sel.union:
            out.extend(self._all_columns(sel.union[0]))
        return out

    # -- running --------------------------------------------------------------------------------

    def matches(self, resource: dict) -> bool:
        """Whether ``resource`` is of the view's type and passes every ``where``."""
        if resource.get("resourceType") != self.resource:
            return False
        for i, expr in enumerate(self.where):
            values = _eval(expr, resource, {**self.constants, "rowIndex": 0}, f"ViewDefinition.where[{i}]")
            if not values:
                return False
            if len(values) != 1 or not isinstance(values[0], bool):
                raise ViewError(f"where path {expr.text!r} must give one boolean, not {values!r}"[:300],
                                f"ViewDefinition.where[{i}]")
            if not values[0]:
                return False
        return True

    def rows(self, resource: dict) -> list[dict]:
        """The rows ``resource`` gives (none when it is another type or fails a ``where``)."""
        if not self.matches(resource):
            return []
        return self.root.rows(resource, 0, self.constants)

    def run(self, resources: Iterable[dict]) -> Iterator[dict]:
        """Rows of every resource, in order."""
        for resource in resources:
            yield from self.rows(resource)
