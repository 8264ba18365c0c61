"""Compile and evaluate CEL expressions from pipeline and policy files, without ``eval``.

CEL is the Common Expression Language that Kubernetes uses for validation rules. The
evaluation is cel-python's (import name ``celpy``), a pure Python interpreter of the
language, so an expression can read the values it is given and call the functions it is
given and nothing else. It has no access to Python objects, files or the network.

``celpy`` takes about 70 ms to import, so this module imports it on first use: only a
pipeline that uses CEL pays for it.

Values cross the boundary as JSON-like Python values: ``None``, ``bool``, ``int``,
``float``, ``str``, lists and string-keyed dicts. :func:`evaluate` converts them to CEL
values and converts the result back the same way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.errors import ShiplineError

if TYPE_CHECKING:
    import celpy

#: A value that crosses between Python and CEL.
JsonValue = Any

#: A function that expressions may call, by name: it receives and returns CEL values.
CelFunction = Callable[..., Any]



class CelError(ShiplineError):
    """An expression that does not parse, or that fails while it is evaluated.

    ``expression`` is the source text, ``reason`` the problem in one line, and ``column``
    the 1-based column of a syntax error (0 when unknown or not a syntax error).
    """

    def __init__(self, expression: str, reason: str, column: int = 0) -> None:
        where = f" at column {column}" if column else ""
        super().__init__(f"CEL expression {expression!r}{where}: {reason}")
        self.expression = expression
        self.reason = reason
        self.column = column


@dataclass(frozen=True)
class Expression:
    """A compiled expression, ready to evaluate any number of times from any thread."""

    source: str
    _ast: Any = field(repr=False, compare=False)


def compile_expression(source: str) -> Expression:
    """Parse ``source``, or raise :class:`CelError` with the column of a syntax error.

    Names are not checked here: a name that the evaluation does not provide is an
    error of :func:`evaluate`, because macros such as ``all(x, ...)`` bind names of
    their own.
    """
    from celpy.celparser import CELParseError

    if not source.strip():
        raise CelError(source, "the expression is empty")
    try:
        ast = _shared_environment().compile(source)
    except CELParseError as exc:
        raise CelError(source, "syntax error", column=_column(exc)) from None
    return Expression(source, ast)


@dataclass(frozen=True)
class Activation:
    """Variables already converted to CEL values, to evaluate many expressions with.

    Converting is linear in the size of the values, so a caller that evaluates several
    expressions against one large value (a whole plan) converts it once with
    :func:`prepare` and passes the result to :func:`evaluate`.
    """

    values: Mapping[str, Any]


def prepare(variables: Mapping[str, JsonValue]) -> Activation:
    """Convert JSON-like ``variables`` into an :class:`Activation`."""
    from celpy.adapter import json_to_cel

    return Activation({name: json_to_cel(value) for name, value in variables.items()})


def evaluate(
    expression: Expression,
    variables: Mapping[str, JsonValue] | Activation,
    functions: Mapping[str, CelFunction] | None = None,
) -> JsonValue:
    """Evaluate ``expression`` with ``variables`` and return the result as a Python value.

    ``functions`` adds functions the expression may call by name. A reference to a
    name that is not in ``variables``, a type mismatch or a division by zero raises
    :class:`CelError` with CEL's own reason. A NaN float stays NaN: comparisons with it
    are false, as in CEL.
    """
    from celpy.evaluation import CELEvalError

    program = _shared_environment().program(expression._ast, functions=dict(functions or {}))
    if not isinstance(variables, Activation):
        variables = prepare(variables)
    activation = dict(variables.values)
    try:
        result = program.evaluate(activation)
    except CELEvalError as exc:
        raise CelError(expression.source, _eval_reason(exc)) from None
    if isinstance(result, CELEvalError):
        raise CelError(expression.source, _eval_reason(result))
    return to_python(result)


def evaluate_bool(
    expression: Expression,
    variables: Mapping[str, JsonValue] | Activation,
    functions: Mapping[str, CelFunction] | None = None,
) -> bool:
    """Evaluate a condition: a result that is not a boolean raises :class:`CelError`."""
    result = evaluate(expression, variables, functions)
    if not isinstance(result, bool):
        raise CelError(
            expression.source,
            f"the result must be true or false, got {type(result).__name__} {result!r}",
        )
    return result


def to_python(value: Any) -> JsonValue:
    """Convert a CEL value into ``None``, bool, int, float, str, list or dict."""
    from celpy import celtypes

    if value is None:
        return None
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.ListType):
        return [to_python(item) for item in value]
    if isinstance(value, celtypes.MapType):
        return {str(key): to_python(item) for key, item in value.items()}
    return str(value)


def is_nan(value: JsonValue) -> bool:
    """Tell whether ``value`` is a float NaN, the value Prometheus and others use for "no data"."""
    return isinstance(value, float) and math.isnan(value)


@functools.lru_cache(maxsize=1)
def _shared_environment() -> celpy.Environment:
    """Return the one environment that every expression shares, because creating it is slow."""
    import celpy

    return celpy.Environment()


def _column(exc: Exception) -> int:
    column = getattr(exc, "column", None)
    return column if isinstance(column, int) and column > 0 else 0


def _eval_reason(exc: Exception) -> str:
    """Return CEL's reason without the activation dump that celpy appends to some of them."""
    reason = str(exc.args[0]) if exc.args else str(exc)
    reason = reason.split(" (in activation", 1)[0]
    if reason.startswith("found no matching overload"):
        return "an operator or function got values of types it does not accept"
    return reason.splitlines()[0] if reason else "evaluation failed"
