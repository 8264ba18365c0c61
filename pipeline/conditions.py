"""A small condition language for analysis thresholds, parsed without ``eval``.

A condition compares measured metrics with numbers::

    success_rate >= 0.99
    p95_ms <= 300
    error_rate < 0.01 and (p99_ms < 500 or requests < 20)
    not error_rate > 0.05

Grammar, from the loosest binding to the tightest::

    condition  := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | NAME OPERATOR NUMBER
    OPERATOR   := "<" | "<=" | ">" | ">=" | "==" | "!="

A ``NAME`` is a metric name (letters, digits and ``_``, not starting with a digit, and
not one of the keywords). A ``NUMBER`` is a decimal literal with an optional sign and
exponent (``0.99``, ``-1``, ``2e3``). Keywords are lowercase.

A metric may have no data: its value is ``None`` or NaN. A comparison with such a
metric is unknown, and ``and``, ``or`` and ``not`` follow three-valued (Kleene) logic:
``false and unknown`` is false, ``true or unknown`` is true, anything else involving
an unknown is unknown. :meth:`Condition.evaluate` returns ``None`` for unknown, which
an analysis counts as an inconclusive measurement.

The text is split into tokens by one regular expression and parsed by recursive
descent into a tree of small node objects. No part of it is executed as Python.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NoReturn

#: Comparison operators and the functions that apply them.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

KEYWORDS = frozenset({"and", "or", "not"})

#: Deepest nesting of parentheses and ``not`` accepted, so that parsing stays far
#: below Python's recursion limit.
MAX_DEPTH = 50

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<operator><=|>=|==|!=|<|>)"
    r"|(?P<paren>[()])"
    r")"
)

_OPERATOR_LIST = "<, <=, >, >=, == or !="


class ConditionError(ValueError):
    """A condition that cannot be parsed, or that names a metric that does not exist."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "keyword", "operator", "paren"
    text: str
    column: int


# -- tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Comparison:
    name: str
    operator: str
    number: float

    def evaluate(self, values: Mapping[str, float | None]) -> bool | None:
        value = values[self.name]
        if value is None or math.isnan(value):
            return None
        return OPERATORS[self.operator](value, self.number)


@dataclass(frozen=True)
class _Not:
    operand: _Node

    def evaluate(self, values: Mapping[str, float | None]) -> bool | None:
        result = self.operand.evaluate(values)
        return None if result is None else not result


@dataclass(frozen=True)
class _And:
    operands: tuple[_Node, ...]

    def evaluate(self, values: Mapping[str, float | None]) -> bool | None:
        results = [operand.evaluate(values) for operand in self.operands]
        if False in results:
            return False
        return None if None in results else True


@dataclass(frozen=True)
class _Or:
    operands: tuple[_Node, ...]

    def evaluate(self, values: Mapping[str, float | None]) -> bool | None:
        results = [operand.evaluate(values) for operand in self.operands]
        if True in results:
            return True
        return None if None in results else False


_Node = _Comparison | _Not | _And | _Or


# -- public interface --------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """A compiled condition: its source text, the metrics it reads, and its tree."""

    text: str
    #: Every metric name the condition reads.
    names: frozenset[str]
    _root: _Node

    def evaluate(self, values: Mapping[str, float | None]) -> bool | None:
        """Return whether the condition holds for ``values``, or ``None`` when unknown.

        Unknown means the result depends on a metric without data (``None`` or NaN).
        Raises ConditionError when the condition reads a metric that ``values`` lacks.
        """
        self.check_names(values)
        return self._root.evaluate(values)

    def check_names(self, available: Iterable[str]) -> None:
        """Raise ConditionError if the condition reads a metric not in ``available``.

        The message names the first unknown metric, suggests a close match and lists
        the available metrics.
        """
        known = sorted(set(available))
        unknown = sorted(self.names - set(known))
        if not unknown:
            return

        name = unknown[0]
        close = difflib.get_close_matches(name, known, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        listing = ", ".join(known) if known else "none"
        raise ConditionError(
            f"condition {self.text!r} uses unknown metric {name!r}{suggestion}: "
            f"available metrics are {listing}"
        )

    def __str__(self) -> str:
        return self.text


def compile_condition(text: str) -> Condition:
    """Parse ``text`` into a :class:`Condition`.

    Raises ConditionError with a message of the form
    ``invalid condition 'p95_ms <=': expected a number after '<='``.
    """
    parser = _Parser(text, _tokenize(text))
    root = parser.parse()
    return Condition(text, frozenset(parser.names), root)


# -- tokens and parser -------------------------------------------------------------------


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            _raise_bad_character(text, position)
        group = match.lastgroup
        value = match.group(group)
        kind = "keyword" if group == "name" and value in KEYWORDS else group
        tokens.append(_Token(kind, value, match.start(group) + 1))
        position = match.end()
    return tokens


def _raise_bad_character(text: str, position: int) -> NoReturn:
    offset = position + len(text[position:]) - len(text[position:].lstrip())
    character = text[offset]
    hint = " (use '==' to compare)" if character == "=" else ""
    raise ConditionError(
        f"invalid condition {text!r}: unexpected character {character!r} "
        f"at column {offset + 1}{hint}"
    )


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.names: set[str] = set()

    def parse(self) -> _Node:
        node = self.or_expr()
        if self.peek() is not None:
            self.fail("'and', 'or' or the end of the condition")
        return node

    def or_expr(self) -> _Node:
        operands = [self.and_expr()]
        while self.accept("keyword", "or"):
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else _Or(tuple(operands))

    def and_expr(self) -> _Node:
        operands = [self.not_expr()]
        while self.accept("keyword", "and"):
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else _And(tuple(operands))

    def not_expr(self) -> _Node:
        if self.accept("keyword", "not"):
            self.enter()
            node = _Not(self.not_expr())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> _Node:
        if self.accept("paren", "("):
            self.enter()
            node = self.or_expr()
            if not self.accept("paren", ")"):
                self.fail("'and', 'or' or ')'")
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> _Node:
        name = self.expect("name", "a metric name")
        symbol = self.expect("operator", f"a comparison operator ({_OPERATOR_LIST})")
        number = self.expect("number", "a number")
        self.names.add(name)
        return _Comparison(name, symbol, float(number))

    # -- token helpers

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def accept(self, kind: str, text: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == kind and token.text == text:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, description: str) -> str:
        token = self.peek()
        if token is None or token.kind != kind:
            self.fail(description)
        self.index += 1
        return self.tokens[self.index - 1].text

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError(
                f"invalid condition {self.text!r}: nested deeper than {MAX_DEPTH} levels"
            )

    def fail(self, expected: str) -> NoReturn:
        """Raise ConditionError: ``expected`` was due at the current token."""
        message = f"invalid condition {self.text!r}: expected {expected}"
        if self.index > 0:
            message += f" after {self.tokens[self.index - 1].text!r}"
        token = self.peek()
        if token is not None:
            message += f", got {token.text!r}"
        raise ConditionError(message)
