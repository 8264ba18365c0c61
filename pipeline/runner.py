"""The runner: walks the plan stage by stage, dispatches steps to hooks, rolls back.

Each step runs in a worker thread so that the runner can enforce the step's timeout and
react to SIGINT/SIGTERM while the step waits. Cancellation is cooperative: the runner
sets ``context.cancel``, gives the step :data:`CANCEL_GRACE` seconds to stop, and then
rolls back whatever the step registered, whether or not the thread has returned.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from pipeline.cancel import CANCEL_GRACE
from pipeline.config import Config
from pipeline.context import Interrupted, RollbackFailed, RunContext
from pipeline.durations import format_duration
from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode, most_severe
from pipeline.notifications import NotificationCenter
from pipeline.plan import Plan, Stage, Step, When
from pipeline.report import Outcome, StepReport

logger = logging.getLogger("shipline")



@dataclass
class StageResult:
    """The result of one stage: its outcome, and the reports of its steps and rollbacks."""

    stage: Stage
    outcome: Outcome
    reports: list[StepReport] = field(default_factory=list)
    skipped_reason: str | None = None
    #: Seconds.
    duration: float = 0.0
    #: The stage that failed, this one or one it depends on directly or through others;
    #: ``None`` when none did. Drives ``when: on_failure`` and skip reasons.
    failed_stage: str | None = None


@dataclass
class RunResult:
    """The result of the whole run."""

    plan: Plan
    stages: list[StageResult]
    exit_code: ExitCode
    #: Seconds.
    duration: float
    interrupted: bool = False
    #: Problems that did not fail the run, one masked line each: failed notifications.
    warnings: list[str] = field(default_factory=list)

    @property
    def reports(self) -> list[StepReport]:
        return [report for stage in self.stages for report in stage.reports]


class Runner:
    """Runs one plan once. Not reusable."""

    def __init__(self, plan: Plan, config: Config) -> None:
        self.plan = plan
        self.config = config
        self.context = RunContext(plan=plan, config=config)
        self.notifications = NotificationCenter(plan, config, self.context)
        self.context.on_paused = self.notifications.paused
        self._interrupted = threading.Event()
        self._interrupt_reason = ""
        self._interrupt_logged = False
        self._rolling_back = threading.Event()
        self._signals_during_rollback = 0
        self._wake = threading.Event()
        self._started = 0.0

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def interrupt(self, reason: str = "interrupted") -> None:
        """Stop starting new steps and cancel the running one. Safe from a signal handler.

        During a rollback the signal is counted but cancels nothing: a rollback stopped
        halfway leaves the environment in a worse state than either version. It only
        sets flags, because logging from a signal handler can deadlock on the logging
        lock; :meth:`_report_signals` logs what happened later.
        """
        self._interrupt_reason = self._interrupt_reason or reason
        self._interrupted.set()
        if self._rolling_back.is_set():
            self._signals_during_rollback += 1
            return
        self.context.cancel.set()
        self._wake.set()

    def _report_signals(self) -> None:
        """Log the interrupt once, and any signal that arrived during a rollback."""
        if self.interrupted and not self._interrupt_logged:
            self._interrupt_logged = True
            logger.warning("run %s interrupted (%s): rolling back the change in progress",
                           self.plan.name, self._interrupt_reason)
        if self._signals_during_rollback:
            logger.warning("%d more signal(s) arrived during the rollback, which was "
                           "finished first; SIGKILL stops shipline without rolling back",
                           self._signals_during_rollback)
            self._signals_during_rollback = 0

    def run(self) -> RunResult:
        hook = self.config.hook
        self._started = self.config.clock.monotonic()
        self.notifications.start(self._started)
        logger.info("run of pipeline %s started", self.plan.name)

        with self._signals_handled():
            hook.shipline_run_start(plan=self.plan, context=self.context)
            self._notify("started", message=f"{self.plan.name}: run started")
            results: dict[str, StageResult] = {}
            try:
                for stage in self.plan.stages:
                    results[stage.name] = self._run_or_skip(stage, results)
            finally:
                self.context.close_targets()

        stages = list(results.values())
        exit_code = self._finish_notifications(self._exit_code(stages))
        result = RunResult(
            plan=self.plan,
            stages=stages,
            exit_code=exit_code,
            duration=self.config.clock.monotonic() - self._started,
            interrupted=self.interrupted,
            warnings=list(self.notifications.warnings),
        )
        hook.shipline_run_finish(result=result, context=self.context)
        logger.info("run of pipeline %s finished with exit code %d", self.plan.name, exit_code)
        return result

    # -- stages ---------------------------------------------------------------------------

    def _run_or_skip(self, stage: Stage, results: dict[str, StageResult]) -> StageResult:
        reason, failed_stage = self._skip_reason(stage, results)
        if reason is not None:
            return self._skip_stage(stage, reason, failed_stage)
        result = self._run_stage(stage)
        result.failed_stage = result.failed_stage or failed_stage
        return result

    def _skip_reason(
        self, stage: Stage, results: dict[str, StageResult]
    ) -> tuple[str | None, str | None]:
        """Return why ``stage`` must not run (or ``None``) and the failed stage upstream.

        A stage without ``needs:`` depends on the stage before it in the plan. A failure
        stays upstream through stages that ran anyway (``always``, ``on_failure``), so
        ``on_success`` stages after them are skipped too.
        """
        if self.interrupted:
            self._report_signals()
            return "the run was interrupted", None
        needs = stage.needs or self._previous_stage(stage)
        upstream = [results[name] for name in needs if name in results]
        failed = [r for r in upstream if r.failed_stage is not None]
        origin = failed[0].failed_stage if failed else None
        if stage.when is When.ALWAYS:
            return None, origin
        if stage.when is When.ON_FAILURE:
            if failed:
                return None, origin
            return "'when: on_failure' and no stage it depends on failed", None
        if failed:
            need = failed[0].stage.name
            if need == origin:
                return f"needs '{need}', which failed", origin
            return f"needs '{need}', which comes after stage '{origin}' failed", origin
        skipped = [r.stage.name for r in upstream if r.outcome is Outcome.SKIPPED]
        if skipped and stage.needs:
            return f"needs '{skipped[0]}', which was skipped", None
        return None, None

    def _previous_stage(self, stage: Stage) -> tuple[str, ...]:
        names = [s.name for s in self.plan.stages]
        index = names.index(stage.name)
        return (names[index - 1],) if index > 0 else ()

    def _skip_stage(self, stage: Stage, reason: str, failed_stage: str | None) -> StageResult:
        reports = [self._skipped(step, reason) for step in stage.steps]
        result = StageResult(
            stage, Outcome.SKIPPED, reports, skipped_reason=reason, failed_stage=failed_stage,
        )
        self.context.stage = stage
        for report in reports:
            self._publish(report)
        self.config.hook.shipline_stage_finish(stage=stage, result=result, context=self.context)
        return result

    def _run_stage(self, stage: Stage) -> StageResult:
        context = self.context
        context.stage = stage
        context.environment = (
            self.plan.environments[stage.environment] if stage.environment else None
        )
        started = self.config.clock.monotonic()
        logger.info("stage %s started", stage.name)
        self.config.hook.shipline_stage_start(stage=stage, context=context)

        deadline = None if stage.timeout is None else time.monotonic() + stage.timeout
        reports: list[StepReport] = []
        failed_step: StepReport | None = None
        for step in stage.steps:
            if self.interrupted:
                report = self._skipped(step, "the run was interrupted")
            elif failed_step is not None:
                report = self._skipped(step, f"step '{failed_step.name}' failed")
            else:
                report = self._run_step(step, stage, deadline)
                if report.outcome.is_failure and not step.continue_on_error:
                    failed_step = report
            reports.append(report)
            self._publish(report)
            self.notifications.step_finished(step, report)
            if report.outcome.is_failure and step.continue_on_error:
                # The stage goes on, but what the failed step changed is undone now.
                reports += self._roll_back(step)

        if failed_step is not None or self.interrupted:
            reports += self._roll_back()
        else:
            context.take_rollbacks()

        outcome = self._stage_outcome(reports)
        result = StageResult(
            stage, outcome, reports,
            duration=self.config.clock.monotonic() - started,
            failed_stage=stage.name if outcome.is_failure else None,
        )
        logger.info("stage %s finished: %s", stage.name, outcome.value)
        self.config.hook.shipline_stage_finish(stage=stage, result=result, context=context)
        event = "stage_failed" if outcome.is_failure else "stage_succeeded"
        self._notify(event, stage=stage, message=f"stage {stage.name}: {outcome.value}",
                     outcome=outcome.value)
        return result

    @staticmethod
    def _stage_outcome(reports: list[StepReport]) -> Outcome:
        counted = [r.outcome for r in reports if r.outcome is not Outcome.SKIPPED]
        if not counted:
            return Outcome.SKIPPED
        worst = most_severe(o.exit_code for o in counted)
        for outcome in counted:
            if outcome.exit_code == worst and outcome.is_failure:
                return outcome
        return Outcome.PASSED

    # -- steps ----------------------------------------------------------------------------

    def _run_step(self, step: Step, stage: Stage, deadline: float | None) -> StepReport:
        """Run one step within its own timeout and what is left of the stage's."""
        context = self.context
        context.cancel.clear()
        if self.interrupted:
            context.cancel.set()
        if step.kind == "deploy":
            context.version = str(step.options.get("version", "")) or None
            if context.environment is not None:
                context.changed_environments.add(context.environment.name)

        logger.info("step %s started (%s '%s', plugin %s)", step.id, step.kind, step.type,
                    step.plugin)
        self.config.hook.shipline_step_start(step=step, context=context)
        started_wall = self.config.clock.time()
        started = time.monotonic()
        timeout, timeout_message = self._step_timeout(step, stage, deadline, started)
        report, timed_out = self._call_in_thread(step, timeout)
        duration = time.monotonic() - started

        if timed_out and not self.interrupted:
            report = self._timed_out(step, report, timeout_message)
        elif self.interrupted and not report.outcome.is_failure:
            report = self._report(step, Outcome.INTERRUPTED, "interrupted")
        blocking = step.kind in ("scan", "gate") and not context.changed_environments
        if report.outcome is Outcome.FAILED and blocking:
            report.outcome = Outcome.BLOCKED

        report.duration = report.duration or duration
        report.started_at = report.started_at or started_wall
        logger.info("step %s finished: %s", step.id, report.outcome.value)
        return report

    @staticmethod
    def _step_timeout(
        step: Step, stage: Stage, deadline: float | None, now: float
    ) -> tuple[float | None, str]:
        """Return the seconds the step may run and the message used if it runs out."""
        step_message = f"timed out after {format_duration(step.timeout or 0)}"
        if deadline is None:
            return step.timeout, step_message
        remaining = max(deadline - now, 0.0)
        stage_message = (f"stage '{stage.name}' timed out after "
                         f"{format_duration(stage.timeout or 0)}")
        if step.timeout is not None and step.timeout <= remaining:
            return step.timeout, step_message
        return remaining, stage_message

    def _call_in_thread(self, step: Step, timeout: float | None) -> tuple[StepReport, bool]:
        """Run the step's hook in a worker thread; return its report and whether it timed out."""
        box: dict[str, StepReport] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                box["report"] = self._dispatch(step)
            finally:
                finished.set()
                self._wake.set()

        self._wake.clear()
        thread = threading.Thread(target=work, name=f"shipline step {step.id}", daemon=True)
        thread.start()

        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        while not finished.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or self.interrupted:
                timed_out = not self.interrupted
                self.context.cancel.set()
                if not finished.wait(CANCEL_GRACE):
                    logger.error("step %s did not stop within %.0f s of being cancelled",
                                 step.id, CANCEL_GRACE)
                break
            self._wake.wait(remaining)
            self._wake.clear()

        report = box.get("report") or self._report(
            step, Outcome.INTERRUPTED if self.interrupted else Outcome.FAILED,
            "did not stop after being cancelled",
        )
        return report, timed_out

    def _dispatch(self, step: Step) -> StepReport:
        """Call the hook for ``step``; turn every exception into a report."""
        try:
            if step.kind == "notify":
                return self._notify_step(step)
            hook = getattr(self.config.hook, f"shipline_run_{step.kind}")
            report: StepReport | None = hook(step=step, context=self.context)
            if report is None:
                return self._report(
                    step, Outcome.ERROR,
                    f"no plugin runs {step.kind} steps of type '{step.type}'",
                )
            return self._complete(step, report)
        except Interrupted:
            outcome = Outcome.INTERRUPTED if self.interrupted else Outcome.FAILED
            return self._report(step, outcome, "interrupted" if self.interrupted else "cancelled")
        except ShiplineError as exc:
            logger.info("step %s failed: %s", step.id, self.config.masker(str(exc)))
            return self._report(step, Outcome.FAILED, str(exc))
        except Exception as exc:
            return self._plugin_error(step, exc)

    def _plugin_error(self, step: Step, exc: Exception) -> StepReport:
        plugin = self.config.registry.plugin_of_traceback(exc.__traceback__) or step.plugin
        message = f"plugin '{plugin}' raised {type(exc).__name__}: {exc}"
        logger.error("step %s: %s", step.id, self.config.masker(message),
                     exc_info=self.config.option("debug", False))
        details = ""
        if self.config.option("debug", False):
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return self._report(step, Outcome.ERROR, message, details=details, plugin=plugin)

    def _notify_step(self, step: Step) -> StepReport:
        """Queue the step's notification; wait for it only when the step sets ``required``."""
        outcome, message = self.notifications.send_step(step, self.context.cancel)
        return self._report(step, outcome, message)

    def _complete(self, step: Step, report: StepReport) -> StepReport:
        report.step_id = report.step_id or step.id
        report.name = report.name or step.name
        report.kind = report.kind or step.kind
        report.plugin = report.plugin or step.plugin
        report.mark = report.mark or step.mark
        return report

    def _report(self, step: Step, outcome: Outcome, message: str, *, details: str = "",
                plugin: str | None = None) -> StepReport:
        return StepReport(
            step_id=step.id, name=step.name, kind=step.kind, outcome=outcome,
            message=message, details=details, plugin=plugin or step.plugin, mark=step.mark,
        )

    def _timed_out(self, step: Step, stopped: StepReport, message: str) -> StepReport:
        """Return the FAILED report of a step stopped by its timeout.

        A deploy step's own report, written as it stopped, shows where it was: the phase
        and the instance table. Its message follows the timeout message.
        """
        if step.kind != "deploy" or stopped.outcome is Outcome.PASSED or not stopped.message:
            return self._report(step, Outcome.FAILED, message)
        return dataclasses.replace(
            stopped, outcome=Outcome.FAILED, message=f"{message} ({stopped.message})")

    def _skipped(self, step: Step, reason: str) -> StepReport:
        return self._report(step, Outcome.SKIPPED, reason)

    def _publish(self, report: StepReport) -> None:
        mask = self.config.masker.mask
        report.message = mask(report.message)
        report.details = mask(report.details)
        report.output = mask(report.output)
        self.config.hook.shipline_step_report(report=report, context=self.context)

    # -- rollback -------------------------------------------------------------------------

    def _roll_back(self, only: Step | None = None) -> list[StepReport]:
        """Run pending rollbacks (of step ``only``, or all), newest first, even when the run
        was interrupted."""
        self._report_signals()
        self._rolling_back.set()
        self.context.cancel.clear()
        try:
            reports = self._run_rollbacks(only)
        finally:
            self._rolling_back.clear()
        if self.interrupted:
            self.context.cancel.set()
        self._report_signals()
        return reports

    def _run_rollbacks(self, only: Step | None) -> list[StepReport]:
        reports = []
        for rollback in self.context.take_rollbacks(only):
            step = rollback.step
            started = time.monotonic()
            started_at = self.config.clock.time()
            logger.info("rollback of step %s started: %s", step.id, rollback.description)
            try:
                message = rollback.action()
                outcome, details = Outcome.PASSED, ""
            except RollbackFailed as exc:
                outcome, message, details = Outcome.ROLLBACK_FAILED, str(exc), exc.details
            except Exception as exc:
                logger.exception("rollback of step %s raised", step.id)
                outcome, message, details = (
                    Outcome.ROLLBACK_FAILED, f"{type(exc).__name__}: {exc}", "",
                )
            report = StepReport(
                step_id=f"{step.id}/rollback", name=step.name, kind="rollback",
                outcome=outcome, message=message or rollback.description, details=details,
                duration=time.monotonic() - started, started_at=started_at,
                plugin=step.plugin, mark=step.mark, rollback=True,
            )
            logger.info("rollback of step %s finished: %s", step.id, outcome.value)
            reports.append(report)
            self._publish(report)
            self.context.outputs["rolled-back"] = "true"
            event = "rolled_back" if outcome is Outcome.PASSED else "rollback_failed"
            self._notify(event, stage=self.context.stage, message=f"{step.name}: {message}",
                         outcome=outcome.value, facts={"step": step.name})
        return reports

    # -- notifications --------------------------------------------------------------------

    def _notify(self, event: str, *, message: str, stage: Stage | None = None,
                outcome: str | None = None, facts: dict[str, object] | None = None) -> None:
        """Queue ``event`` for its subscribers and return at once."""
        self.notifications.notify(event, message=message, stage=stage, outcome=outcome,
                                  facts=facts)

    def _finish_notifications(self, exit_code: ExitCode) -> ExitCode:
        """Send the run's last event, wait up to the notify timeout for the queue, and
        return the exit code, raised to 1 when a ``required`` subscription failed."""
        self.notifications.run_finished(exit_code)
        # A CI runner that cancels the job during this wait must still get the reports:
        # a signal here only cuts the wait short.
        stop = threading.Event()
        with self._signals_handled(stop.set):
            self.notifications.finish(stop)
        failures = self.notifications.required_failures
        if not failures:
            return exit_code
        logger.error("the run fails because %d required notification(s) failed; the first: "
                     "%s", len(failures), failures[0])
        return most_severe([exit_code, ExitCode.FAILED])

    # -- exit code and signals ------------------------------------------------------------

    def _exit_code(self, stages: list[StageResult]) -> ExitCode:
        codes = [r.outcome.exit_code for s in stages for r in s.reports]
        if self.interrupted:
            codes.append(ExitCode.INTERRUPTED)
        return most_severe(codes)

    @contextmanager
    def _signals_handled(self, action: Callable[[], None] | None = None) -> Iterator[None]:
        """Route SIGINT and SIGTERM to :meth:`interrupt`, or to ``action`` when given."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            if action is not None:
                action()
            else:
                self.interrupt(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
