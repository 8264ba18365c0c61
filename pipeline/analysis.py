"""Analyses: repeated measurements from a metric provider, each judged by conditions.

An analysis is a mapping with a ``provider`` (the plugin that measures) and options. It
is either a template under the pipeline's top-level ``analyses:`` and referred to by
name, or written inline where it is used (a canary ``analysis`` step). A provider is a
:class:`MetricProvider` created through the ``shipline_make_provider`` hook; its JSON
Schema fragment (kind ``analysis``) includes :data:`COMMON_ANALYSIS_PROPERTIES`.

Options common to every provider. Their meaning and defaults follow the metric fields
of Argo Rollouts (``interval``, ``count``, ``initialDelay``, ``failureLimit``,
``inconclusiveLimit``, ``consecutiveErrorLimit``, ``successCondition``,
``failureCondition``), in snake case. The rules below were checked against its
``analysis/analysis.go`` and ``utils/evaluate/evaluate.go``.

``interval`` (duration, default 60 s)
    Time from the end of one measurement to the start of the next. After a measurement
    with an error, the retry waits ``interval`` when the analysis sets it and 10 s
    otherwise, as Argo Rollouts does.
``count`` (integer, default 1)
    Number of measurements to take. Measurements with an error do not count.
``initial_delay`` (duration, default 0)
    Time to wait before the first measurement.
``failure_limit`` (integer, default 0)
    The analysis fails as soon as more measurements than this have failed.
``inconclusive_limit`` (integer, default 0)
    The analysis is inconclusive as soon as more measurements than this are
    inconclusive.
``consecutive_error_limit`` (integer, default 4)
    The analysis ends with an error as soon as more measurements than this in a row
    have had errors. Any measurement without an error resets the run.
``success`` and ``failure`` (condition, or list of conditions)
    See :mod:`pipeline.conditions`. A list of success conditions holds when every one
    of them holds; a list of failure conditions holds when any one of them holds. At
    least one of ``success`` and ``failure`` is required.
``timeout`` (duration, default 60 s)
    The maximum time one measurement may take. A measurement still running then is
    cancelled and counts as an error. Argo Rollouts has no such field: this bound is
    shipline's, so that no measurement can hang a run.

A measurement's verdict follows Argo Rollouts, with "unknown" for missing data:

1. the provider raised, or returned something that is not metric values: ``error``;
2. a failure condition is true: ``failed``;
3. a condition is unknown because a metric it needs has no data: ``inconclusive``;
4. with success conditions only: ``successful`` when they hold, else ``failed``;
5. with failure conditions only: ``successful`` (none of them holds);
6. with both: ``successful`` when the success conditions hold, else ``inconclusive``.

The analysis is judged after every measurement, in this order, and stops at the
first rule that applies: more failed measurements than ``failure_limit``: ``failed``;
more inconclusive ones than ``inconclusive_limit``: ``inconclusive``; more errors in a
row than ``consecutive_error_limit``: ``error``; ``count`` measurements taken:
``successful``. A configuration problem that no retry can fix (an unknown template or
provider, invalid options, a condition naming an unknown metric, a provider raising
:class:`AnalysisError`) ends the analysis at once with ``error``.
"""

from __future__ import annotations

import difflib
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from pipeline import hookimpl
from pipeline.conditions import Condition, ConditionError, compile_condition
from pipeline.context import Interrupted
from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.durations import DURATION_PATTERN, format_duration, parse_duration
from pipeline.errors import ShiplineError
from pipeline.plan import thaw

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Plan

logger = logging.getLogger("shipline")

SUCCESSFUL = "successful"
FAILED = "failed"
INCONCLUSIVE = "inconclusive"
ERROR = "error"

DEFAULT_INTERVAL = 60.0
DEFAULT_COUNT = 1
DEFAULT_INITIAL_DELAY = 0.0
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 0
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_TIMEOUT = 60.0
#: Seconds before retrying after an error when the analysis sets no ``interval``.
ERROR_RETRY_INTERVAL = 10.0

#: How often a wait for a running measurement checks for cancellation, in seconds.
_POLL_SECONDS = 0.05


class AnalysisError(ShiplineError):
    """A problem with an analysis that no retry can fix; ends the analysis with ``error``.

    Providers raise it (from creation or from ``measure``) for options or an
    environment that cannot work, for example a probe without a router endpoint.
    ``key`` names the offending option, when there is one.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One measurement: when it started (Unix seconds), the values and their verdict."""

    time: float
    #: Metric name to value; ``None`` means the metric had no data.
    values: Mapping[str, float | None]
    verdict: str
    message: str


@dataclass
class AnalysisResult:
    """The outcome of one analysis run and every measurement it took."""

    name: str
    #: One of ``successful``, ``failed``, ``inconclusive`` or ``error``.
    verdict: str
    message: str
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == SUCCESSFUL

    def details(self) -> str:
        """Format one line per measurement (UTC time, verdict, message) for reports."""
        lines = []
        for number, measurement in enumerate(self.measurements, start=1):
            stamp = datetime.fromtimestamp(measurement.time, timezone.utc)
            lines.append(
                f"{number}. {stamp:%Y-%m-%dT%H:%M:%SZ} {measurement.verdict}: "
                f"{measurement.message}"
            )
        return "\n".join(lines)

    def to_data(self) -> dict[str, Any]:
        """Return the result as JSON-compatible data, for a step report's ``data``."""
        return {
            "name": self.name,
            "verdict": self.verdict,
            "message": self.message,
            "measurements": [
                {
                    "time": m.time,
                    "values": dict(m.values),
                    "verdict": m.verdict,
                    "message": m.message,
                }
                for m in self.measurements
            ],
        }


# -- providers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasurementRequest:
    """The input of one measurement: which analysis, versions and endpoint."""

    #: Name of the analysis template, or a label for an inline analysis.
    analysis: str
    canary_version: str
    #: ``None`` when nothing was deployed before (a first deploy).
    stable_version: str | None
    #: URL that clients use, from the environment's router; ``None`` when unknown.
    endpoint: str | None
    #: Measurement number, from 1, counting measurements that had errors too.
    number: int = 1
    #: Seconds this measurement may take before it is cancelled.
    timeout: float = DEFAULT_TIMEOUT


class MetricProvider(Protocol):
    """Takes measurements for one analysis run; created by ``shipline_make_provider``.

    A provider may also define ``close()``, which is called once when the analysis ends.
    """

    def measure(
        self, request: MeasurementRequest, cancel: threading.Event
    ) -> Mapping[str, float | None]:
        """Measure and return metric values by name; ``None`` for a metric without data.

        Runs in a worker thread. ``cancel`` is set when the run is interrupted or the
        measurement's timeout passes: stop soon after, by returning or raising. Raise
        :class:`AnalysisError` for a problem that a retry cannot fix; any other
        exception makes this one measurement an ``error``.
        """
        ...


# -- options -----------------------------------------------------------------------------

_DURATION_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "minimum": 0,
    "pattern": DURATION_PATTERN,
}

_CONDITIONS_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
}

#: JSON Schema properties of the options every analysis provider accepts. A provider's
#: fragment includes them: ``{"properties": {**COMMON_ANALYSIS_PROPERTIES, ...}}``.
COMMON_ANALYSIS_PROPERTIES: dict[str, Any] = {
    "interval": {
        **_DURATION_SCHEMA,
        "title": "Interval",
        "description": "Time from the end of one measurement to the start of the next "
        "(default 60s). After an error the retry waits this long, or 10s when unset.",
    },
    "count": {
        "type": "integer",
        "minimum": 1,
        "title": "Count",
        "description": "Number of measurements to take (default 1). Measurements with "
        "an error do not count.",
    },
    "initial_delay": {
        **_DURATION_SCHEMA,
        "title": "Initial delay",
        "description": "Time to wait before the first measurement (default 0).",
    },
    "failure_limit": {
        "type": "integer",
        "minimum": 0,
        "title": "Failure limit",
        "description": "The analysis fails when more measurements than this fail (default 0).",
    },
    "inconclusive_limit": {
        "type": "integer",
        "minimum": 0,
        "title": "Inconclusive limit",
        "description": "The analysis is inconclusive when more measurements than this "
        "are inconclusive (default 0).",
    },
    "consecutive_error_limit": {
        "type": "integer",
        "minimum": 0,
        "title": "Consecutive error limit",
        "description": "The analysis ends with an error when more measurements than "
        "this in a row have errors (default 4).",
    },
    "success": {
        **_CONDITIONS_SCHEMA,
        "title": "Success condition",
        "description": "A condition such as `success_rate >= 0.99`, or a list of them "
        "that must all hold, for a measurement to be successful.",
        "examples": ["success_rate >= 0.99", ["success_rate >= 0.99", "p95_ms <= 300"]],
    },
    "failure": {
        **_CONDITIONS_SCHEMA,
        "title": "Failure condition",
        "description": "A condition such as `error_rate > 0.05`, or a list of them of "
        "which any one makes a measurement fail.",
        "examples": ["error_rate > 0.05"],
    },
    "timeout": {
        **_DURATION_SCHEMA,
        "title": "Timeout",
        "description": "The longest one measurement may take (default 60s); a "
        "measurement still running then counts as an error.",
    },
}

_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"

#: JSON Schema of a value that names or contains an analysis, such as a canary step's
#: ``analysis``: a template name, or an inline analysis. The common options of an inline
#: analysis are checked here; its provider's own options are checked by this module's
#: ``shipline_check_plan`` against the provider's fragment.
ANALYSIS_REF_SCHEMA: dict[str, Any] = {
    "title": "Analysis",
    "description": "The name of a template under `analyses:`, or an inline analysis "
    "with a `provider` and its options.",
    "oneOf": [
        {
            "type": "string",
            "pattern": _NAME_PATTERN,
            "title": "Template name",
            "description": "The name of an analysis template under `analyses:`.",
        },
        {
            "type": "object",
            "required": ["provider"],
            "title": "Inline analysis",
            "description": "An analysis written in place: `provider` and its options.",
            "properties": {
                "provider": {
                    "type": "string",
                    "title": "Provider",
                    "description": "Name of the analysis plugin, for example `probe`.",
                },
                **COMMON_ANALYSIS_PROPERTIES,
            },
        },
    ],
}


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
        raise AnalysisError(_unknown_template_message(ref, analyses))
    if isinstance(ref, Mapping):
        return f"inline {ref.get('provider', 'analysis')}", ref
    raise AnalysisError(
        f"invalid analysis {ref!r}: expected a template name or an analysis mapping"
    )


def _unknown_template_message(ref: str, analyses: Mapping[str, Any]) -> str:
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
    return AnalysisSettings.from_options(name, options).worst_case_seconds()


# -- judging one measurement -------------------------------------------------------------


def judge(
    values: Mapping[str, float | None],
    success: Sequence[Condition],
    failure: Sequence[Condition],
) -> tuple[str, str]:
    """Return the verdict and message of a measurement with ``values``.

    Applies the rules in the module docstring. Raises ConditionError when a condition
    reads a metric that ``values`` lacks.
    """
    failed, failure_decider = _any_true(failure, values)
    passed, success_decider = _all_true(success, values)
    metrics = _show_values(values, success, failure)

    if failed:
        return FAILED, f"failure condition {failure_decider} is true ({metrics})"
    if failed is None:
        return INCONCLUSIVE, f"no data for failure condition {failure_decider} ({metrics})"
    if passed is None:
        return INCONCLUSIVE, f"no data for success condition {success_decider} ({metrics})"
    if not success:
        return SUCCESSFUL, f"no failure condition is true ({metrics})"
    if passed and len(success) > 1:
        return SUCCESSFUL, f"success conditions {success_decider} are true ({metrics})"
    if passed:
        return SUCCESSFUL, f"success condition {success_decider} is true ({metrics})"
    if not failure:
        return FAILED, f"success condition {success_decider} is false ({metrics})"
    return INCONCLUSIVE, (
        f"success condition {success_decider} is false and no failure condition is true "
        f"({metrics})"
    )


def _all_true(
    conditions: Sequence[Condition], values: Mapping[str, float | None]
) -> tuple[bool | None, str]:
    """Kleene ``and`` over ``conditions``, with the quoted condition that decided it."""
    results = [(condition.evaluate(values), repr(condition.text)) for condition in conditions]
    for decisive in (False, None):
        for result, text in results:
            if result is decisive:
                return decisive, text
    return True, " and ".join(text for _, text in results)


def _any_true(
    conditions: Sequence[Condition], values: Mapping[str, float | None]
) -> tuple[bool | None, str]:
    """Kleene ``or`` over ``conditions``, with the quoted condition that decided it."""
    results = [(condition.evaluate(values), repr(condition.text)) for condition in conditions]
    for decisive in (True, None):
        for result, text in results:
            if result is decisive:
                return decisive, text
    return False, ""


def _show_values(
    values: Mapping[str, float | None],
    success: Sequence[Condition],
    failure: Sequence[Condition],
) -> str:
    names = sorted({name for condition in (*success, *failure) for name in condition.names})
    return ", ".join(f"{name}={_show_number(values.get(name))}" for name in names)


def _show_number(value: float | None) -> str:
    return "no data" if value is None else f"{value:g}"


# -- running -----------------------------------------------------------------------------


class _Timeout(Exception):
    """A measurement ran past the analysis's ``timeout``."""


def run_analysis(
    ref: str | Mapping[str, Any],
    context: RunContext,
    *,
    stable_version: str | None,
    canary_version: str,
    endpoint: str | None,
) -> AnalysisResult:
    """Run the analysis ``ref`` (template name or inline mapping) to its verdict.

    Blocks for the whole analysis: waits go through ``context.sleep``, so a
    :class:`~pipeline.clock.FakeClock` makes them instant, while each measurement's
    ``timeout`` is real time. Configuration problems and failing measurements are
    returned as a result with the verdict ``error``. Raises
    :class:`~pipeline.context.Interrupted` when ``context.cancel`` is set, and lets an
    unexpected exception from ``shipline_make_provider`` (a plugin bug) propagate.
    """
    label = ref if isinstance(ref, str) else "inline analysis"
    try:
        name, options = resolve_analysis(ref, context.plan.analyses)
        label = name
        settings = AnalysisSettings.from_options(name, options)
        provider = _make_provider(settings, options, context)
    except AnalysisError as exc:
        logger.warning("analysis %r cannot run: %s", label, exc)
        return AnalysisResult(label, ERROR, str(exc))

    request = MeasurementRequest(
        analysis=name, canary_version=canary_version, stable_version=stable_version,
        endpoint=endpoint, timeout=settings.timeout,
    )
    try:
        return _AnalysisRun(settings, provider, request, context).run()
    finally:
        _close(provider, name)


def _make_provider(
    settings: AnalysisSettings, options: Mapping[str, Any], context: RunContext
) -> MetricProvider:
    provider: MetricProvider | None = context.hook.shipline_make_provider(
        name=settings.provider, options=options, context=context
    )
    if provider is None:
        raise AnalysisError(
            f"analysis {settings.name!r}: no plugin provides analysis provider "
            f"{settings.provider!r}"
        )
    return provider


def _close(provider: MetricProvider, name: str) -> None:
    close = getattr(provider, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        logger.exception("analysis %r: closing its provider failed", name)


class _AnalysisRun:
    """The measurement loop of one analysis, and its tallies."""

    def __init__(
        self,
        settings: AnalysisSettings,
        provider: MetricProvider,
        request: MeasurementRequest,
        context: RunContext,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.request = request
        self.context = context
        self.measurements: list[Measurement] = []
        self.tally = {SUCCESSFUL: 0, FAILED: 0, INCONCLUSIVE: 0, ERROR: 0}
        self.consecutive_errors = 0

    @property
    def counted(self) -> int:
        return self.tally[SUCCESSFUL] + self.tally[FAILED] + self.tally[INCONCLUSIVE]

    def run(self) -> AnalysisResult:
        self._wait(self.settings.initial_delay)

        while True:
            self.context.check_cancelled()
            try:
                measurement = self._measure(len(self.measurements) + 1)
            except AnalysisError as exc:
                self._record(Measurement(self.context.clock.time(), {}, ERROR, str(exc)))
                return self._result(ERROR, str(exc))
            self._record(measurement)

            verdict, message = self._assess()
            if verdict is not None:
                return self._result(verdict, message)
            self._wait(self.settings.wait_after(measurement.verdict))

    def _measure(self, number: int) -> Measurement:
        started = self.context.clock.time()
        request = replace(self.request, number=number)
        try:
            raw = self._call_provider(request)
            values = _clean_values(raw, self.settings.provider)
        except _Timeout:
            message = f"timed out after {format_duration(self.settings.timeout)}"
            return Measurement(started, {}, ERROR, message)
        except (AnalysisError, Interrupted):
            raise
        except Exception as exc:
            logger.debug("analysis %r: measurement %d raised", request.analysis, number,
                         exc_info=True)
            return Measurement(started, {}, ERROR, f"{type(exc).__name__}: {exc}")

        try:
            verdict, message = judge(values, self.settings.success, self.settings.failure)
        except ConditionError as exc:
            raise AnalysisError(str(exc)) from exc
        return Measurement(started, values, verdict, message)

    def _call_provider(self, request: MeasurementRequest) -> Mapping[str, Any]:
        """Run ``measure`` in a worker thread, bounded by the timeout and the run's cancel.

        The worker is a daemon thread: if the provider ignores its cancel event, the
        analysis still goes on, and the thread ends with the process at the latest.
        """
        stop = threading.Event()
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["values"] = self.provider.measure(request, stop)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(
            target=work, name=f"analysis {request.analysis} #{request.number}", daemon=True
        )
        worker.start()
        deadline = time.monotonic() + request.timeout
        while not done.wait(max(0.0, min(_POLL_SECONDS, deadline - time.monotonic()))):
            if self.context.cancelled:
                stop.set()
                raise Interrupted("interrupted")
            if time.monotonic() >= deadline:
                stop.set()
                raise _Timeout

        if "error" in outcome:
            raise outcome["error"]
        values: Mapping[str, Any] = outcome["values"]
        return values

    def _record(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        self.tally[measurement.verdict] += 1
        if measurement.verdict == ERROR:
            self.consecutive_errors += 1
        else:
            self.consecutive_errors = 0

        level = logging.WARNING if measurement.verdict == ERROR else logging.INFO
        logger.log(
            level,
            "analysis %r: measurement %d (%d of %d counted): %s: %s",
            self.settings.name, len(self.measurements), self.counted, self.settings.count,
            measurement.verdict, measurement.message,
        )

    def _assess(self) -> tuple[str | None, str]:
        """Return the analysis verdict once one is reached, else ``None``."""
        settings = self.settings
        last = self.measurements[-1].message
        failed = self.tally[FAILED]
        inconclusive = self.tally[INCONCLUSIVE]

        if failed > settings.failure_limit:
            return FAILED, (
                f"{_plural(failed, 'measurement')} failed, more than failure_limit "
                f"{settings.failure_limit}; last: {last}"
            )
        if inconclusive > settings.inconclusive_limit:
            return INCONCLUSIVE, (
                f"{_plural(inconclusive, 'measurement')} inconclusive, more than "
                f"inconclusive_limit {settings.inconclusive_limit}; last: {last}"
            )
        if self.consecutive_errors > settings.consecutive_error_limit:
            return ERROR, (
                f"{_plural(self.consecutive_errors, 'measurement')} in a row had errors, "
                f"more than consecutive_error_limit {settings.consecutive_error_limit}; "
                f"last: {last}"
            )
        if self.counted >= settings.count:
            taken = _plural(len(self.measurements), "measurement")
            return SUCCESSFUL, f"{taken} taken: {self._summary()}"
        return None, ""

    def _summary(self) -> str:
        parts = [
            f"{self.tally[verdict]} {verdict}"
            for verdict in (SUCCESSFUL, FAILED, INCONCLUSIVE)
            if self.tally[verdict]
        ]
        if self.tally[ERROR]:
            parts.append(_plural(self.tally[ERROR], "error"))
        return ", ".join(parts)

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and not self.context.sleep(seconds):
            raise Interrupted("interrupted")

    def _result(self, verdict: str, message: str) -> AnalysisResult:
        logger.info("analysis %r %s: %s", self.settings.name, verdict, message)
        return AnalysisResult(self.settings.name, verdict, message, list(self.measurements))


def _clean_values(raw: Any, provider: str) -> dict[str, float | None]:
    """Check a provider's return value; NaN becomes ``None`` (no data).

    Raises TypeError, which makes the measurement an ``error``, for anything but a
    mapping from names to numbers or ``None``.
    """
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"provider {provider!r} returned {type(raw).__name__}, expected a mapping of "
            f"metric values"
        )
    values: dict[str, float | None] = {}
    for name, value in raw.items():
        if value is None:
            values[str(name)] = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[str(name)] = None if math.isnan(value) else float(value)
        else:
            raise TypeError(
                f"provider {provider!r} returned {value!r} for metric {name!r}, expected "
                f"a number or no data"
            )
    return values


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# -- validate-time checks ----------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisUse:
    """One analysis in a plan: a template, or a reference or inline analysis in a step."""

    #: The template name (a string) or the inline mapping, as written.
    ref: str | Mapping[str, Any]
    #: Document path of the value, and the mark of the step that contains it.
    path: DocPath
    mark: Mark | None = None
    #: True for the definition of a template under ``analyses:``, not a use of it.
    is_template: bool = False


def iter_analysis_uses(plan: Plan) -> Iterator[AnalysisUse]:
    """Yield every template under ``analyses:``, then every ``analysis`` of a canary step.

    Canary steps are deploy steps with strategy ``canary``; their ``steps`` option is a
    list of mappings, and those with an ``analysis`` key hold a reference.
    """
    for name in plan.analyses:
        yield AnalysisUse(name, ("analyses", name), is_template=True)

    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "deploy" or step.type != "canary":
                continue
            canary_steps = step.options.get("steps")
            if not isinstance(canary_steps, Sequence):
                continue
            for index, item in enumerate(canary_steps):
                if isinstance(item, Mapping) and "analysis" in item:
                    path = (*step.path, "deploy", "steps", index, "analysis")
                    yield AnalysisUse(item["analysis"], path, step.mark)


def resolve_use(use: AnalysisUse, plan: Plan) -> tuple[str, Mapping[str, Any], DocPath] | None:
    """Return the name, options and document path of the analysis that ``use`` denotes.

    For a template reference the path is the template's. Returns ``None`` when the
    reference does not resolve (:func:`check_analyses` reports that).
    """
    if isinstance(use.ref, str):
        if use.ref not in plan.analyses:
            return None
        return use.ref, plan.analyses[use.ref], ("analyses", use.ref)
    name, options = resolve_analysis(use.ref, plan.analyses)
    return name, options, use.path


def check_analyses(plan: Plan, config: Config) -> list[Diagnostic]:
    """Find what the schema cannot: unknown template names, conditions, provider options.

    Templates are checked once each, where they are defined; references to them only
    for their name. Inline analyses are checked where they are written, including their
    provider's options against the provider's schema fragment.
    """
    diagnostics: list[Diagnostic] = []
    inline: list[AnalysisUse] = []
    for use in iter_analysis_uses(plan):
        if isinstance(use.ref, str) and not use.is_template:
            if use.ref not in plan.analyses:
                message = _unknown_template_message(use.ref, plan.analyses)
                diagnostics.append(Diagnostic(message, use.mark, use.path))
            continue
        if not isinstance(use.ref, str):
            inline.append(use)
        resolved = resolve_use(use, plan)
        if resolved is not None:
            diagnostics.extend(_check_settings(*resolved, use.mark))

    if inline:
        diagnostics.extend(_check_inline_options(inline, config))
    return diagnostics


def _check_settings(
    name: str, options: Mapping[str, Any], path: DocPath, mark: Mark | None
) -> list[Diagnostic]:
    try:
        AnalysisSettings.from_options(name, options)
    except AnalysisError as exc:
        where = (*path, exc.key) if exc.key else path
        return [Diagnostic(str(exc), mark, where)]
    return []


def _check_inline_options(uses: Sequence[AnalysisUse], config: Config) -> list[Diagnostic]:
    """Validate inline analyses against the complete ``analysis`` definition.

    The step schema that contains an inline analysis can only check the common options,
    because a fragment cannot refer to the definitions that other plugins add.
    """
    from jsonschema import Draft202012Validator

    from pipeline.planning import full_schema

    schema, _ = full_schema(config)
    definition = schema["$defs"]["analysis"]
    validator = Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/analysis"})

    diagnostics = []
    for use in uses:
        instance = thaw(use.ref)
        for error in validator.iter_errors(instance):
            if error.validator == "unevaluatedProperties":
                diagnostics.extend(_unknown_keys(instance, definition, use))
            else:
                path = (*use.path, *error.absolute_path)
                diagnostics.append(Diagnostic(error.message, use.mark, path))
    return diagnostics


def _unknown_keys(
    instance: Mapping[str, Any], definition: Mapping[str, Any], use: AnalysisUse
) -> list[Diagnostic]:
    """Report the keys of ``instance`` that neither the core nor its provider declares.

    ``definition`` is the built ``analysis`` definition, in which each provider's
    fragment is the ``then`` of an ``allOf`` branch whose ``if`` matches the provider.
    Nothing is reported for an unknown provider: that error is reported on its own.
    """
    declared = set(definition.get("properties", {}))
    provider_known = False
    for branch in definition.get("allOf", []):
        selector = branch.get("if", {}).get("properties", {}).get("provider", {})
        if selector.get("const") == instance.get("provider"):
            declared |= set(branch.get("then", {}).get("properties", {}))
            provider_known = True
    if not provider_known:
        return []

    diagnostics = []
    for key in sorted(set(instance) - declared):
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, sorted(declared - set(instance)), n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
        diagnostics.append(Diagnostic(message, use.mark, use.path, hint))
    return diagnostics


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    return check_analyses(plan, config)
