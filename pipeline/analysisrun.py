"""Run one analysis: take measurements through its provider, judge each one, and stop at
the first verdict that the analysis reaches.

The verdict rules are described in :mod:`pipeline.analysis`; judging one measurement is
:mod:`pipeline.analysisjudge`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipeline.analysisjudge import clean_values, judge
from pipeline.analysismodel import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisError,
    AnalysisResult,
    Measurement,
    MeasurementRequest,
    MetricProvider,
    ProviderError,
)
from pipeline.analysispolicy import ABORT, PASS, PAUSE, RETRY, Policy
from pipeline.analysissettings import (
    AnalysisSettings,
    analysis_label,
    builtin_args,
    prepare_analysis,
    resolve_analysis,
)
from pipeline.approval import wait_for_approval
from pipeline.conditions import ConditionError, ConditionEvaluationError
from pipeline.context import Interrupted
from pipeline.durations import format_duration
from pipeline.judge import is_comparison
from pipeline.judgerun import run_comparison

if TYPE_CHECKING:
    from pipeline.context import RunContext

__all__ = ["run_analysis"]

logger = logging.getLogger("shipline")

#: How often a wait for a running measurement checks for cancellation, in seconds.
_POLL_SECONDS = 0.05


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
    label = analysis_label(ref)
    builtins = builtin_args(canary_version, stable_version, context)
    try:
        name, options, _given = resolve_analysis(ref, context.plan.analyses)
        label = name
        if is_comparison(options):
            # NOTE: a judge analysis takes no template arguments: its options are used as
            # written.
            return run_comparison(name, options, context, stable_version=stable_version,
                                  canary_version=canary_version)
        settings, options = prepare_analysis(ref, context.plan.analyses, builtins)
        provider = _make_provider(settings, options, context)
    except AnalysisError as exc:
        logger.warning("analysis %r cannot run: %s", label, exc)
        return AnalysisResult(label, ERROR, str(exc), action=ABORT)

    request = MeasurementRequest(
        analysis=name, canary_version=canary_version, stable_version=stable_version,
        endpoint=endpoint, timeout=settings.timeout, args=settings.args,
    )
    logger.info("analysis %r started: provider %s, %d measurement(s) every %s, canary %s, "
                "stable %s", name, settings.provider, settings.count,
                format_duration(settings.interval), canary_version, stable_version or "none")
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
        #: Measurements in a row that ``on_no_data: {retry: N}`` took again.
        self.no_data_retries = 0

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
                return self._result(ERROR, str(exc), action=ABORT)

            if measurement.no_data:
                measurement, abort = self._on_no_data(measurement)
                self._record(measurement)
                if abort:
                    policy = self.settings.policies.on_no_data.describe()
                    return self._result(
                        FAILED, f"no data, and on_no_data ({policy}) aborts: "
                        f"{measurement.message}", action=ABORT,
                    )
            else:
                self.no_data_retries = 0
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
            values = clean_values(raw, self.settings.provider)
        except _Timeout:
            message = f"timed out after {format_duration(self.settings.timeout)}"
            return Measurement(started, {}, ERROR, message)
        except (AnalysisError, Interrupted):
            raise
        except Exception as exc:
            logger.debug("analysis %r: measurement %d raised", request.analysis, number,
                         exc_info=True)
            return Measurement(started, {}, ERROR, _error_text(exc))

        settings = self.settings
        try:
            verdict, message, no_data = judge(
                values, settings.success, settings.failure, settings.args
            )
        except ConditionEvaluationError as exc:
            return Measurement(started, values, ERROR, str(exc))
        except ConditionError as exc:
            raise AnalysisError(str(exc)) from exc
        return Measurement(started, values, verdict, message, no_data=no_data)

    def _on_no_data(self, measurement: Measurement) -> tuple[Measurement, bool]:
        """Apply ``on_no_data`` to a measurement without data; return it and whether to abort.

        See :mod:`pipeline.analysispolicy` for the actions.
        """
        policy = self.settings.policies.on_no_data
        message = measurement.message

        if policy.action == RETRY and self.no_data_retries < policy.retries:
            self.no_data_retries += 1
            note = f"measuring again (on_no_data retry {self.no_data_retries} of {policy.retries})"
            return replace(measurement, message=f"{message}; {note}", counted=False), False
        if policy.action == RETRY:
            self.no_data_retries = 0
            note = f"still no data after {policy.retries} retries: counted as inconclusive"
            return replace(measurement, message=f"{message}; {note}"), False
        if policy.action == PASS:
            note = "counted as successful (on_no_data: pass)"
            return replace(measurement, verdict=SUCCESSFUL, message=f"{message}; {note}"), False
        if policy.action == ABORT:
            return measurement, True
        if policy.action == PAUSE and policy.approval is not None:
            return self._pause_for_no_data(measurement, policy)
        return measurement, False

    def _pause_for_no_data(
        self, measurement: Measurement, policy: Policy
    ) -> tuple[Measurement, bool]:
        assert policy.approval is not None
        self.context.progress(
            f"analysis '{self.settings.name}': no data: {measurement.message}"
        )
        approval = wait_for_approval(policy.approval, self.context)
        message = f"{measurement.message}; {approval.message}"
        if approval.approved:
            return replace(measurement, verdict=SUCCESSFUL, message=message), False
        if policy.default == PASS:
            message += ": counted as successful (default pass)"
            return replace(measurement, verdict=SUCCESSFUL, message=message), False
        return replace(measurement, message=message), True

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
        if measurement.counted:
            self.tally[measurement.verdict] += 1
        if measurement.verdict == ERROR:
            self.consecutive_errors += 1
        else:
            self.consecutive_errors = 0

        line = (f"analysis '{self.settings.name}': measurement {len(self.measurements)} "
                f"({self.counted} of {self.settings.count} counted): {measurement.verdict}: "
                f"{measurement.message}")
        if measurement.verdict == ERROR:
            logger.warning("%s", line)
        # Shown in the terminal too: an analysis can run for minutes.
        self.context.progress(line)

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

    def _result(self, verdict: str, message: str, action: str = "") -> AnalysisResult:
        logger.info("analysis %r %s: %s", self.settings.name, verdict, message)
        return AnalysisResult(self.settings.name, verdict, message, list(self.measurements),
                              action=action)


def _error_text(exc: Exception) -> str:
    """Show a provider's own error as it is, and any other with its class name."""
    if isinstance(exc, ProviderError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

