"""Klaviyo's ``?filter=`` expressions: parse, check against an endpoint's allow-list, match.

Grammar (what Klaviyo documents for the endpoints we serve)::

    expr  := op "(" field ["," value] ")" | "and(" expr {"," expr} ")"
    value := "string" | 'string' | [value, ...] | number | true | false | null | bare date-time

Strings take single or double quotes with backslash escapes; date-times are
unquoted (``greater-than(datetime,2023-03-01T01:00:00Z)``) and become epoch
seconds. ``and`` is flattened, so a filter is a list of terms that must all hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import invalid
from .times import parse_iso

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_BARE = re.compile(r"[^,()\[\]\s]+")


#: Marks a term written without a value, e.g. ``has(profile)``.
MISSING = object()


@dataclass(frozen=True)
class Term:
    op: str
    field: str
    value: object = MISSING


def _bad(detail: str):
    return invalid(f"Invalid filter provided: {detail}", parameter="filter")


class _Parser:
    def __init__(self, text: str):
        self.text, self.i = text, 0

    def parse(self) -> list[Term]:
        terms = self.expr()
        self.space()
        if self.i != len(self.text):
            raise _bad(f"unexpected text at position {self.i}")
        return terms

    def space(self):
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def expect(self, char: str):
        self.space()
        if self.text[self.i:self.i + 1] != char:
            raise _bad(f"expected {char!r} at position {self.i}")
        self.i += 1

    def name(self) -> str:
        self.space()
        match = re.compile(r"[A-Za-z_$][\w.\-$\[\]']*?(?=\s*[(),])").match(self.text, self.i)
        if not match:
            raise _bad(f"expected a name at position {self.i}")
        self.i = match.end()
        return match.group(0)

    def expr(self) -> list[Term]:
        op = self.name()
        self.expect("(")
        if op == "and":
            terms = self.expr()
            while self.peek(","):
                terms += self.expr()
            self.expect(")")
            return terms
        field = self.name()
        value = self.value() if self.peek(",") else MISSING
        self.expect(")")
        return [Term(op, field, value)]

    def peek(self, char: str) -> bool:
        self.space()
        if self.text[self.i:self.i + 1] == char:
            self.i += 1
            return True
        return False

    def value(self):
        self.space()
        char = self.text[self.i:self.i + 1]
        if char in ("'", '"'):
            return self.string(char)
        if char == "[":
            self.i += 1
            items = []
            if not self.peek("]"):
                items.append(self.value())
                while self.peek(","):
                    items.append(self.value())
                self.expect("]")
            return items
        match = _BARE.match(self.text, self.i)
        if not match:
            raise _bad(f"expected a value at position {self.i}")
        self.i = match.end()
        token = match.group(0)
        if token in ("true", "false"):
            return token == "true"
        if token == "null":
            return None
        if _NUMBER.match(token):
            return float(token) if any(c in token for c in ".eE") else int(token)
        try:
            return parse_iso(token)
        except ValueError:
            raise _bad(f"{token!r} is not a valid value") from None

    def string(self, quote: str) -> str:
        out, self.i = [], self.i + 1
        while self.i < len(self.text):
            char = self.text[self.i]
            if char == "\\" and self.i + 1 < len(self.text):
                out.append(self.text[self.i + 1])
                self.i += 2
                continue
            self.i += 1
            if char == quote:
                return "".join(out)
            out.append(char)
        raise _bad("unterminated string")


def parse_filter(text: str | None, allowed: dict[str, set[str]]) -> list[Term]:
    """Parse ``text`` and check every term's field/operator against ``allowed``."""
    if not text:
        return []
    terms = _Parser(text).parse()
    for term in terms:
        if term.field not in allowed:
            raise _bad(f"'{term.field}' is not a filterable field for this resource")
        if term.op not in allowed[term.field]:
            raise _bad(f"operator '{term.op}' is not allowed for field '{term.field}'")
        if (term.value is MISSING) != (term.op == "has"):
            raise _bad(f"'{term.op}' takes {'no' if term.op == 'has' else 'a'} value for field '{term.field}'")
        if term.op == "any" and not isinstance(term.value, list):
            raise _bad(f"'any' needs a list of values for field '{term.field}'")
    return terms


def holds(term: Term, actual) -> bool:
    """Whether ``actual`` (the resource's value for ``term.field``) satisfies ``term``."""
    op, want = term.op, term.value
    if op == "equals":
        return actual == want
    if op == "any":
        return actual in want
    if op == "has":
        return actual is not None
    if op == "contains":
        return isinstance(actual, str) and isinstance(want, str) and want in actual
    if actual is None or want is None:
        return False
    try:
        if op == "greater-than":
            return actual > want
        if op == "greater-or-equal":
            return actual >= want
        if op == "less-than":
            return actual < want
        if op == "less-or-equal":
            return actual <= want
    except TypeError:
        return False
    return False


def matches(terms: list[Term], value_of) -> bool:
    """All ``terms`` hold, reading each field with ``value_of(field)``."""
    return all(holds(term, value_of(term.field)) for term in terms)
