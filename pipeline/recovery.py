"""Crash recovery: undo, or resume, the deployments that a killed run left unfinished.

``shipline run`` calls :func:`recover` once it holds the lock of every environment it
deploys to, before its first stage. Holding the lock means that the lease of the
killed run has expired, so no run is still changing the environment. An unfinished
deployment is one whose outcome was never recorded.

By default each one is rolled back from its journal, newest first:

1. traffic goes back to the slot that was active before the deployment (a ``switch``
   entry), or the weight of the new slot goes back to 0 (a ``set_weight`` entry);
2. every instance with a ``deploy`` entry gets the version it ran before that entry
   again. An instance of the idle slot that ran nothing before has the new version
   removed. Otherwise the deployment's recorded previous version is deployed.

Before a deployment is rolled back or resumed, the commands that the killed run
started and that still run on this host are stopped (:mod:`pipeline.orphans`), so
that none of them changes an instance after the recovery.

The deployment is then ``recovered``. When a step of the recovery fails, the
deployment stays unfinished, so the next run tries again, and the run exits 4 without
deploying anything. With ``--resume`` nothing is undone: the deployment is marked
``resumed`` and the versions its instances ran before are kept, so that the new
run's rollback, if one is needed, restores those instances too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.context import RollbackFailed, RunContext
from pipeline.errors import ShiplineError, UsageError
from pipeline.exitcodes import ExitCode
from pipeline.instancetable import InstanceState, plural
from pipeline.orphans import PROCESS_OPERATION, ProcessList, lists_in, stop_orphans
from pipeline.rollback import removal_failure, remove_version, restore_previous
from pipeline.state import Deployment, DeploymentOutcome, JournalEntry, RollbackOutcome
from pipeline.staterun import UNKNOWN_VERSION

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.plan import Plan
    from pipeline.staterun import RunState
    from pipeline.target import Router, Target

logger = logging.getLogger("shipline")


@dataclass
class UndoPlan:
    """The changes of one deployment that a recovery must undo, read from its journal."""

    #: The slot that served before the first ``switch``, to route back to.
    switch_back_to: str | None = None
    switched: bool = False
    #: The slot that received a weight, to set back to 0.
    weighted_slot: str | None = None
    #: Instances to give their previous version again, with that version if known.
    restore: list[InstanceState] = field(default_factory=list)
    #: Instances of the idle slot that ran nothing before: the new version is removed.
    remove: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.switched or self.weighted_slot or self.restore or self.remove)

    @property
    def instances(self) -> list[str]:
        return [state.instance for state in self.restore] + self.remove


def undo_plan(entries: Sequence[JournalEntry]) -> UndoPlan:
    """Read a deployment's journal, oldest entry first, into what must be undone.

    For each instance the first ``deploy`` entry counts, because its ``before`` is the
    version the instance ran before the deployment started.
    """
    plan = UndoPlan()
    seen: set[str] = set()
    for entry in entries:
        details = entry.details
        if entry.operation == "switch" and not plan.switched:
            plan.switched = True
            active = details.get("active")
            plan.switch_back_to = active if isinstance(active, str) else None
        elif entry.operation == "set_weight" and isinstance(details.get("slot"), str):
            plan.weighted_slot = str(details["slot"])
        elif entry.operation == "deploy":
            _add_instances(plan, entry, seen)
    return plan


def _add_instances(plan: UndoPlan, entry: JournalEntry, seen: set[str]) -> None:
    before = entry.details.get("before")
    slot = entry.details.get("slot")
    for instance in entry.instances:
        if instance in seen:
            continue
        seen.add(instance)
        if before is None and isinstance(slot, str):
            plan.remove.append(instance)
        else:
            plan.restore.append(InstanceState(
                instance, slot=slot if isinstance(slot, str) else None,
                before=before if isinstance(before, str) else None, touched=True))


def recover(plan: Plan, config: Config, state: RunState, environments: Sequence[str], *,
            resume: bool) -> ExitCode:
    """Roll back (or, with ``resume``, take over) every unfinished deployment of
    ``environments``; return OK, or ROLLBACK_FAILED when a rollback failed.

    With ``resume``, raises UsageError before anything changes when this run deploys
    another version than an unfinished deployment of the same environment.
    """
    unfinished_by_environment = {environment: state.unfinished_deployments(environment)
                                 for environment in environments}
    if resume:
        for unfinished in unfinished_by_environment.values():
            for deployment in unfinished:
                check_resumable(plan, deployment)

    for unfinished in unfinished_by_environment.values():
        for deployment in reversed(unfinished):
            if resume:
                _resume(state, deployment, config)
            elif not _roll_back(plan, config, state, deployment):
                return ExitCode.ROLLBACK_FAILED
    return ExitCode.OK


def check_resumable(plan: Plan, deployment: Deployment) -> None:
    """Raise UsageError when ``plan`` deploys another version to the deployment's
    environment, because resuming would then finish the rollout with a version that
    the killed run did not start."""
    versions = sorted({str(step.options.get("version", "")) for stage in plan.stages
                       if stage.environment == deployment.environment
                       for step in stage.steps if step.kind == "deploy"})
    if not versions or versions == [deployment.version]:
        return
    raise UsageError(
        f"--resume: the unfinished deployment {deployment.id} of environment "
        f"'{deployment.environment}' deploys {deployment.version}, but this run deploys "
        f"{', '.join(versions)}: run with version {deployment.version} to resume it, or "
        f"without --resume to roll it back first"
    )


def _say(config: Config, message: str) -> None:
    logger.info("%s", message)
    print(f"shipline: {message}", file=config.stdout, flush=True)


def _stop_orphans(config: Config, state: RunState, deployment: Deployment,
                  entries: Sequence[JournalEntry]) -> None:
    """Stop the commands of the killed run that still run here, and name those that may
    still run on other hosts, before anything is undone or resumed."""
    report = stop_orphans(lists_in(entries))
    summary = report.summary()
    if summary:
        _say(config, f"environment '{deployment.environment}': deployment {deployment.id}: "
             f"{summary}")

    # A list whose commands were dealt with is deleted, so its entry is done, as after
    # a run that records its outcome.
    cleared = []
    for entry in entries:
        where = ProcessList.from_details(dict(entry.details))
        if (entry.operation == PROCESS_OPERATION and not entry.done and where is not None
                and where.path in report.cleared):
            cleared.append(entry.seq)
    if cleared:
        state.worker.call(lambda store: store.complete_journal_many(
            [(deployment.id, seq) for seq in cleared]))


def _resume(state: RunState, deployment: Deployment, config: Config) -> None:
    entries = state.worker.call(lambda store: store.journal(deployment.id))
    _stop_orphans(config, state, deployment, entries)
    before = {
        instance: str(entry.details["before"])
        for entry in reversed(entries)
        if entry.operation == "deploy" and isinstance(entry.details.get("before"), str)
        for instance in entry.instances
    }
    state.keep_resumed(deployment, before)
    state.worker.call(lambda store: store.finish_deployment(deployment.id,
                                                            DeploymentOutcome.RESUMED))
    _say(config, f"environment '{deployment.environment}': deployment {deployment.id} of "
         f"{deployment.version} was left unfinished by a run that stopped; resuming it")


def _roll_back(plan: Plan, config: Config, state: RunState, deployment: Deployment) -> bool:
    """Undo one unfinished deployment; return whether every change was undone."""
    entries = state.worker.call(lambda store: store.journal(deployment.id))
    _stop_orphans(config, state, deployment, entries)
    undo = undo_plan(entries)
    environment = deployment.environment
    _say(config, f"environment '{environment}': deployment {deployment.id} of "
         f"{deployment.version} was left unfinished by a run that stopped; rolling back "
         f"{plural(len(undo.instances), 'instance')} it changed")

    record = state.worker.call(lambda store: store.start_rollback(
        environment=environment, to_version=deployment.previous_version or UNKNOWN_VERSION,
        from_version=deployment.version, deployment_id=deployment.id,
        reason=f"recovery of the unfinished deployment {deployment.id}",
        actor=state.job.actor, job_url=state.job.job_url))
    try:
        message = _undo(plan, config, environment, deployment, undo)
    except (RollbackFailed, ShiplineError) as exc:
        details = getattr(exc, "details", "")
        logger.error("recovery of deployment %s failed: %s", deployment.id, exc)
        _say(config, f"recovery of deployment {deployment.id} failed: {exc}"
             + (f"\n{details}" if details else ""))
        state.worker.call(lambda store: store.finish_rollback(record.id,
                                                              RollbackOutcome.FAILED))
        return False

    state.worker.call(lambda store: store.finish_rollback(record.id, RollbackOutcome.SUCCEEDED))
    state.worker.call(lambda store: store.finish_deployment(deployment.id,
                                                            DeploymentOutcome.RECOVERED))
    _say(config, f"environment '{environment}': recovered deployment {deployment.id}: {message}")
    return True


def _undo(plan: Plan, config: Config, environment: str, deployment: Deployment,
          undo: UndoPlan) -> str:
    """Apply ``undo`` through the environment's target and router; return a summary."""
    if undo.empty:
        return "nothing had been changed"
    from pipeline.slots import resolve_router

    context = RunContext(plan=plan, config=config)
    context.environment = plan.environments[environment]
    # NOTE: the local target starts afresh in every run, so there this undoes changes
    # on processes that exist only for the recovery. Only the command target is tested.
    try:
        target = context.target()
        router = resolve_router(context)
        done = _route_back(router, undo)
        done += _restore_instances(target, deployment, undo, context)
        return "; ".join(done)
    finally:
        context.close_targets()


def _route_back(router: Router | None, undo: UndoPlan) -> list[str]:
    if not (undo.switched or undo.weighted_slot):
        return []
    if router is None:
        raise RollbackFailed("the journal records router changes, but the environment has "
                             "no router now")
    if undo.switched and undo.switch_back_to is not None:
        router.switch(undo.switch_back_to)
        return [f"traffic back on slot '{undo.switch_back_to}'"]
    if undo.weighted_slot is not None:
        router.set_weight(undo.weighted_slot, 0)
        return [f"weight of slot '{undo.weighted_slot}' back to 0"]
    return []


def _restore_instances(target: Target, deployment: Deployment, undo: UndoPlan,
                       context: RunContext) -> list[str]:
    done = []
    if undo.restore:
        done.append(restore_previous(target, undo.restore, fallback=deployment.previous_version,
                                     cancel=context.cancel))
    if undo.remove:
        results = remove_version(target, undo.remove, deployment.version, cancel=context.cancel)
        failure = removal_failure(target, results, deployment.version)
        if failure is not None:
            raise failure
        done.append(f"removed {deployment.version} from {plural(len(undo.remove), 'instance')}")
    return done
