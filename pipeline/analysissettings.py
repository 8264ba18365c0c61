"""The common options of one analysis: where they come from (a template under ``analyses:``
or an inline mapping), their parsed form, and the worst-case duration they allow.

The options and their defaults are described in :mod:`pipeline.analysis`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.analysismodel import (
    DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    DEFAULT_COUNT,
    DEFAULT_FAILURE_LIMIT,
    DEFAULT_INCONCLUSIVE_LIMIT,
    DEFAULT_INITIAL_DELAY,
    DEFAULT_INTERVAL,
    DEFAULT_TIMEOUT,
    ERROR,
    ERROR_RETRY_INTERVAL,
    AnalysisError,
)
from pipeline.conditions import Condition, ConditionError, compile_condition
from pipeline.durations import parse_duration
from pipeline.judge import is_comparison

if TYPE_CHECKING:
    from pipeline.plan import Plan

__all__ = [
    "AnalysisSettings",
    "estimate_analysis",
    "resolve_analysis",
    "unknown_template_message",
]


@dataclass(frozen=True)
class AnalysisSettings:
    """The common options of one analysis, parsed; durations are in seconds."""

    name: str
    provider: str
    interval: float = DEFAULT_INTERVAL
    #: Whether the analysis sets ``interval``; when not, errors are retried after 10 s.
    interval_set: bool = False
    count: int = DEFAULT_COUNT
    initial_delay: float = DEFAULT_INITIAL_DELAY
    failure_limit: int = DEFAULT_FAILURE_LIMIT
    inconclusive_limit: int = DEFAULT_INCONCLUSIVE_LIMIT
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT
    success: tuple[Condition, ...] = ()
    failure: tuple[Condition, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> AnalysisSettings:
        """Parse the common options of ``options``; other keys are the provider's.

        Raises AnalysisError, with ``key`` set, for a missing provider, a value of the
        wrong type or range, an invalid condition, or no condition at all.
        """
        provider = options.get("provider")
        if not isinstance(provider, str) or not provider:
            raise AnalysisError(f"analysis {name!r} has no 'provider'", "provider")

        success = _conditions(options, "success")
        failure = _conditions(options, "failure")
        if not success and not failure:
            raise AnalysisError(
                f"analysis {name!r} has no 'success' or 'failure' condition, so it could "
                f"never fail: add one, for example success: \"success_rate >= 0.99\""
            )

        return cls(
            name=name,
            provider=provider,
            interval=_duration(options, "interval", DEFAULT_INTERVAL),
            interval_set="interval" in options,
            count=_integer(options, "count", DEFAULT_COUNT, minimum=1),
            initial_delay=_duration(options, "initial_delay", DEFAULT_INITIAL_DELAY),
            failure_limit=_integer(options, "failure_limit", DEFAULT_FAILURE_LIMIT),
            inconclusive_limit=_integer(options, "inconclusive_limit", DEFAULT_INCONCLUSIVE_LIMIT),
            consecutive_error_limit=_integer(
                options, "consecutive_error_limit", DEFAULT_CONSECUTIVE_ERROR_LIMIT
            ),
            success=success,
            failure=failure,
            timeout=_duration(options, "timeout", DEFAULT_TIMEOUT),
        )

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.success + self.failure

    def wait_after(self, verdict: str) -> float:
        """Return the seconds to wait after a measurement with ``verdict``."""
        if verdict == ERROR and not self.interval_set:
            return ERROR_RETRY_INTERVAL
        return self.interval

    def worst_case_seconds(self) -> float:
        """Return the longest this analysis can take, waits and timeouts included.

        The worst case has ``consecutive_error_limit`` errors before each of the
        ``count`` measurements that count (one more error would end the analysis), and
        every measurement running until its timeout.
        """
        errors = self.count * self.consecutive_error_limit
        attempts = self.count + errors
        waits = errors * self.wait_after(ERROR) + (self.count - 1) * self.interval
        return self.initial_delay + attempts * self.timeout + waits


def _duration(options: Mapping[str, Any], key: str, default: float) -> float:
    if key not in options:
        return default
    try:
        return parse_duration(options[key])
    except ValueError as exc:
        raise AnalysisError(f"invalid '{key}': {exc}", key) from exc


def _integer(options: Mapping[str, Any], key: str, default: int, *, minimum: int = 0) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AnalysisError(
            f"invalid '{key}': expected an integer of {minimum} or more, got {value!r}", key
        )
    return value


def _conditions(options: Mapping[str, Any], key: str) -> tuple[Condition, ...]:
    value = options.get(key)
    if value is None:
        return ()
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise AnalysisError(
            f"invalid '{key}': expected a condition or a list of conditions, got {value!r}",
            key,
        )
    try:
        return tuple(compile_condition(text) for text in texts)
    except ConditionError as exc:
        raise AnalysisError(str(exc), key) from exc


# -- resolving references ----------------------------------------------------------------


def resolve_analysis(
    ref: str | Mapping[str, Any], analyses: Mapping[str, Mapping[str, Any]]
) -> tuple[str, Mapping[str, Any]]:
    """Return the name and options that ``ref`` denotes.

    A string names a template in ``analyses``; a mapping is an inline analysis, named
    after its provider (``inline probe``). Raises AnalysisError for an unknown template
    (with the closest name, if any) or a value of another type.
    """
    if isinstance(ref, str):
        if ref in analyses:
            return ref, analyses[ref]
        raise AnalysisError(unknown_template_message(ref, analyses))
    if isinstance(ref, Mapping):
        return f"inline {ref.get('provider', 'analysis')}", ref
    raise AnalysisError(
        f"invalid analysis {ref!r}: expected a template name or an analysis mapping"
    )


def unknown_template_message(ref: str, analyses: Mapping[str, Any]) -> str:
    """Build the error message for a template name that ``analyses`` does not define.

    The message suggests the closest defined name, or lists the defined names.
    """
    message = f"analysis template {ref!r} is not defined under 'analyses:'"
    close = difflib.get_close_matches(ref, list(analyses), n=1)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    if analyses:
        return f"{message}; defined templates: {', '.join(sorted(analyses))}"
    return f"{message}, which defines no templates"


def estimate_analysis(ref: str | Mapping[str, Any], plan: Plan) -> float:
    """Return the worst-case duration of the analysis ``ref`` in seconds.

    See :meth:`AnalysisSettings.worst_case_seconds`. Raises AnalysisError when ``ref``
    does not resolve or its options are invalid.
    """
    name, options = resolve_analysis(ref, plan.analyses)
    if is_comparison(options):
        from pipeline.judgerun import estimate_comparison

        return estimate_comparison(options)
    return AnalysisSettings.from_options(name, options).worst_case_seconds()

