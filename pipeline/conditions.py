"""Analysis conditions: CEL expressions over the values of one measurement.

A condition is a CEL expression (see :mod:`pipeline.cel`) that must evaluate to true or
false. It reads these variables:

``result``
    The measurement's value: a number, a list or a map, as the provider returned it.
    A provider that returns named metrics (the probe) has them here as a map.
each metric by name
    ``success_rate >= 0.99`` reads the probe's ``success_rate``, so conditions written
    as a comparison of a metric with a number stay valid.
``args``
    The arguments of the analysis use, a map of strings (``args.threshold``).

Expressions combine with CEL's ``&&``, ``||`` and ``!``; the words ``and``, ``or`` and
``not`` are not operators in CEL, and a condition that uses them is rejected with a hint.

No data: a value without data (``null``, or a float NaN as Prometheus returns for ``0/0``)
reaches the expression as ``null``, and these helper functions handle it:

``no_data(x)``
    True when ``x`` is ``null``, an empty list or an empty map.
``is_nan(x)``
    True when ``x`` is ``null``, which is how a NaN arrives.
``default(x, fallback)``
    ``fallback`` when ``no_data(x)``, else ``x``: ``default(result, 0.0) < 0.01``.

A comparison with ``null`` fails in CEL, and CEL's ``&&`` and ``||`` absorb a failure
when the other side decides (``false && error`` is false, ``true || error`` is true), so
conditions keep three-valued logic. When the evaluation fails and a variable that the
condition reads has no data somewhere inside, the condition is *unknown*:
:meth:`Condition.evaluate` returns ``None``, which an analysis counts as no data.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.cel import (
    CelError,
    CelFunction,
    Expression,
    compile_expression,
    evaluate,
    free_names,
    function_names,
    member_names,
    standard_functions,
)

__all__ = [
    "RESERVED_NAMES",
    "Condition",
    "ConditionError",
    "ConditionEvaluationError",
    "compile_condition",
    "contains_no_data",
    "without_nan",
]

#: Variables that every condition may read, whatever the provider returns.
RESERVED_NAMES = frozenset({"result", "args"})

#: Python-style boolean words, which CEL does not have, and their CEL operators.
_PYTHON_WORDS = {"and": "&&", "or": "||", "not": "!"}
_WORD = re.compile(r"\b(and|or|not)\b")
_SINGLE_EQUALS = re.compile(r"(?<![=!<>])=(?!=)")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


class ConditionError(ValueError):
    """A condition that does not parse, or that reads a value that does not exist."""


class ConditionEvaluationError(ConditionError):
    """A condition that failed on the values of one measurement, for example a type error.

    Unlike its base class, it may pass with other values, so an analysis counts it as a
    measurement error rather than a configuration problem.
    """


@dataclass(frozen=True)
class Condition:
    """A compiled condition: its source text, the variables it reads, and its expression."""

    text: str
    #: Every variable the condition reads, ``result`` and ``args`` included.
    names: frozenset[str]
    _expression: Expression
    #: The arguments the condition reads as ``args.NAME``.
    arg_names: frozenset[str] = frozenset()
    #: The fields the condition reads as ``result.NAME``.
    result_fields: frozenset[str] = frozenset()

    def evaluate(
        self, values: Mapping[str, Any], args: Mapping[str, str] | None = None
    ) -> bool | None:
        """Return whether the condition holds for ``values``, or ``None`` when unknown.

        ``values`` maps metric names to JSON values. Raises ConditionError when the
        condition reads a metric that ``values`` lacks, and ConditionEvaluationError
        when it fails for another reason than missing data or does not return a
        boolean.
        """
        self.check_names(values)
        variables = variables_for(values, args)

        try:
            outcome = evaluate(self._expression, variables, NO_DATA_FUNCTIONS)
        except CelError as exc:
            if any(contains_no_data(variables[name]) for name in self.names):
                return None
            raise ConditionEvaluationError(
                f"condition {self.text!r} failed: {exc.reason}"
            ) from None

        if not isinstance(outcome, bool):
            raise ConditionEvaluationError(
                f"condition {self.text!r} must be true or false, got {outcome!r}"
            )
        return outcome

    def check_names(self, available: Iterable[str]) -> None:
        """Raise ConditionError if the condition reads a metric not in ``available``.

        ``result`` and ``args`` are always available. The message names the first
        unknown metric, suggests a close match and lists the available metrics.
        """
        known = sorted(set(available) | RESERVED_NAMES)
        unknown = sorted(self.names - set(known))
        if not unknown:
            return

        name = unknown[0]
        close = difflib.get_close_matches(name, known, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConditionError(
            f"condition {self.text!r} uses unknown metric {name!r}{suggestion}: "
            f"available metrics are {', '.join(known)}"
        )

    def __str__(self) -> str:
        return self.text


def compile_condition(text: str) -> Condition:
    """Parse ``text`` as a CEL expression into a :class:`Condition`.

    Raises ConditionError with a message of the form
    ``invalid condition 'p95_ms <=': CEL syntax error at column 8``, or naming a called
    function that is not defined.
    """
    try:
        expression = compile_expression(text)
    except CelError as exc:
        where = f" at column {exc.column}" if exc.column else ""
        message = f"invalid condition {text!r}: {_reason(exc)}{where}"
        raise ConditionError(message + _python_words_hint(text)) from None
    _check_functions(text, expression)
    return Condition(text, free_names(expression), expression,
                     member_names(expression, "args"), member_names(expression, "result"))


def _check_functions(text: str, expression: Expression) -> None:
    """Raise ConditionError for a call of a function that neither CEL nor the no-data
    helpers define, so that a misspelt name fails at validation, not after a run's
    measurements."""
    known = standard_functions() | set(NO_DATA_FUNCTIONS)
    unknown = sorted(function_names(expression) - known)
    if not unknown:
        return

    name = unknown[0]
    close = difflib.get_close_matches(name, sorted(known), n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConditionError(
        f"invalid condition {text!r}: unknown function {name!r}{suggestion}; the helpers "
        f"for no data are {', '.join(NO_DATA_FUNCTIONS)}"
    )


def variables_for(
    values: Mapping[str, Any], args: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the CEL variables of a measurement: each value, ``result`` and ``args``.

    NaN becomes ``None`` at any depth. Without a value named ``result``, ``result`` is
    the map of all values.
    """
    variables = {str(name): without_nan(value) for name, value in values.items()}
    if "result" not in variables:
        variables["result"] = dict(variables)
    variables["args"] = dict(args or {})
    return variables


def without_nan(value: Any) -> Any:
    """Return ``value`` with every float NaN, at any depth, replaced by ``None``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(item) for item in value]
    return value


def contains_no_data(value: Any) -> bool:
    """Tell whether ``value`` is ``None`` or NaN, or contains one at any depth."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, Mapping):
        return any(contains_no_data(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_no_data(item) for item in value)
    return False


# -- helper functions for expressions ----------------------------------------------------


def _no_data(value: Any) -> Any:
    from celpy import celtypes

    empty = isinstance(value, (celtypes.ListType, celtypes.MapType)) and len(value) == 0
    return celtypes.BoolType(value is None or empty)


def _is_nan(value: Any) -> Any:
    from celpy import celtypes

    return celtypes.BoolType(value is None)


def _default(value: Any, fallback: Any) -> Any:
    return fallback if bool(_no_data(value)) else value


#: The no-data helpers by the names that conditions call them with.
NO_DATA_FUNCTIONS: dict[str, CelFunction] = {
    "no_data": _no_data,
    "is_nan": _is_nan,
    "default": _default,
}


def _reason(exc: CelError) -> str:
    return "CEL syntax error" if exc.reason == "syntax error" else exc.reason


def _python_words_hint(text: str) -> str:
    """Suggest CEL operators for ``and``, ``or``, ``not`` and ``=`` outside strings."""
    code = _STRING.sub("''", text)
    if _SINGLE_EQUALS.search(code):
        return " (use '==' to compare)"
    words = sorted(set(_WORD.findall(code)))
    if not words:
        return ""
    swaps = ", ".join(f"'{_PYTHON_WORDS[word]}' for '{word}'" for word in words)
    return f" (CEL writes {swaps})"
