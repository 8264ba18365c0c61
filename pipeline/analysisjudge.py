"""Judge one measurement: check a provider's values and apply the success and failure
conditions to them.

The verdict rules are described in :mod:`pipeline.analysis`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pipeline.analysismodel import FAILED, INCONCLUSIVE, SUCCESSFUL
from pipeline.conditions import Condition, without_nan

__all__ = ["Judgement", "clean_values", "judge", "show_value"]


# -- judging one measurement -------------------------------------------------------------


class Judgement(NamedTuple):
    """The verdict of one measurement, its message, and whether missing data decided it."""

    verdict: str
    message: str
    no_data: bool = False


def judge(
    values: Mapping[str, Any],
    success: Sequence[Condition],
    failure: Sequence[Condition],
    args: Mapping[str, str] | None = None,
) -> Judgement:
    """Return the verdict and message of a measurement with ``values``.

    Applies the rules for one measurement in :mod:`pipeline.analysis`; ``args`` are the
    analysis use's arguments, which conditions read as ``args``. Raises ConditionError
    when a condition reads a metric that ``values`` lacks, and ConditionEvaluationError
    when a condition fails on these values for another reason than missing data.
    """
    failed, failure_decider = _any_true(failure, values, args)
    passed, success_decider = _all_true(success, values, args)
    metrics = _show_values(values, success, failure)

    if failed:
        return Judgement(FAILED, f"failure condition {failure_decider} is true ({metrics})")
    if failed is None:
        return Judgement(INCONCLUSIVE,
                         f"no data for failure condition {failure_decider} ({metrics})", True)
    if passed is None:
        return Judgement(INCONCLUSIVE,
                         f"no data for success condition {success_decider} ({metrics})", True)
    if not success:
        return Judgement(SUCCESSFUL, f"no failure condition is true ({metrics})")
    if passed and len(success) > 1:
        return Judgement(SUCCESSFUL,
                         f"success conditions {success_decider} are true ({metrics})")
    if passed:
        return Judgement(SUCCESSFUL, f"success condition {success_decider} is true ({metrics})")
    if not failure:
        return Judgement(FAILED, f"success condition {success_decider} is false ({metrics})")
    return Judgement(INCONCLUSIVE, (
        f"success condition {success_decider} is false and no failure condition is true "
        f"({metrics})"
    ))


def _all_true(
    conditions: Sequence[Condition], values: Mapping[str, Any],
    args: Mapping[str, str] | None,
) -> tuple[bool | None, str]:
    """Kleene ``and`` over ``conditions``, with the quoted condition that decided it."""
    results = [(c.evaluate(values, args), repr(c.text)) for c in conditions]
    for decisive in (False, None):
        for result, text in results:
            if result is decisive:
                return decisive, text
    return True, " and ".join(text for _, text in results)


def _any_true(
    conditions: Sequence[Condition], values: Mapping[str, Any],
    args: Mapping[str, str] | None,
) -> tuple[bool | None, str]:
    """Kleene ``or`` over ``conditions``, with the quoted condition that decided it."""
    results = [(c.evaluate(values, args), repr(c.text)) for c in conditions]
    for decisive in (True, None):
        for result, text in results:
            if result is decisive:
                return decisive, text
    return False, ""


def _show_values(
    values: Mapping[str, Any],
    success: Sequence[Condition],
    failure: Sequence[Condition],
) -> str:
    """Show the values that the conditions read, ``result`` only when the provider set it."""
    read = {name for condition in (*success, *failure) for name in condition.names}
    names = sorted(name for name in read if name in values)
    if not names and "result" in read:
        names = sorted(values)
    return ", ".join(f"{name}={show_value(values.get(name))}" for name in names)


def show_value(value: Any) -> str:
    """Format a measured value for messages: ``no data``, a number, or compact JSON.

    JSON longer than 200 characters is cut, because a provider may return a long list.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= 200 else text[:199] + "…"


def clean_values(raw: Any, provider: str) -> dict[str, Any]:
    """Check a provider's return value; NaN becomes ``None`` (no data) at any depth.

    Raises TypeError, which makes the measurement an ``error``, for anything but a
    mapping from names to JSON values: ``None``, booleans, numbers, strings, lists and
    maps with string keys.
    """
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"provider {provider!r} returned {type(raw).__name__}, expected a mapping of "
            f"metric values"
        )
    for name, value in raw.items():
        problem = _json_problem(value)
        if problem:
            raise TypeError(
                f"provider {provider!r} returned {problem} for metric {name!r}, expected "
                f"a number, a list, a map or no data"
            )
    return {str(name): without_nan(value) for name, value in raw.items()}


def _json_problem(value: Any) -> str:
    """Describe the first part of ``value`` that is not a JSON value, or return ``""``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return ""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"a map with the key {key!r}"
            problem = _json_problem(item)
            if problem:
                return problem
        return ""
    if isinstance(value, (list, tuple)):
        return next((p for p in map(_json_problem, value) if p), "")
    return repr(value)
