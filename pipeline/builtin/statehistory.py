"""The built-in ``state`` plugin: record each deploy step of a run as a deployment.

It works only when ``shipline run`` opened a state store (``context.state``). A deploy
step is recorded as an unfinished deployment when it starts, before it changes
anything. Its previous version is that of the deployment that ``--resume`` continues,
else the version of the last successful deployment in the store, else the version most
instances run now. When
its stage ends, the deployment gets its outcome, which takes the stage's rollbacks
into account: a deploy that passed but was rolled back because a later step failed
is ``rolled_back``. A deploy that a guard, such as a freeze window, blocked before it
changed anything is ``blocked``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.errors import ShiplineError
from pipeline.report import Outcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic
    from pipeline.freeze import ActiveWindow
    from pipeline.plan import Plan, Stage, Step
    from pipeline.report import StepReport
    from pipeline.runner import StageResult
    from pipeline.state import DeploymentOutcome

logger = logging.getLogger("shipline")

#: The journal operation of a deploy that ran inside a freeze window with --break-glass.
BREAK_GLASS = "break_glass"


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Check ``state.lease`` as ``shipline run`` does, so that validate reports it too."""
    if not plan.state or "lease" not in plan.state:
        return []  # Nothing to check: keep the state store's modules out of validate.

    from pipeline.diagnostics import Diagnostic
    from pipeline.state import StateError
    from pipeline.state.locks import lease_of

    try:
        lease_of(plan.state)
    except StateError as error:
        message = str(error).removeprefix("state.lease: ")
        return [Diagnostic(message, None, ("state", "lease"))]
    return []


@hookimpl
def shipline_step_start(step: Step, context: RunContext) -> None:
    state = context.state
    if state is None or step.kind != "deploy" or context.environment is None:
        return
    environment = context.environment.name
    previous = state.previous_version(environment) or running_version(context)
    state.start_deployment(step, environment, previous)


@hookimpl
def shipline_break_glass(
    step: Step, windows: Sequence[ActiveWindow], reason: str, context: RunContext
) -> None:
    """Keep a ``--break-glass`` override in the deployment's journal, where ``shipline
    history`` shows it. The entry changes no instance, so recovery passes over it.

    Journal details hold only scalars, so ``windows`` is stored as JSON text: a list of
    ``{name, start, end}`` with ISO 8601 times, the shape of the step report's data.
    """
    shown = [{"name": item.window.label, "start": item.start.isoformat(),
              "end": item.end.isoformat()} for item in windows]
    done = context.record_change(step, BREAK_GLASS, [], None,
                                 {"reason": reason, "windows": json.dumps(shown)})
    done()


def running_version(context: RunContext) -> str | None:
    """Return the version most serving instances of the stage's environment run now.

    Returns None when no instance's version can be read. A target or router that
    fails here is logged at INFO only, because the deploy step reports the same problem.
    The versions are read in parallel, as the strategies read them.
    """
    from pipeline.rolloutparallel import MAX_PARALLEL, run_parallel
    from pipeline.slots import resolve_router, serving_instances

    try:
        target = context.target()
        instances = serving_instances(target, resolve_router(context))
        versions = run_parallel(list(instances), target.version, workers=MAX_PARALLEL)
    except ShiplineError as exc:
        logger.info("reading the running version before the deploy failed: %s", exc)
        return None
    counts = Counter(version for version in versions if version is not None)
    if not counts:
        return None
    return counts.most_common(1)[0][0]


@hookimpl
def shipline_step_report(report: StepReport, context: RunContext) -> None:
    state = context.state
    if state is None or not report.rollback:
        return
    step_id = report.step_id.removesuffix("/rollback")
    state.record_rollback(step_id, report.outcome is Outcome.PASSED, report.message)


@hookimpl
def shipline_stage_finish(stage: Stage, result: StageResult, context: RunContext) -> None:
    state = context.state
    if state is None:
        return
    for step in stage.steps:
        if step.kind == "deploy":
            state.finish_deployment(step, deployment_outcome(step, result.reports))


def deployment_outcome(step: Step, reports: list[StepReport]) -> DeploymentOutcome:
    """Return the outcome of the deployment of ``step`` from the reports of its stage."""
    from pipeline.state import DeploymentOutcome  # Imported here to keep start-up fast.

    own = [report for report in reports if report.step_id == step.id and not report.rollback]
    rollbacks = [report for report in reports
                 if report.rollback and report.step_id == f"{step.id}/rollback"]
    interrupted = any(report.outcome is Outcome.INTERRUPTED for report in own)

    if any(report.outcome is not Outcome.PASSED for report in rollbacks):
        return DeploymentOutcome.ROLLBACK_FAILED
    if not rollbacks and own and own[0].outcome is Outcome.BLOCKED:
        return DeploymentOutcome.BLOCKED
    if interrupted:
        return DeploymentOutcome.INTERRUPTED
    if rollbacks:
        return DeploymentOutcome.ROLLED_BACK
    if own and own[0].outcome is not Outcome.PASSED:
        # The step failed and registered no rollback: it had changed nothing.
        return DeploymentOutcome.FAILED
    return DeploymentOutcome.SUCCEEDED
