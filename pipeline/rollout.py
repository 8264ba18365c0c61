"""Machinery shared by the rolling, blue-green and canary strategies.

A strategy module decides the order and pacing of a deploy. This module contains
:class:`Rollout`, which ties one deploy step to its target, router and instance table and
turns failures and interrupts into step reports that carry that table, together with
health checks (:func:`wait_healthy`) and check specs run after a batch or before a
promotion (:func:`run_checks`). The rest lives in modules named by concept:

- :mod:`pipeline.rollouterrors`: OptionError and StepFailed;
- :mod:`pipeline.slots`: the router, the serving instances and deploys into the idle slot;
- :mod:`pipeline.amounts`: counts and percentages of instances and batch plans;
- :mod:`pipeline.rolloutparallel`: calling a target on many instances at once;
- :mod:`pipeline.instancetable`: the record of instances and plain-text tables;
- :mod:`pipeline.rollback`: rollback actions that raise RollbackFailed with a table;
- :mod:`pipeline.rolloutoptions`: option parsing, plan limits and JSON Schema pieces.

The strategies import all of these names from here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.amounts import batch_sizes, instances_for_weight, parse_amount, split_batches
from pipeline.context import Interrupted
from pipeline.durations import format_duration
from pipeline.errors import ShiplineError
from pipeline.instancetable import (
    FAILED_RESULTS,
    MAX_REPORT_OUTPUT,
    UNKNOWN,
    InstanceState,
    InstanceTable,
    format_table,
    plural,
    show_version,
)
from pipeline.report import Outcome, StepReport
from pipeline.rollback import removal_failure, remove_version, restore_previous
from pipeline.rollouterrors import OptionError, StepFailed
from pipeline.rolloutoptions import (
    AMOUNT_SCHEMA,
    DURATION_SCHEMA,
    HealthPolicy,
    check_list_schema,
    deploy_time_limit,
    described,
    environment_instance_count,
    health_schema,
    option_diagnostics,
    option_duration,
    previous_version_schema,
)
from pipeline.rolloutparallel import MAX_PARALLEL, call_target, run_parallel
from pipeline.slots import (
    SlotDeploy,
    capabilities_of,
    other_slot,
    resolve_router,
    serving_instances,
)
from pipeline.target import Capability, InstanceResult, Router, Target

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.context import RunContext
    from pipeline.plan import Step

__all__ = [
    "AMOUNT_SCHEMA",
    "DURATION_SCHEMA",
    "FAILED_RESULTS",
    "MAX_PARALLEL",
    "MAX_REPORT_OUTPUT",
    "PROGRESS_AFTER",
    "UNKNOWN",
    "CheckRun",
    "HealthPolicy",
    "InstanceState",
    "InstanceTable",
    "OptionError",
    "Rollout",
    "SlotDeploy",
    "StepFailed",
    "batch_sizes",
    "call_target",
    "capabilities_of",
    "check_list_schema",
    "deploy_time_limit",
    "described",
    "environment_instance_count",
    "format_table",
    "health_schema",
    "instances_for_weight",
    "mentions",
    "option_diagnostics",
    "option_duration",
    "other_slot",
    "parse_amount",
    "plural",
    "previous_version_schema",
    "removal_failure",
    "remove_version",
    "require_router",
    "resolve_router",
    "restore_previous",
    "run_checks",
    "run_parallel",
    "serving_instances",
    "show_version",
    "split_batches",
    "wait_healthy",
]

logger = logging.getLogger("shipline")

#: Waits of at least this many seconds are announced, so a CI log does not look hung.
PROGRESS_AFTER = 1.0

#: Seconds under which reading one instance's version is fast enough to read the
#: versions of a whole batch one after another, without threads.
INLINE_READ = 0.0005


# -- health ------------------------------------------------------------------------------


def wait_healthy(
    target: Target, instance: str, policy: HealthPolicy, context: RunContext
) -> InstanceResult:
    """Call ``target.health`` on ``instance`` until it passes or the policy gives up.

    Returns a failed result naming the number of attempts and the last message when
    the retries or the timeout run out, or when the run is cancelled while waiting.
    """
    if not policy.enabled:
        return InstanceResult(instance, True, "health check disabled")

    clock = context.clock
    started = clock.monotonic()
    attempts = 0
    while True:
        attempts += 1
        result = call_target("health", instance, lambda: target.health(instance, context.cancel))
        elapsed = clock.monotonic() - started
        if result.ok:
            return InstanceResult(instance, True, f"healthy after {plural(attempts, 'attempt')}",
                                  duration=elapsed)

        if attempts > policy.retries:
            message = f"health check failed {plural(attempts, 'time')}: {result.message}"
            return InstanceResult(instance, False, message, result.output, elapsed)
        if elapsed + policy.interval > policy.timeout:
            message = (f"not healthy within {format_duration(policy.timeout)} "
                       f"({plural(attempts, 'attempt')}): {result.message}")
            return InstanceResult(instance, False, message, result.output, elapsed)

        if not context.sleep(policy.interval):
            return InstanceResult(instance, False, "cancelled while waiting to be healthy",
                                  duration=clock.monotonic() - started)


# -- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRun:
    """The result of one check spec, run once or once for one instance."""

    label: str
    instance: str | None
    ok: bool
    message: str
    output: str = ""


def mentions(spec: object, placeholder: str) -> bool:
    """Return whether any string inside ``spec`` contains ``{placeholder}``.

    ``{{placeholder}}`` is a literal text in command templates and does not count.
    """
    pattern = re.compile(r"(?<!\{)\{" + re.escape(placeholder) + r"\}(?!\})")
    if isinstance(spec, str):
        return pattern.search(spec) is not None
    if isinstance(spec, Mapping):
        return any(mentions(value, placeholder) for value in spec.values())
    if isinstance(spec, Sequence):
        return any(mentions(item, placeholder) for item in spec)
    return False


def run_checks(
    specs: Sequence[Mapping[str, Any]],
    context: RunContext,
    *,
    instances: Sequence[str],
    placeholders: Mapping[str, str],
    workers: int,
    pool: ThreadPoolExecutor | None = None,
) -> list[CheckRun]:
    """Run each check spec, in parallel, and return one result per run.

    A spec that mentions ``{instance}`` runs once per instance of ``instances``, with
    that instance filled in; any other spec runs once. ``placeholders`` fill in the
    rest (``{version}``, ``{slot}``), and ``{endpoint}`` is the router's URL when the
    environment has a router that reports one. Commands run in the pipeline file's folder.
    """
    from pipeline.checks import describe_check, run_check

    router = resolve_router(context)
    endpoint = router.endpoint() if router is not None else None
    if endpoint is not None:
        placeholders = {"endpoint": endpoint, **placeholders}

    planned: list[tuple[str, Mapping[str, Any], str | None]] = []
    for index, spec in enumerate(specs):
        label = f"check {index + 1} ({_describe(describe_check, spec)})"
        if mentions(spec, "instance"):
            planned += [(label, spec, instance) for instance in instances]
        else:
            planned.append((label, spec, None))

    def run_one(item: tuple[str, Mapping[str, Any], str | None]) -> CheckRun:
        label, spec, instance = item
        values = dict(placeholders)
        if instance is not None:
            values["instance"] = instance
        try:
            result = run_check(spec, clock=context.clock, cancel=context.cancel,
                               placeholders=values, cwd=context.plan.file.parent)
        except (ValueError, ShiplineError) as exc:
            return CheckRun(label, instance, False, f"{label}: {exc}")
        return CheckRun(label, instance, result.ok, result.message, result.output)

    return run_parallel(planned, run_one, workers=workers, pool=pool)


def _describe(describe: Callable[[Mapping[str, Any]], str], spec: Mapping[str, Any]) -> str:
    try:
        return describe(spec)
    except (ValueError, KeyError):
        return "invalid check"


# -- one deploy step ---------------------------------------------------------------------


@dataclass
class Rollout:
    """One run of a deploy step: its options, target, router, record and report data.

    Create it inside ``Strategy.run``; :meth:`run` calls the strategy's body and turns
    its outcome into a report.
    """

    step: Step
    context: RunContext
    target: Target
    router: Router | None
    table: InstanceTable = field(default_factory=InstanceTable)
    #: Extra ``data`` of the report (``weights``, ``analysis``...).
    data: dict[str, Any] = field(default_factory=dict)
    #: Extra text for the report details, after the instance table.
    sections: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, step: Step, context: RunContext) -> Rollout:
        """Create the rollout of ``step``, creating the target and finding the router."""
        target = context.target()
        return cls(step, context, target, resolve_router(context))

    @property
    def version(self) -> str:
        return str(self.step.options["version"])

    @property
    def fallback(self) -> str | None:
        """The ``previous_version`` option: what rollbacks restore when a version is unknown."""
        value = self.step.options.get("previous_version")
        return None if value is None else str(value)

    @property
    def environment_name(self) -> str:
        environment = self.context.environment
        return environment.name if environment is not None else "?"

    def run(self, body: Callable[[Rollout], str]) -> StepReport:
        """Run ``body`` and return the report; ``body`` returns the success message.

        StepFailed becomes a FAILED report and Interrupted an INTERRUPTED one, both with
        the instance table, so the runner rolls back and the user sees where things are.
        """
        try:
            message = body(self)
        except StepFailed as exc:
            # INFO, as for every step failure: the terminal report already shows it.
            logger.info("step %s failed: %s", self.step.id, exc)
            return self.report(Outcome.FAILED, str(exc))
        except Interrupted as exc:
            logger.info("step %s stopped: %s", self.step.id, exc)
            return self.report(Outcome.INTERRUPTED, str(exc))

        self.context.outputs["deployed-version"] = self.version
        return self.report(Outcome.PASSED, message)

    def report(self, outcome: Outcome, message: str) -> StepReport:
        parts = [self.table.render()] if len(self.table) else []
        details = "\n\n".join([*parts, *self.sections])
        return StepReport(
            step_id=self.step.id, name=self.step.name, kind=self.step.kind, outcome=outcome,
            message=message, details=details, output=self.table.output(),
            plugin=self.step.plugin, mark=self.step.mark,
            data={"version": self.version, "instances": self.table.data(), **self.data},
        )

    def check_cancelled(self, during: str) -> None:
        """Raise Interrupted (``interrupted <during>``) if the run was cancelled."""
        if self.context.cancelled:
            raise Interrupted(f"interrupted {during}")

    def sleep(self, seconds: float, during: str) -> None:
        """Wait on the run's clock; raise Interrupted if the run is cancelled meanwhile.

        ``during`` completes "interrupted ..." and "waiting 30s ...", as in "during the
        pause of step 2".
        """
        if seconds >= PROGRESS_AFTER:
            self.context.progress(f"waiting {format_duration(seconds)} {during}")
        if not self.context.sleep(seconds):
            raise Interrupted(f"interrupted {during}")

    def read_version(self, instance: str) -> str | None:
        """Return the version ``instance`` runs, or ``None`` if the target cannot read it."""
        return self.target.version(instance)

    def read_versions(self, instances: Sequence[str], *, workers: int,
                      pool: ThreadPoolExecutor | None = None) -> None:
        """Read the version each of ``instances`` runs and record it as the version
        before (and, for now, after) the change.

        The first read decides how the rest are read: one after another when it took
        less than :data:`INLINE_READ`, otherwise in parallel, ``workers`` at a time.
        """
        if not instances:
            return
        # A target that reads no versions, or reads them from memory, returns at once,
        # and then threads would cost more than they save.
        started = time.monotonic()
        versions = [self.read_version(instances[0])]
        if time.monotonic() - started < INLINE_READ:
            versions += [self.read_version(instance) for instance in instances[1:]]
        else:
            versions += run_parallel(instances[1:], self.read_version, workers=workers,
                                     pool=pool)
        self.table.update_many(
            (instance, {"before": version, "after": version})
            for instance, version in zip(instances, versions, strict=True))

    def journal_deploy(self, instances: Sequence[str]) -> Callable[[], None]:
        """Journal that the step's version is about to be deployed to ``instances``, and
        return the function that marks the journal entries done.

        The versions before come from the table. Instances that ran the same version in
        the same slot share one entry. All entries are written in one transaction, so a
        batch of a rolling deploy costs one commit, not one per instance. Raises
        StateError when the journal cannot be written, so that nothing is deployed.
        """
        groups: dict[tuple[str | None, str | None], list[str]] = {}
        for state in self.table.get_all(instances):
            groups.setdefault((state.before, state.slot), []).append(state.instance)
        changes = [(names, {"before": before, "slot": slot})
                   for (before, slot), names in groups.items()]
        return self.context.record_changes(self.step, "deploy", self.version, changes)

    def deploy_instance(self, instance: str) -> InstanceResult:
        """Deploy the step's version to ``instance`` and record the result.

        The caller journals the deploy first (:meth:`journal_deploy`). The instance is
        marked touched before the target is called, so that a rollback covers a deploy
        that failed halfway. A failure keeps the captured output for the report.
        """
        version = self.version
        self.table.update(instance, touched=True, result="deploying")
        result = call_target("deploy", instance,
                             lambda: self.target.deploy(instance, version, self.context.cancel))
        if result.ok:
            self.table.update(instance, after=version, result="deployed")
        else:
            self.table.update(instance, after=self.read_version(instance), result="failed",
                              message=f"deploy failed: {result.message}")
            self.table.add_output(instance, "deploy", result.output)
        return result

    def deploy_instances(
        self,
        instances: Sequence[str],
        health: HealthPolicy,
        *,
        workers: int,
        result: str,
        pool: ThreadPoolExecutor | None = None,
        stop: threading.Event | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        """Journal, deploy and health-check ``instances``, ``workers`` at a time.

        Call :meth:`read_versions` first: the journal records the versions before.
        Each instance that deploys and turns healthy gets ``result``; ``on_failure`` is
        called with each one that does not. Once ``stop`` or the run's cancel event is
        set, instances not started yet are left alone.
        """
        if not instances or self._stopped(stop):
            return
        done = self.journal_deploy(instances)

        def deploy(instance: str) -> None:
            if self._stopped(stop):
                return
            if self.deploy_instance(instance).ok and self.check_health(instance, health).ok:
                self.table.update(instance, result=result, message="")
            elif on_failure is not None:
                on_failure(instance)

        try:
            run_parallel(instances, deploy, workers=workers, pool=pool)
        finally:
            done()

    def update_instances(
        self,
        instances: Sequence[str],
        health: HealthPolicy,
        *,
        workers: int,
        pool: ThreadPoolExecutor | None = None,
        stop: threading.Event | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        """Move serving ``instances`` to the step's version in place, ``workers`` at a
        time, and wait until each is healthy.

        The versions running before are read first and recorded for the rollback. An
        instance that already runs the step's version is left alone, with the result
        ``unchanged``; the others end ``updated``, or failed with ``on_failure`` called.
        Once ``stop`` or the run's cancel event is set, nothing more is started and each
        instance keeps the result it had.
        """
        if self._stopped(stop):
            return
        self.read_versions(instances, workers=workers, pool=pool)

        changing = []
        for state in self.table.get_all(instances):
            if state.before == self.version:
                self._keep(state.instance)
            else:
                changing.append(state.instance)

        self.deploy_instances(changing, health, workers=workers, result="updated", pool=pool,
                              stop=stop, on_failure=on_failure)

    def _stopped(self, stop: threading.Event | None) -> bool:
        return (stop is not None and stop.is_set()) or self.context.cancelled

    def _keep(self, instance: str) -> None:
        """Leave alone an instance that already runs the step's version.

        When ``--resume`` continues a deployment that a killed run left unfinished, the
        instance may have got the version from that run. It is then marked touched, with
        the version it ran before that run, so that a rollback restores it too.
        """
        earlier = None
        if self.context.state is not None:
            earlier = self.context.state.resumed_version(self.environment_name, instance)
        if earlier is not None and earlier != self.version:
            self.table.update(instance, before=earlier, touched=True, result="unchanged",
                              message=f"updated by the interrupted run (before: {earlier})")
            return
        self.table.update(instance, result="unchanged", message=f"already runs {self.version}")

    def check_health(self, instance: str, policy: HealthPolicy) -> InstanceResult:
        """Wait for ``instance`` to pass its health check and record a failure."""
        result = wait_healthy(self.target, instance, policy, self.context)
        if not result.ok:
            self.table.update(instance, result="unhealthy", message=result.message)
            self.table.add_output(instance, "health", result.output)
        return result

    def record_weight(self, weight: int, **extra: Any) -> None:
        """Append a point to the ``weights`` timeline of the report data.

        A rollback appends its own point (``rollback: true``) after the report was
        published, so reporters that write at the end of the run see it too.
        """
        timeline = self.data.setdefault("weights", [])
        timeline.append({"time": self.context.clock.time(), "weight": weight, **extra})

    def route(self, action: str, call: Callable[[], None]) -> None:
        """Call a router primitive; an expected error (ShiplineError) fails the step."""
        try:
            call()
        except ShiplineError as exc:
            raise StepFailed(f"{action} failed: {exc}") from exc


def require_router(rollout: Rollout, needed: Iterable[Capability], strategy: str) -> Router:
    """Return the rollout's router; raise StepFailed unless it offers ``needed``."""
    router = rollout.router
    available = capabilities_of(rollout.target, router)
    missing = sorted(capability.value for capability in needed if capability not in available)
    if router is None or missing:
        what = " and ".join(missing) if missing else "a router"
        raise StepFailed(
            f"strategy '{strategy}' needs {what}, which environment "
            f"'{rollout.environment_name}' does not provide"
        )
    return router
