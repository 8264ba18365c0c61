"""Arguments of analysis templates: declared by a template, given by each use.

A template declares its arguments under ``args:``, each with a default or ``null`` for a
required one, and refers to them in any string option as ``{{ args.NAME }}``::

    analyses:
      error-rate:
        provider: prometheus
        args: {service: null, max_error_rate: "0.01"}
        query: sum(rate(errors_total{service="{{ args.service }}"}[1m]))
        success: result < double(args.max_error_rate)

A use gives values with ``analysis: {template: error-rate, args: {service: shop}}``.
Conditions do not get the text substituted: they read the arguments as the CEL map
``args``, so an argument value can never change the meaning of an expression.

Three arguments are always defined and cannot be declared: ``canary_version``,
``stable_version`` (empty on a first deploy) and ``environment`` (empty outside an
environment). Argument values are strings; numbers given in YAML are converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.analysismodel import AnalysisError

__all__ = ["ARG_REFERENCE", "BUILTIN_ARGS", "bind_args", "referenced_args"]

#: A reference to an argument in a string option.
ARG_REFERENCE = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

#: Arguments that shipline defines for every analysis run.
BUILTIN_ARGS = ("canary_version", "stable_version", "environment")

#: Options that are never substituted: conditions read ``args`` as a CEL variable, and
#: the ``command`` provider fills arguments in as ``{NAME}`` placeholders after splitting
#: its command line, so that a value always stays one argument.
_NOT_SUBSTITUTED = frozenset({"success", "failure", "args", "command"})


def bind_args(
    name: str,
    options: Mapping[str, Any],
    given: Mapping[str, Any],
    builtins: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``options`` with every ``{{ args.NAME }}`` replaced, and the argument values.

    ``given`` are the values of the use, ``builtins`` those of :data:`BUILTIN_ARGS`.
    Raises AnalysisError, with ``key`` set, for an argument that the template does not
    declare, a required argument without a value, a declared built-in name, or a
    reference to an argument that is not defined.
    """
    declared = _declared(name, options)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise AnalysisError(
            f"analysis {name!r} has no argument {unknown[0]!r}; its arguments: {known}", "args"
        )

    values: dict[str, str] = dict(builtins)
    for arg, default in declared.items():
        value = given.get(arg, default)
        if value is None:
            raise AnalysisError(
                f"analysis {name!r} needs a value for argument {arg!r}: give it in the use, "
                f"for example analysis: {{template: {name}, args: {{{arg}: ...}}}}",
                "args",
            )
        values[arg] = _text(value, arg, name)

    bound = {key: _substitute(value, values, name, key) if key not in _NOT_SUBSTITUTED
             else value for key, value in options.items()}
    return bound, values


def referenced_args(value: Any) -> set[str]:
    """Return the argument names that string options in ``value`` refer to, at any depth."""
    if isinstance(value, str):
        return set(ARG_REFERENCE.findall(value))
    if isinstance(value, Mapping):
        return {name for item in value.values() for name in referenced_args(item)}
    if isinstance(value, (list, tuple)):
        return {name for item in value for name in referenced_args(item)}
    return set()


def _declared(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    raw = options.get("args", {}) or {}
    if not isinstance(raw, Mapping):
        raise AnalysisError(
            f"analysis {name!r}: 'args' must map argument names to defaults (null for a "
            f"required argument), got {raw!r}",
            "args",
        )
    for arg in raw:
        if arg in BUILTIN_ARGS:
            raise AnalysisError(
                f"analysis {name!r}: argument {arg!r} is built in and cannot be declared",
                "args",
            )
    return {str(arg): default for arg, default in raw.items()}


def _text(value: Any, arg: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AnalysisError(
            f"analysis {name!r}: argument {arg!r} must be a string or a number, got {value!r}",
            "args",
        )
    return str(value)


def _substitute(value: Any, args: Mapping[str, str], name: str, key: str) -> Any:
    if isinstance(value, str):
        return ARG_REFERENCE.sub(lambda match: _lookup(match, args, name, key), value)
    if isinstance(value, Mapping):
        return {k: _substitute(item, args, name, key) for k, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_substitute(item, args, name, key) for item in value]
    return value


def _lookup(match: re.Match[str], args: Mapping[str, str], name: str, key: str) -> str:
    arg = match.group(1)
    if arg not in args:
        raise AnalysisError(
            f"analysis {name!r}: {key!r} refers to argument {arg!r}, which is not declared "
            f"under 'args:'",
            key,
        )
    return args[arg]
