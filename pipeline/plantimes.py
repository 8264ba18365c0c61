"""Promotion and rollback times of each deploy stage, for ``shipline plan``.

For a stage with deploy steps:

``min_promote``
    The sum of the deploy steps' ``shipline_estimate_promotion`` results: the shortest
    time before every new version of the stage is promoted, when each check passes at
    once and each approval is already there.
``max_rollback``
    The sum of the deploy steps' ``shipline_estimate_rollback`` results: the longest the
    rollback actions of the stage can take once a step has failed. The runner rolls back
    every deploy step of the stage that made a change.
``worst_case``
    The longest the job can run until this stage is rolled back: the maximum durations
    of this stage and of every stage before it in run order, plus ``max_rollback``.
    The runner runs stages one after another, so this sum is an upper bound.

Each value is ``None`` (unknown) when one of its parts is. With ``--job-timeout``, a
stage whose ``worst_case`` is longer, or unknown, gets a warning, because the CI runner
may cancel the job before the rollback finishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.durations import format_duration

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.plan import Plan

__all__ = ["StageTimes", "deploy_stage_times", "job_timeout_warnings"]


@dataclass(frozen=True)
class StageTimes:
    """The promotion and rollback times of one deploy stage, in seconds."""

    stage: str
    min_promote: float | None
    max_rollback: float | None
    worst_case: float | None


def deploy_stage_times(
    plan: Plan, config: Config, stage_durations: Sequence[float | None]
) -> list[StageTimes]:
    """Return the times of each stage with deploy steps, in run order.

    ``stage_durations`` are the maximum durations of ``plan.stages``, in the same order
    (``None`` for unbounded).
    """
    times = []
    elapsed: float | None = 0.0
    for stage, duration in zip(plan.stages, stage_durations, strict=True):
        elapsed = _add(elapsed, duration)
        deploys = [step for step in stage.steps if step.kind == "deploy"]
        if not deploys:
            continue
        promote = _sum(config.hook.shipline_estimate_promotion(step=step, plan=plan)
                       for step in deploys)
        rollback = _sum(config.hook.shipline_estimate_rollback(step=step, plan=plan)
                        for step in deploys)
        times.append(StageTimes(stage.name, promote, rollback, _add(elapsed, rollback)))
    return times


def job_timeout_warnings(times: Sequence[StageTimes], job_timeout: float) -> list[str]:
    """Return one warning per stage whose worst case may outlast ``job_timeout``."""
    limit = format_duration(job_timeout)
    warnings = []
    for item in times:
        if item.worst_case is None:
            warnings.append(
                f"stage '{item.stage}': the worst case with rollback is unbounded or "
                f"unknown, so the job timeout {limit} may cancel a rollback; set timeouts "
                f"on the stages and steps"
            )
        elif item.worst_case > job_timeout:
            warnings.append(
                f"stage '{item.stage}': the worst case with rollback is "
                f"{format_duration(item.worst_case)}, longer than the job timeout {limit}, "
                f"so the CI runner may cancel the job before the rollback finishes; "
                f"raise the job timeout or shorten pauses, analyses and timeouts"
            )
    return warnings


def _add(total: float | None, value: float | None) -> float | None:
    if total is None or value is None:
        return None
    return total + value


def _sum(values: Iterable[float | None]) -> float | None:
    total: float | None = 0.0
    for value in values:
        total = _add(total, value)
    return total


def short_timeout_warnings(plan: Plan, config: Config) -> list[str]:
    """Return one warning per deploy step whose ``timeout``, or its stage's, is shorter
    than the least time the step needs to promote: such a step can never pass."""
    warnings = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "deploy":
                continue
            least = config.hook.shipline_estimate_promotion(step=step, plan=plan)
            limits = [(value, owner) for value, owner in
                      ((step.timeout, "its timeout"), (stage.timeout, "its stage's timeout"))
                      if value is not None]
            if least is None or not limits:
                continue
            limit, owner = min(limits)
            if limit < least:
                where = f" (line {step.mark.line})" if step.mark else ""
                warnings.append(
                    f"step '{step.name}'{where}: {owner} {format_duration(limit)} is shorter "
                    f"than the {format_duration(least)} its pauses and analyses take at "
                    f"least, so it cannot pass; raise the timeout or shorten them"
                )
    return warnings

