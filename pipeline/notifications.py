"""Run events to notifications: build them, queue them, and account for what was delivered.

The runner owns one :class:`NotificationCenter` per run. For each run event it builds one
:class:`~pipeline.notification.Notification` per subscription under ``notifications:``
whose ``on`` list names the event, and puts it on a
:class:`~pipeline.notifyqueue.NotifyQueue`. Worker threads send it, so a step or a
rollback never waits for a notifier. Every notification carries the CI actor and job URL
(:mod:`pipeline.cienv`), a masked message and an idempotency key.

After each attempt the center calls ``shipline_notification_sent`` and, for a failed
delivery, logs a warning and keeps it in :attr:`NotificationCenter.warnings`. At the end
:meth:`NotificationCenter.finish` waits up to the notify timeout for the queue to drain.
A failed delivery only warns, unless its subscription says ``required: true``: then it is
in :attr:`NotificationCenter.required_failures` and the runner makes the run exit 1.

This module is also a plugin: it adds ``--notify-timeout`` to ``shipline run``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.cienv import CiJob, detect
from pipeline.durations import duration_option, format_duration
from pipeline.exitcodes import ExitCode
from pipeline.notification import Delivery, Notification
from pipeline.notifyqueue import DEFAULT_WORKERS, DrainResult, NotifyQueue, Ticket
from pipeline.report import Outcome

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Stage, Step
    from pipeline.report import StepReport

logger = logging.getLogger("shipline")

#: Seconds the run waits at the end for notifications still queued, by default.
DEFAULT_NOTIFY_TIMEOUT = 30.0
#: The event of a notification sent by a ``notify`` step.
STEP_EVENT = "step"
#: Analysis verdicts that count as passed; any other verdict is an ``analysis_failed``.
PASSING_VERDICTS = frozenset({"successful"})


@hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notify-timeout", type=duration_option, metavar="DURATION",
        help="how long the run waits at the end for queued notifications, for example 30s "
        "or 500ms (default: notify_timeout in the pipeline file, else 30s)",
    )


def notify_timeout(plan: Plan, config: Config) -> float:
    """Return the seconds to wait for the queue at the end: the command line's value, then
    the pipeline file's ``notify_timeout``, then :data:`DEFAULT_NOTIFY_TIMEOUT`."""
    option = config.option("notify_timeout")
    if option is not None:
        return float(option)
    return DEFAULT_NOTIFY_TIMEOUT if plan.notify_timeout is None else plan.notify_timeout


#: Events about the whole run rather than one stage.
RUN_EVENTS = frozenset({"started", "succeeded", "failed", "blocked"})


#: Most worker threads for one run's notifications.
MAX_WORKERS = 16


def _worker_count(plan: Plan) -> int:
    """Return one worker per lane (subscription or notify step), within bounds.

    With a worker per lane, endpoints that hang hold up only their own lanes, and a
    healthy endpoint still gets its messages.
    """
    lanes = len(plan.notifications) + sum(
        1 for stage in plan.stages for step in stage.steps if step.kind == "notify"
    )
    return max(DEFAULT_WORKERS, min(lanes, MAX_WORKERS))


class NotificationCenter:
    """Builds, queues and accounts for the notifications of one run; see the module docstring.

    Safe to call from the runner's thread and from step threads at the same time.
    """

    def __init__(self, plan: Plan, config: Config, context: RunContext, *,
                 environ: Mapping[str, str] | None = None,
                 queue: NotifyQueue | None = None) -> None:
        import uuid  # Imported here: it imports platform, which start-up does not need.

        self.plan = plan
        self.config = config
        self.context = context
        self.timeout = notify_timeout(plan, config)
        self.ci: CiJob = detect(environ)
        self.queue = queue or NotifyQueue(self._send, self._sent,
                                          workers=_worker_count(plan))
        #: One masked line per failed, dropped or abandoned delivery, in order.
        self.warnings: list[str] = []
        #: The lines of :attr:`warnings` that belong to ``required: true`` subscriptions.
        self.required_failures: list[str] = []
        self.drain_result: DrainResult | None = None
        self._run_id = uuid.uuid4().hex
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._started = config.clock.monotonic()

    def start(self, started: float) -> None:
        """Set the run's start on ``config.clock.monotonic()``, for each event's duration."""
        self._started = started

    # -- events ---------------------------------------------------------------------------

    def notify(self, event: str, *, message: str, stage: Stage | None = None,
               outcome: str | None = None,
               facts: Mapping[str, Any] | None = None) -> list[Ticket]:
        """Queue ``event`` for every subscription whose ``on`` list names it."""
        tickets = []
        for index, subscription in enumerate(self.plan.notifications):
            if event not in subscription.get("on", ()):
                continue
            notification = self.build(
                event, str(subscription["uses"]), subscription, message=message, stage=stage,
                outcome=outcome, facts=facts,
                required=bool(subscription.get("required", False)),
            )
            tickets.append(self.queue.submit(notification, lane=f"notifications[{index}]"))
        return tickets

    def step_finished(self, step: Step, report: StepReport) -> None:
        """Send ``analysis_failed`` when a failed deploy or gate step reports a failed analysis."""
        if step.kind not in ("deploy", "gate") or not report.outcome.is_failure:
            return
        failed = failed_analysis(report.data)
        if failed is None:
            return
        name = str(failed.get("name", "analysis"))
        verdict = str(failed.get("verdict", "failed"))
        text = f"analysis '{name}' {verdict}"
        if failed.get("message"):
            text += f": {failed['message']}"
        self.notify("analysis_failed", message=f"{step.name}: {text}", outcome=verdict,
                    facts={"step": step.name, "analysis": name, "verdict": verdict})

    def run_finished(self, exit_code: ExitCode) -> str:
        """Send the run's last event, ``succeeded``, ``blocked`` (exit 3) or ``failed``,
        and return it."""
        if exit_code == ExitCode.OK:
            event = "succeeded"
        elif exit_code == ExitCode.BLOCKED:
            event = "blocked"
        else:
            event = "failed"
        self.notify(event, message=f"{self.plan.name}: run {event} (exit {int(exit_code)})",
                    outcome=event, facts={"exit_code": int(exit_code)})
        return event

    def paused(self, message: str) -> None:
        """Send ``paused`` for the current stage; the approval wait calls this as it starts."""
        self.notify("paused", message=message, outcome="paused")

    def send_step(self, step: Step, cancel: threading.Event) -> tuple[Outcome, str]:
        """Queue the notification of a ``notify`` step and return the step's outcome and message.

        Without ``required: true`` the step passes at once with "queued". With it, the step
        waits up to the notify timeout, or until ``cancel`` is set, and fails unless every
        notifier reported success.
        """
        options = step.options
        required = bool(options.get("required", False))
        notification = self.build(STEP_EVENT, step.type, options,
                                  message=str(options.get("message", "")), required=required)
        ticket = self.queue.submit(notification, lane=f"step {step.id}")
        if not required:
            return Outcome.PASSED, "queued"

        deliveries = ticket.wait(self.timeout, cancel)
        if deliveries is None:
            message = f"not delivered within {format_duration(self.timeout)} (notify_timeout)"
            # The step has waited its share: the end of the run must not wait again.
            self.queue.give_up(ticket, message)
            return Outcome.FAILED, message
        failed = [d for d in deliveries if not d.ok]
        if failed:
            return Outcome.FAILED, failed[0].message or "delivery failed"
        return Outcome.PASSED, "sent"

    def build(self, event: str, uses: str, options: Mapping[str, Any], *, message: str,
              stage: Stage | None = None, outcome: str | None = None,
              facts: Mapping[str, Any] | None = None, required: bool = False) -> Notification:
        """Return a notification for ``event`` with the run's facts; ``message`` is masked.

        Run-level events (``started``, ``succeeded``, ``failed``, ``blocked``) belong to
        no stage, so they carry none, whichever stage ran last.
        """
        if event not in RUN_EVENTS:
            stage = stage or self.context.stage
        with self._lock:
            number = next(self._numbers)
        return Notification(
            event=event, uses=uses, options=options, pipeline=self.plan.name,
            message=self.config.masker.mask(message),
            stage=stage.name if stage else None,
            environment=stage.environment if stage else None,
            version=self.context.outputs.get("deployed-version") or self.context.version,
            outcome=outcome,
            duration=max(self.config.clock.monotonic() - self._started, 0.0),
            required=required, actor=self.ci.actor, job_url=self.ci.job_url,
            idempotency_key=f"{self._run_id}-{number}",
            time=self.config.clock.time(),
            facts=dict(facts or {}),
        )

    # -- delivery -------------------------------------------------------------------------

    def finish(self, stop: threading.Event | None = None) -> DrainResult:
        """Wait up to :attr:`timeout` for the queue to drain, or until ``stop`` is set.

        Each notification left is reported like a failed delivery: a warning, a line in
        :attr:`warnings` and a ``shipline_notification_sent`` call.
        """
        self.drain_result = self.queue.drain(self.timeout, stop)
        return self.drain_result

    def _send(self, notification: Notification) -> Sequence[Delivery]:
        """Call the notifiers in a worker thread; turn a plugin's exception into a failure."""
        try:
            results = self.config.hook.shipline_notify(notification=notification,
                                                       context=self.context)
        except Exception as exc:
            # Skip this frame: this module is a plugin too and must not be blamed.
            traceback = exc.__traceback__.tb_next if exc.__traceback__ else None
            plugin = self.config.registry.plugin_of_traceback(traceback) or "?"
            message = self.config.masker.mask(
                f"plugin '{plugin}' raised {type(exc).__name__}: {exc}")
            logger.error("notification %s (%s) via %s: %s", notification.event,
                         notification.idempotency_key, notification.uses, message,
                         exc_info=bool(self.config.option("debug", False)))
            return [Delivery(notification.uses, False, message)]

        deliveries = [d for d in results if d is not None and d.uses == notification.uses]
        if not deliveries:
            return [Delivery(notification.uses, False,
                             f"no plugin sends notifications of type '{notification.uses}'")]
        return deliveries

    def _sent(self, notification: Notification, deliveries: Sequence[Delivery]) -> None:
        """Record each delivery and pass it to ``shipline_notification_sent``."""
        for delivery in deliveries:
            if not delivery.ok:
                self._record_failure(notification, delivery)
            try:
                self.config.hook.shipline_notification_sent(
                    notification=notification, delivery=delivery, context=self.context)
            except Exception:
                logger.exception("shipline_notification_sent for %s (%s) raised",
                                 notification.event, notification.idempotency_key)

    def _record_failure(self, notification: Notification, delivery: Delivery) -> None:
        line = self.config.masker.mask(
            f"notification '{notification.event}' via {delivery.uses} failed: "
            f"{delivery.message or 'no reason given'}")
        # INFO, because the terminal summary lists every warning at the end already.
        logger.info("%s", line)
        with self._lock:
            self.warnings.append(line)
            # A required notify step fails its own step, so only subscriptions count here.
            if notification.required and notification.event != STEP_EVENT:
                self.required_failures.append(line)


def failed_analysis(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the first analysis in a step report's ``data`` whose verdict is not passing.

    Canary deploys report a list under ``analyses``; a gate may report one mapping under
    ``analysis``. Each entry has ``name``, ``verdict`` and ``message``.
    """
    entries: list[Any] = []
    single = data.get("analysis")
    if isinstance(single, Mapping):
        entries.append(single)
    several = data.get("analyses")
    if isinstance(several, (list, tuple)):
        entries.extend(several)

    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("verdict") is None:
            continue
        if entry["verdict"] not in PASSING_VERDICTS:
            return entry
    return None
