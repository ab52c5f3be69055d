"""Expressions of validation rules and indicators, in DHIS2's notation.

``#{ELEMENT}`` is an element's total (all category option combinations), ``#{ELEMENT.COC}`` one
combination, ``[days]`` the days in the period; numbers, ``+ - * /`` and parentheses. Parsed by a
small recursive-descent parser (never ``eval``): ``Expression(text)`` raises ``ValueError`` with
the position of a fault; ``expr.value(lookup, days)`` computes, where ``lookup(element, coc)``
gives a value or None. ``expr.refs`` lists the operands, so a rule can be skipped when all of
its operands are missing (DHIS2's "skip if all values are missing").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(?:(#\{[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)?\})|(\[days\])|(\d+(?:\.\d+)?)|([-+*/()]))")

Lookup = Callable[[str, str | None], float | None]


@dataclass(frozen=True)
class Ref:
    element: str
    coc: str | None  # None: the element's total


class Expression:
    """A parsed expression."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise ValueError("an expression is required")
        self.text = text
        self._tokens = self._lex(text)
        self._pos = 0
        self.refs: list[Ref] = []
        self._tree = self._sum()
        if self._pos != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._pos][1]!r} in {text!r}")

    @staticmethod
    def _lex(text: str) -> list[tuple[str, str]]:
        out, i = [], 0
        while i < len(text):
            if text[i:].strip() == "":
                break
            m = _TOKEN.match(text, i)
            if not m:
                raise ValueError(f"cannot read {text[i:i + 12]!r} (position {i + 1}) in {text!r}")
            ref, days, num, op = m.groups()
            out.append(("ref", ref) if ref else ("days", days) if days else ("num", num) if num else ("op", op))
            i = m.end()
        return out

    def _peek(self):
        return self._tokens[self._pos] if self._pos < len(self._tokens) else (None, None)

    def _sum(self):
        node = self._product()
        while self._peek() in (("op", "+"), ("op", "-")):
            op = self._tokens[self._pos][1]
            self._pos += 1
            node = (op, node, self._product())
        return node

    def _product(self):
        node = self._unary()
        while self._peek() in (("op", "*"), ("op", "/")):
            op = self._tokens[self._pos][1]
            self._pos += 1
            node = (op, node, self._unary())
        return node

    def _unary(self):
        if self._peek() == ("op", "-"):
            self._pos += 1
            return ("neg", self._unary())
        return self._atom()

    def _atom(self):
        kind, text = self._peek()
        if kind is None:
            raise ValueError(f"{self.text!r} ends too early")
        self._pos += 1
        if kind == "num":
            return ("num", float(text))
        if kind == "days":
            return ("days",)
        if kind == "ref":
            inner = text[2:-1]
            element, _, coc = inner.partition(".")
            ref = Ref(element, coc or None)
            self.refs.append(ref)
            return ("ref", ref)
        if text == "(":
            node = self._sum()
            if self._peek() != ("op", ")"):
                raise ValueError(f"missing ')' in {self.text!r}")
            self._pos += 1
            return node
        raise ValueError(f"unexpected {text!r} in {self.text!r}")

    def value(self, lookup: Lookup, days: int = 0) -> float | None:
        """The value (missing operands count 0); None when dividing by zero."""
        try:
            return self._eval(self._tree, lookup, days)
        except ZeroDivisionError:
            return None

    def all_missing(self, lookup: Lookup) -> bool:
        """Whether every operand is missing (a rule is then skipped)."""
        return bool(self.refs) and all(lookup(r.element, r.coc) is None for r in self.refs)

    def _eval(self, node, lookup: Lookup, days: int) -> float:
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "days":
            return float(days)
        if kind == "ref":
            v = lookup(node[1].element, node[1].coc)
            return 0.0 if v is None else float(v)
        if kind == "neg":
            return -self._eval(node[1], lookup, days)
        a, b = self._eval(node[1], lookup, days), self._eval(node[2], lookup, days)
        if kind == "+":
            return a + b
        if kind == "-":
            return a - b
        if kind == "*":
            return a * b
        return a / b
