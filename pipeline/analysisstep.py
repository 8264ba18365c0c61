"""Run an analysis for a step: apply its ``on_failure`` and ``on_inconclusive`` policies
(and ``on_no_data`` to a judgment without data), and keep every run in the step's report.

Canary ``analysis`` steps, blue-green promotion analyses, rolling batch analyses and
``analysis`` gates all go through :func:`run_analysis_use`. The policies are described in
:mod:`pipeline.analysispolicy`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.analysismodel import ERROR, INCONCLUSIVE, SUCCESSFUL, AnalysisResult
from pipeline.analysispolicy import (
    ABORT,
    INCONCLUSIVE_ACTION,
    PASS,
    PAUSE,
    RETRY,
    Policies,
    Policy,
)
from pipeline.analysissettings import builtin_args, prepare_analysis, resolve_analysis
from pipeline.approval import wait_for_approval
from pipeline.judge import is_comparison

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.rollout import Rollout

__all__ = [
    "AnalysisOutcome",
    "analyse_rollout",
    "record_outcome",
    "rollout_endpoint",
    "run_analysis_use",
]

logger = logging.getLogger("shipline")

#: The action recorded for a successful analysis.
CONTINUE = "continue"


@dataclass
class AnalysisOutcome:
    """Whether the step may go on after an analysis, why, and every run it took."""

    name: str
    passed: bool
    message: str
    runs: list[AnalysisResult] = field(default_factory=list)

    def details(self) -> str:
        """Format every run with its measurements, for the step report's details."""
        sections = []
        for run in self.runs:
            heading = f"analysis '{run.name}': {run.verdict}: {run.message}"
            body = run.details()
            sections.append(f"{heading}\n{body}" if body else heading)
        return "\n\n".join(sections)


def run_analysis_use(
    ref: str | Mapping[str, Any],
    context: RunContext,
    *,
    stable_version: str | None,
    canary_version: str,
    endpoint: str | None,
) -> AnalysisOutcome:
    """Run the analysis ``ref`` and apply the policy for its verdict until one decides.

    Blocks while the analysis runs and while a ``pause`` waits for approval. Raises
    :class:`~pipeline.context.Interrupted` when the run is cancelled.
    """
    from pipeline.analysisrun import run_analysis

    policies = _policies(ref, context, builtin_args(canary_version, stable_version, context))
    runs: list[AnalysisResult] = []
    retries = 0
    while True:
        result = run_analysis(ref, context, stable_version=stable_version,
                              canary_version=canary_version, endpoint=endpoint)
        runs.append(result)
        if result.verdict == SUCCESSFUL:
            result.action = CONTINUE
            return AnalysisOutcome(result.name, True, result.message, runs)

        key, policy = _policy_for(result, policies)
        if policy.action == RETRY and retries < policy.retries:
            retries += 1
            result.action = RETRY
            result.action_message = (f"{key} is {policy.describe()}: "
                                     f"running again ({retries} of {policy.retries})")
            logger.warning("analysis %r %s; %s", result.name, result.verdict,
                           result.action_message)
            continue
        return _decide(result, key, policy, context, runs)


def _policies(
    ref: str | Mapping[str, Any], context: RunContext, builtins: Mapping[str, str]
) -> Policies | None:
    """Return the analysis's policies, or ``None`` when its options are invalid.

    Invalid options end the run with ``error``, which always aborts. ``builtins`` are
    the run's built-in arguments, which an approval file name may refer to. A
    ``judge: compare`` analysis has no conditions, so only its policy options are
    parsed, as written, because a judge takes no template arguments.
    """
    from pipeline.errors import ShiplineError

    try:
        name, options, _given = resolve_analysis(ref, context.plan.analyses)
        if is_comparison(options):
            return Policies.from_options(name, options)
        settings, _ = prepare_analysis(ref, context.plan.analyses, builtins)
    except ShiplineError:
        return None
    return settings.policies


def _policy_for(result: AnalysisResult, policies: Policies | None) -> tuple[str, Policy]:
    """Return the policy option that applies to a verdict other than ``successful``,
    and its parsed policy.

    A judgment without data goes to ``on_no_data``. Its default action,
    ``inconclusive``, hands it on to ``on_inconclusive``.
    """
    key = "on_inconclusive" if result.verdict == INCONCLUSIVE else "on_failure"
    if result.action == ABORT or result.verdict == ERROR or policies is None:
        return key, Policy(ABORT)
    if result.no_data and policies.on_no_data.action != INCONCLUSIVE_ACTION:
        return "on_no_data", policies.on_no_data
    if result.verdict == INCONCLUSIVE:
        return key, policies.on_inconclusive
    return key, policies.on_failure


def _decide(
    result: AnalysisResult, key: str, policy: Policy, context: RunContext,
    runs: list[AnalysisResult],
) -> AnalysisOutcome:
    """Apply ``abort``, ``pass``, ``pause``, or a ``retry`` whose retries are used up, as
    the policy option ``key``."""
    failure = f"analysis '{result.name}' {result.verdict}: {result.message}"

    if policy.action == PASS:
        return _finish(result, runs, PASS, f"{key} is pass: going on", passed=True)
    if policy.action == PAUSE and policy.approval is not None:
        context.progress(f"{failure}; {key} is pause")
        approval = wait_for_approval(policy.approval, context)
        if approval.approved:
            return _finish(result, runs, PAUSE, f"{key} is pause: {approval.message}",
                           passed=True)
        note = f"{key} is pause: {approval.message}; default action {policy.default}"
        return _finish(result, runs, policy.default, note, passed=policy.default == PASS)
    if policy.action == RETRY:
        note = f"{key} is {policy.describe()}: still {result.verdict} after the retries"
        return _finish(result, runs, ABORT, note, passed=False)

    # The verdict already reports a plain abort, so only the details show its note.
    if result.verdict == ERROR:
        note = "an analysis with an error always aborts"
    elif result.action == ABORT or key == "on_no_data":
        note = "on_no_data aborted the analysis"
    else:
        note = f"{key} is abort"
    return _finish(result, runs, ABORT, note, passed=False, shown=False)


def _finish(
    result: AnalysisResult, runs: list[AnalysisResult], action: str, note: str, *,
    passed: bool, shown: bool = True,
) -> AnalysisOutcome:
    """Record the policy's ``action`` and ``note`` on ``result``; ``shown`` adds the note
    to the outcome's message too."""
    result.action = action
    result.action_message = note
    message = f"{result.verdict}: {result.message}"
    if shown:
        message += f"; {note}"
    if passed:
        logger.warning("analysis %r %s", result.name, message)
    else:
        logger.info("analysis %r %s", result.name, message)
    return AnalysisOutcome(result.name, passed, message, runs)


def record_outcome(
    outcome: AnalysisOutcome, data: dict[str, Any], sections: list[str],
    step: int | None = None,
) -> None:
    """Add the outcome's runs to a step report's ``data["analyses"]`` and details.

    ``step`` is the number of the strategy step that ran the analysis, when there is
    one, as the event log's ``strategy_step``.
    """
    entries = data.setdefault("analyses", [])
    for run in outcome.runs:
        entries.append({"step": step, **run.to_data()})
    sections.append(outcome.details())


def analyse_rollout(
    rollout: Rollout,
    ref: str | Mapping[str, Any],
    *,
    stable: str | None,
    endpoint: str | None,
    step: int | None = None,
    where: str = "",
) -> None:
    """Run the analysis ``ref`` inside a deploy step, and record it in the step's report.

    ``endpoint`` is the URL that clients use, as :func:`rollout_endpoint` finds it or
    the strategy's router returns it. ``where`` prefixes the failure message
    (``batch 2 of 3: ``). Raises StepFailed when the analysis does not pass, so that the
    deploy rolls back, and Interrupted when the run is cancelled.
    """
    from pipeline.rollout import StepFailed

    outcome = run_analysis_use(ref, rollout.context, stable_version=stable,
                               canary_version=rollout.version,
                               endpoint=endpoint)
    record_outcome(outcome, rollout.data, rollout.sections, step=step)
    rollout.check_cancelled(f"during analysis '{outcome.name}'")
    if not outcome.passed:
        raise StepFailed(f"{where}analysis '{outcome.name}' {outcome.message}")


def rollout_endpoint(rollout: Rollout) -> str | None:
    """Return the URL that clients use: the router's, else the environment's ``url``."""
    if rollout.router is not None:
        endpoint = rollout.router.endpoint()
        if endpoint:
            return endpoint
    environment = rollout.context.environment
    return environment.url if environment is not None else None
