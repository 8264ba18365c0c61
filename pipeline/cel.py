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
import re
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

#: Macros whose first argument binds a name of their own, such as ``x`` in ``all(x, ...)``.
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
#: Macros that cel-python evaluates itself, outside its table of functions.
_MACROS = frozenset({"has", "dyn", *_BINDING_MACROS})


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
    are false, as in CEL. Numbers of different types compare by value (``1 == 1.0``,
    ``0.5 < 1``), as the CEL specification has allowed since 2022, although cel-python
    0.5 on its own rejects such pairs.
    """
    from celpy.evaluation import CELEvalError

    program = _shared_environment().program(
        expression._ast, functions={**_numeric_comparisons(), **(functions or {})}
    )
    if not isinstance(variables, Activation):
        variables = prepare(variables)
    activation = dict(variables.values)
    try:
        result = program.evaluate(activation)
    except CELEvalError as exc:
        raise CelError(expression.source, _eval_reason(exc)) from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        # cel-python 0.5 lets some Python errors out instead of returning a CEL error,
        # for example a macro such as all() applied to null raises TypeError.
        raise CelError(expression.source, f"{type(exc).__name__}: {exc}") from None
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
    if isinstance(value, (int, float)):
        # Some cel-python operators return plain Python numbers, for example double + double.
        return value
    return str(value)


def is_nan(value: JsonValue) -> bool:
    """Tell whether ``value`` is a float NaN, the value Prometheus and others use for "no data"."""
    return isinstance(value, float) and math.isnan(value)


def free_names(expression: Expression) -> frozenset[str]:
    """Return the variable names that ``expression`` reads, without function names.

    Names bound by a macro (``x`` in ``result.all(x, x < 300)``) are left out. NOTE: a
    bound name is left out everywhere in the expression, so a variable that has the same
    name as a macro's bound name elsewhere in the expression is not reported.
    """
    import lark

    tree = expression._ast
    read: set[str] = set()
    bound: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "primary":
            read.update(
                str(child.children[0]) for child in node.children
                if isinstance(child, lark.Tree) and child.data == "ident"
            )
        elif node.data == "member_dot_arg":
            bound.update(_bound_names(node))
    return frozenset(read - bound)


def function_names(expression: Expression) -> frozenset[str]:
    """Return the names of the functions, methods and macros that ``expression`` calls.

    ``size(x)`` gives ``size`` and ``x.startsWith("a")`` gives ``startsWith``.
    Operators such as ``<`` and ``&&`` are not included.
    """
    import lark

    names = set()
    for node in expression._ast.iter_subtrees():
        if node.data not in ("ident_arg", "member_dot_arg"):
            continue
        token = next((c for c in node.children if isinstance(c, lark.Token)), None)
        if token is not None:
            names.add(str(token))
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def standard_functions() -> frozenset[str]:
    """Return the names of CEL's standard functions and macros, as cel-python provides
    them, which every expression may call without being given them."""
    from celpy.evaluation import base_functions

    return frozenset(name for name in base_functions if name[:1].isalpha()) | _MACROS


def member_names(expression: Expression, variable: str) -> frozenset[str]:
    """Return the field names that ``expression`` reads from ``variable`` with a dot.

    ``args.limit`` gives ``limit``. Index access (``args["limit"]``) is not included.
    """
    import lark

    names = set()
    for node in expression._ast.iter_subtrees():
        if node.data != "member_dot" or len(node.children) != 2:
            continue
        target, field_name = node.children
        if not isinstance(target, lark.Tree) or not isinstance(field_name, lark.Token):
            continue
        idents = [child for child in target.iter_subtrees() if child.data == "ident"]
        if len(idents) == 1 and str(idents[0].children[0]) == variable and _is_plain(target):
            names.add(str(field_name))
    return frozenset(names)


def _is_plain(member: Any) -> bool:
    """Tell whether a ``member`` node is a bare identifier, not a call or a longer path."""
    return [node.data for node in member.iter_subtrees_topdown()] == ["member", "primary", "ident"]


def _bound_names(node: Any) -> set[str]:
    """Return the name that a macro call node (``member_dot_arg``) binds, if it is a macro."""
    import lark

    method = next((c for c in node.children if isinstance(c, lark.Token)), None)
    if method is None or str(method) not in _BINDING_MACROS:
        return set()
    exprlist = next(
        (c for c in node.children if isinstance(c, lark.Tree) and c.data == "exprlist"), None
    )
    if exprlist is None or not exprlist.children:
        return set()
    first = exprlist.children[0]
    return {
        str(ident.children[0]) for ident in first.iter_subtrees() if ident.data == "ident"
    }


@functools.lru_cache(maxsize=1)
def _numeric_comparisons() -> dict[str, CelFunction]:
    """Return comparison operators that compare an int with a double by value.

    Any other pair of operands goes to cel-python's own operator, which keeps its
    errors, for example for ``null < 1.0``.
    """
    import operator

    from celpy import celtypes
    from celpy.evaluation import base_functions

    numbers = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)

    def mixed(name: str, compare: Callable[[float, float], bool]) -> CelFunction:
        original = base_functions[name]

        def apply(left: Any, right: Any) -> Any:
            if (isinstance(left, numbers) and isinstance(right, numbers)
                    and not isinstance(left, celtypes.BoolType)
                    and not isinstance(right, celtypes.BoolType)
                    and type(left) is not type(right)):
                return celtypes.BoolType(compare(float(left), float(right)))
            return original(left, right)

        return apply

    return {
        "_<_": mixed("_<_", operator.lt),
        "_<=_": mixed("_<=_", operator.le),
        "_>_": mixed("_>_", operator.gt),
        "_>=_": mixed("_>=_", operator.ge),
        "_==_": mixed("_==_", operator.eq),
        "_!=_": mixed("_!=_", operator.ne),
    }


@functools.lru_cache(maxsize=1)
def _shared_environment() -> celpy.Environment:
    """Return the one environment that every expression shares, because creating it is slow."""
    import celpy

    return celpy.Environment()


def _column(exc: Exception) -> int:
    column = getattr(exc, "column", None)
    return column if isinstance(column, int) and column > 0 else 0


def _eval_reason(exc: Exception) -> str:
    """Return CEL's reason without the activation dump that celpy appends to some of them.

    A missing map key is named even when an operator got it as an operand, because
    cel-python 0.5 then reports only an operator without a matching overload.
    """
    missing = _missing_key(exc)
    if missing:
        return missing
    reason = str(exc.args[0]) if exc.args else str(exc)
    reason = reason.split(" (in activation", 1)[0]
    if reason.startswith("found no matching overload"):
        return "an operator or function got values of types it does not accept"
    return reason.splitlines()[0] if reason else "evaluation failed"


#: cel-python's text for ``map.key`` without the key, as it appears in an error's repr,
#: nested errors included (their quotes escaped): the key, then the expression read.
_MISSING_MEMBER = re.compile(
    r"no such member in mapping: \\?'([^'\\]*)\\?'.*?tree=\\?'([^'\\]*)\\?'", re.DOTALL
)


def _missing_key(exc: Exception) -> str:
    """Describe a map key that the expression read and the map lacks, or return ``""``."""
    args = exc.args
    if len(args) >= 3 and args[0] == "no such key" and isinstance(args[2], tuple) and args[2]:
        return f"the map has no key {str(args[2][0])!r}"
    match = _MISSING_MEMBER.search(repr(exc))
    if match is None:
        return ""
    key, read = match.groups()
    return f"the map has no key {key!r} (read as {' '.join(read.split())})"
