"""How long the built-in strategies need at least to promote, and at most to roll back,
for ``shipline plan`` (hooks ``shipline_estimate_promotion`` and
``shipline_estimate_rollback``).

Minimum time to promote: only waits that nothing can shorten count. For a canary these
are its timed pauses and its analyses' minimum span (``initial_delay`` plus ``count - 1``
intervals; a ``judge: compare`` analysis its ``window``). For a rolling deploy they are
the pauses between batches. For blue-green they are the minimum span of
``pre_promotion_analysis`` and ``post_promotion_analysis``. Deploys, health checks and
approvals count as instant, and the scale-down delay is left out because it runs after
the new version has all traffic.

Maximum time of the rollback actions: rollbacks change up to 64 instances at once, and
a rolling deploy with ``max_unavailable`` no more than ``max_unavailable + max_surge``.
Each restore reads the instance's version and checks its health, then deploys the
previous version, each bounded by the target's time limits (the command target's
``timeout``; the local target's start timeout and request timeout). The estimate is one
such restore per group of instances restored at once, plus one deploy time limit for
the traffic change of a canary or blue-green deploy. It is ``None`` when the pipeline
file does not say how many instances there are or the target's limits are unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.errors import ShiplineError
from pipeline.rolloutoptions import (
    deploy_time_limit,
    environment_instance_count,
    health_time_limit,
)
from pipeline.rolloutparallel import MAX_PARALLEL

if TYPE_CHECKING:
    from pipeline.plan import Plan, Step

__all__ = ["minimum_analysis_seconds"]

_STRATEGIES = ("canary", "rolling", "blue-green")


@hookimpl
def shipline_estimate_promotion(step: Step, plan: Plan) -> float | None:
    if step.kind != "deploy" or step.type not in _STRATEGIES:
        return None
    try:
        if step.type == "canary":
            return _canary_promotion(step, plan)
        if step.type == "rolling":
            return _rolling_promotion(step, plan)
        return _blue_green_promotion(step, plan)
    except ShiplineError:
        # Invalid options: shipline validate reports them.
        return None


@hookimpl
def shipline_estimate_rollback(step: Step, plan: Plan) -> float | None:
    if step.kind != "deploy" or step.type not in _STRATEGIES:
        return None
    instances = environment_instance_count(plan, step)
    limit = deploy_time_limit(plan, step)
    check = health_time_limit(plan, step)
    if instances is None or limit is None or check is None:
        return None
    workers = MAX_PARALLEL
    if step.type == "rolling":
        from pipeline.builtin.rolling import RollingOptions

        try:
            workers = RollingOptions.parse(step.options).rollback_workers(instances)
        except ShiplineError:
            return None
    waves = -(-instances // max(workers, 1))
    traffic = 0 if step.type == "rolling" else limit
    return waves * (2 * check + limit) + traffic


def minimum_analysis_seconds(ref: Any, plan: Plan) -> float:
    """Return the shortest span of the analysis ``ref``, or 0 when it does not resolve."""
    from pipeline.analysissettings import (
        PLACEHOLDER_BUILTINS,
        prepare_analysis,
        resolve_analysis,
    )
    from pipeline.judge import JudgeSettings, is_comparison

    try:
        name, options, _given = resolve_analysis(ref, plan.analyses)
        if is_comparison(options):
            return JudgeSettings.from_options(name, options).window
        settings, _ = prepare_analysis(ref, plan.analyses, PLACEHOLDER_BUILTINS)
    except ShiplineError:
        return 0.0
    return settings.initial_delay + (settings.count - 1) * settings.interval


def _canary_promotion(step: Step, plan: Plan) -> float:
    from pipeline.builtin.canary import CanaryOptions

    total = 0.0
    for item in CanaryOptions.parse(step.options).steps:
        if item.kind == "pause" and item.approval is None:
            total += item.seconds
        elif item.kind == "analysis":
            total += minimum_analysis_seconds(item.analysis, plan)
    return total


def _rolling_promotion(step: Step, plan: Plan) -> float | None:
    from pipeline.amounts import batch_sizes
    from pipeline.builtin.rolling import RollingOptions

    instances = environment_instance_count(plan, step)
    if instances is None:
        return None
    options = RollingOptions.parse(step.options)
    batches = len(batch_sizes(instances, options.batch))
    return max(batches - 1, 0) * options.pause


def _blue_green_promotion(step: Step, plan: Plan) -> float:
    total = 0.0
    for key in ("pre_promotion_analysis", "post_promotion_analysis"):
        ref = step.options.get(key)
        if ref is not None:
            total += minimum_analysis_seconds(ref, plan)
    return total
