"""The common options of one analysis: where they come from (a template under ``analyses:``
or an inline mapping), their parsed form, and the worst-case duration they allow.

The options and their defaults are described in :mod:`pipeline.analysis`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.analysisargs import bind_args
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
from pipeline.analysispolicy import PAUSE, POLICY_KEYS, RETRY, Policies
from pipeline.conditions import Condition, ConditionError, compile_condition
from pipeline.durations import parse_duration
from pipeline.judge import is_comparison

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan

__all__ = [
    "PLACEHOLDER_BUILTINS",
    "AnalysisSettings",
    "analysis_label",
    "builtin_args",
    "estimate_analysis",
    "estimate_analysis_or_zero",
    "prepare_analysis",
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
    policies: Policies = field(
        default_factory=lambda: Policies.from_options("analysis", {})
    )
    #: Argument values, built-in ones included, which conditions read as ``args``.
    args: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], args: Mapping[str, str] | None = None
    ) -> AnalysisSettings:
        """Parse the common options of ``options``; other keys are the provider's.

        ``options`` have their arguments substituted already (see
        :func:`prepare_analysis`), and ``args`` are the argument values. Raises
        AnalysisError, with ``key`` set, for a missing provider, a value of the wrong
        type or range, an invalid condition or policy, or no condition at all.
        """
        provider = options.get("provider")
        if not isinstance(provider, str) or not provider:
            raise AnalysisError(f"analysis {name!r} has no 'provider'", "provider")

        success = _conditions(options, "success")
        failure = _conditions(options, "failure")
        if not success and not failure:
            raise AnalysisError(
                f"analysis {name!r} has no 'success' or 'failure' condition, so it could "
                f"never fail: add one, for example success: \"result < 0.01\""
            )

        _check_condition_args(name, success, failure, args)
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
            policies=Policies.from_options(name, options),
            args=dict(args or {}),
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
        ``count`` measurements that count (one more error would end the analysis),
        every measurement running until its timeout, every ``on_no_data`` retry used
        before each counted measurement, every ``retry`` of the analysis used, and then
        the longest pause of a policy.
        """
        no_data = self.policies.on_no_data
        retried = self.count * no_data.retries if no_data.action == RETRY else 0
        errors = self.count * self.consecutive_error_limit
        attempts = self.count + errors + retried
        waits = (errors * self.wait_after(ERROR)
                 + (self.count - 1 + retried) * self.interval)
        if no_data.action == PAUSE and no_data.approval is not None:
            waits += self.count * no_data.approval.timeout
        once = self.initial_delay + attempts * self.timeout + waits

        runs = 1 + max(
            (p.retries for p in (self.policies.on_failure, self.policies.on_inconclusive)
             if p.action == RETRY),
            default=0,
        )
        return runs * once + self.policies.worst_case_seconds()


def _check_condition_args(
    name: str, success: tuple[Condition, ...], failure: tuple[Condition, ...],
    args: Mapping[str, str] | None,
) -> None:
    """Raise AnalysisError for a condition that reads ``args.NAME`` that is not defined.

    Skipped when ``args`` is ``None``: the options were parsed without binding them.
    """
    if args is None:
        return
    for key, conditions in (("success", success), ("failure", failure)):
        for condition in conditions:
            unknown = sorted(condition.arg_names - set(args))
            if unknown:
                raise AnalysisError(
                    f"analysis {name!r}: condition {condition.text!r} reads args.{unknown[0]}, "
                    f"which is not declared under 'args:'", key)


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
) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """Return the name, options and given arguments of the analysis that ``ref`` denotes.

    A string names a template in ``analyses``. A mapping with ``template`` names one
    too and may add ``args`` and policies, which override the template's. Any other
    mapping is an inline analysis, named after its provider (``inline probe``). Raises
    AnalysisError for an unknown template (with the closest name, if any) or a value of
    another type.
    """
    if isinstance(ref, str):
        return ref, _template(ref, analyses), {}
    if isinstance(ref, Mapping) and "template" in ref:
        name = ref["template"]
        if not isinstance(name, str):
            raise AnalysisError(f"invalid template name {name!r}: expected a string",
                                "template")
        overrides = {key: ref[key] for key in POLICY_KEYS if key in ref}
        args = ref.get("args") or {}
        if not isinstance(args, Mapping):
            raise AnalysisError(
                f"invalid 'args' for template {name!r}: expected a mapping of names to "
                f"values, got {args!r}",
                "args",
            )
        return name, {**_template(name, analyses), **overrides}, args
    if isinstance(ref, Mapping):
        return f"inline {ref.get('provider', 'analysis')}", ref, {}
    raise AnalysisError(
        f"invalid analysis {ref!r}: expected a template name or an analysis mapping"
    )


def analysis_label(ref: Any) -> str:
    """Return a name for ``ref`` in messages, before it is known to resolve."""
    if isinstance(ref, str):
        return ref
    if isinstance(ref, Mapping) and isinstance(ref.get("template"), str):
        return str(ref["template"])
    return "inline analysis"


def prepare_analysis(
    ref: str | Mapping[str, Any],
    analyses: Mapping[str, Mapping[str, Any]],
    builtins: Mapping[str, str],
) -> tuple[AnalysisSettings, Mapping[str, Any]]:
    """Resolve ``ref``, bind its arguments and parse its settings.

    Returns the settings and the options with arguments substituted, which go to the
    provider. ``builtins`` are the values of the built-in arguments. Raises
    AnalysisError for anything that makes the analysis unusable.
    """
    name, options, given = resolve_analysis(ref, analyses)
    bound, args = bind_args(name, options, given, builtins)
    return AnalysisSettings.from_options(name, bound, args), bound


def _template(name: str, analyses: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    if name in analyses:
        return analyses[name]
    raise AnalysisError(unknown_template_message(name, analyses))


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
    _name, options, _given = resolve_analysis(ref, plan.analyses)
    if is_comparison(options):
        from pipeline.judgerun import estimate_comparison

        return estimate_comparison(options)
    settings, _ = prepare_analysis(ref, plan.analyses, PLACEHOLDER_BUILTINS)
    return settings.worst_case_seconds()


def builtin_args(
    canary_version: str, stable_version: str | None, context: RunContext
) -> dict[str, str]:
    """Return the values of the built-in arguments for one analysis run."""
    return {
        "canary_version": canary_version,
        "stable_version": stable_version or "",
        "environment": context.environment.name if context.environment else "",
    }


def estimate_analysis_or_zero(ref: str | Mapping[str, Any], plan: Plan) -> float:
    """Return :func:`estimate_analysis`, or 0 when ``ref`` does not resolve or its options
    are invalid, because ``shipline validate`` reports those."""
    try:
        return estimate_analysis(ref, plan)
    except AnalysisError:
        return 0.0


#: Values of the built-in arguments when no run supplies them: at validation and in
#: estimates.
PLACEHOLDER_BUILTINS = {"canary_version": "", "stable_version": "", "environment": ""}

