"""The ``rolling`` deploy strategy: update the serving instances in place, batch by batch.

Options besides ``version``:

``batch`` (default ``1``)
    Instances per batch: a count, a percentage of all instances (rounded up), or a
    list such as ``[1, "10%", "50%"]`` whose last entry repeats. After each batch its
    instances must be healthy and the ``checks`` must pass before the next one starts.
``max_unavailable`` (default: no limit beyond the batch size)
    How many instances may be out of service at once: a count or a percentage of all
    instances, rounded down. An in-place deploy takes an instance out of service from
    the start of its deploy until it passes its health check, so this caps the updates
    in flight inside a batch.
``max_surge`` (default ``0``)
    Updates allowed in flight on top of ``max_unavailable``: a count or a percentage,
    rounded up. An in-place target has no spare instances to add, so shipline counts
    as surge an update whose deploy keeps the old version serving until it switches
    (a release directory behind an atomic symlink, a process started beside the old
    one). Set it only for such targets. It has an effect only when ``max_unavailable``
    is set: a batch then updates ``min(batch, max_unavailable + max_surge)`` instances
    at once. Both set to 0 is an error. When percentages round both down to 0, one
    instance is updated at a time.
``pause`` (default ``0``)
    Wait between two batches (a duration). A batch that changed no instance, because
    each already ran the version (as after ``--resume``), is not followed by a pause.
``health`` (default ``{timeout: 60s, retries: 5, interval: 2s}``)
    How long each updated instance may take to pass the target's health check, or
    ``false`` to skip it.
``checks`` (default none)
    Check specs (``http`` or ``command``) run after each batch, with ``{version}``
    filled in. A check that mentions ``{instance}`` runs once per updated instance of
    the batch, and a failure counts against that instance. Any other check runs once,
    and its failure fails the step.
``analysis`` (default none)
    An analysis (template name, template with ``args``, or inline; see
    :mod:`pipeline.analysis`) run after each batch and its checks. Unless its policies
    let it pass, the step fails and every updated instance is rolled back. Its
    ``stable_version`` is ``previous_version``, when given.
``max_failures`` (default ``0``)
    Failed instances (deploy failed, unhealthy, or an instance check failed) tolerated
    before the step fails: a count or a percentage of all instances, rounded down.
    Tolerated failures stay as they are and are listed in the report.
``previous_version``
    What a rollback restores on an instance whose version the target cannot read.

An instance that already runs the version is left alone. The rollback deploys the
version each updated instance ran before, in parallel whatever the ``batch`` (with
``max_unavailable`` set, at most ``max_unavailable + max_surge`` at once); it fails
(exit 4) for an instance whose previous version is unknown.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.rollout import (
    AMOUNT_SCHEMA,
    DURATION_SCHEMA,
    HealthPolicy,
    OptionError,
    Rollout,
    StepFailed,
    batch_sizes,
    check_list_schema,
    deploy_time_limit,
    described,
    environment_instance_count,
    health_schema,
    option_diagnostics,
    option_duration,
    parse_amount,
    previous_version_schema,
    restore_previous,
    run_checks,
    serving_instances,
    split_batches,
)
from pipeline.rolloutparallel import MAX_PARALLEL, started_pool
from pipeline.schema import StepSchema
from pipeline.target import Capability

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan, Step
    from pipeline.report import StepReport

STRATEGY = "rolling"


@dataclass(frozen=True)
class RollingOptions:
    """The options of a rolling deploy step, checked; amounts stay as written."""

    batch: object = 1
    max_unavailable: object | None = None
    max_surge: object = 0
    pause: float = 0.0
    health: HealthPolicy = field(default_factory=HealthPolicy)
    checks: tuple[Mapping[str, Any], ...] = ()
    #: An analysis reference run after each batch and its checks, or ``None``.
    analysis: Any = None
    max_failures: object = 0

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> RollingOptions:
        """Check the options; raise OptionError naming the first invalid one."""
        parsed = cls(
            batch=options.get("batch", 1),
            max_unavailable=options.get("max_unavailable"),
            max_surge=options.get("max_surge", 0),
            pause=option_duration(options, "pause", 0.0),
            health=HealthPolicy.parse(options.get("health")),
            checks=tuple(options.get("checks") or ()),
            analysis=options.get("analysis"),
            max_failures=options.get("max_failures", 0),
        )
        parsed.in_flight(batch_size=1, total=100)
        batch_sizes(100, parsed.batch)
        parse_amount(parsed.max_failures, 100, option="max_failures", round_up=False)
        return parsed

    def in_flight(self, batch_size: int, total: int) -> int:
        """Return how many instances of a batch of ``batch_size`` are updated at once."""
        if self.max_unavailable is None:
            parse_amount(self.max_surge, total, option="max_surge", round_up=True)
            return batch_size

        unavailable = parse_amount(self.max_unavailable, total, option="max_unavailable",
                                   round_up=False)
        surge = parse_amount(self.max_surge, total, option="max_surge", round_up=True)
        if self.max_unavailable in (0, "0", "0%") and self.max_surge in (0, "0", "0%"):
            raise OptionError(
                "max_unavailable and max_surge are both 0, so no instance could be "
                "updated: raise one of them"
            )
        return max(1, min(batch_size, unavailable + surge))

    def rollback_workers(self, total: int) -> int:
        """Return how many instances a rollback restores at once.

        The batch size paces the rollout only, so a rollback does not wait on it. With
        ``max_unavailable`` set, the rollback keeps to the same limit on instances out
        of service as the rollout, ``max_unavailable + max_surge``.
        """
        if self.max_unavailable is None:
            return MAX_PARALLEL
        return self.in_flight(batch_size=total, total=total)


class RollingStrategy:
    """Updates instances in place, batch by batch; see the module documentation."""

    def requires(self) -> frozenset[Capability]:
        return frozenset()

    def run(self, step: Step, context: RunContext) -> StepReport:
        options = RollingOptions.parse(step.options)
        rollout = Rollout.start(step, context)
        return rollout.run(lambda r: _roll(r, options))


def _roll(rollout: Rollout, options: RollingOptions) -> str:
    """Update every serving instance batch by batch; return the success message."""
    instances = serving_instances(rollout.target, rollout.router)
    if not instances:
        raise StepFailed(f"environment '{rollout.environment_name}' has no instances")
    total = len(instances)
    batches = split_batches(instances, options.batch)
    limits = [options.in_flight(len(batch), total) for batch in batches]
    allowed = parse_amount(options.max_failures, total, option="max_failures", round_up=False)
    rollout.table.update_all(instances, result="not reached")
    _register_rollback(rollout, workers=options.rollback_workers(total))

    stop = threading.Event()
    pool = started_pool(max(limits), "shipline-rolling")
    try:
        for number, (batch, limit) in enumerate(zip(batches, limits, strict=True), start=1):
            where = f"batch {number} of {len(batches)}"
            rollout.check_cancelled(f"before {where}")
            _update_batch(rollout, options, batch, limit=limit, stop=stop, allowed=allowed,
                          pool=pool)
            rollout.check_cancelled(f"during {where}")
            _fail_beyond(rollout, total, allowed)

            if options.checks:
                _run_batch_checks(rollout, options, batch, limit=limit, where=where, pool=pool)
                _fail_beyond(rollout, total, allowed)
            _run_batch_analysis(rollout, options, number, where)

            # A batch whose instances all ran the version already (as after --resume)
            # changed nothing to watch, so it gets no pause.
            changed = any(state.result != "unchanged"
                          for state in rollout.table.get_all(batch))
            if number < len(batches) and options.pause > 0 and changed:
                rollout.sleep(options.pause, f"during the pause after {where}")
    finally:
        # Not waiting for the idle threads to exit saves 2 ms at the end of the step;
        # run_parallel has waited for every call already.
        pool.shutdown(wait=False)
    return _success_message(rollout, total, len(batches), allowed)


def _register_rollback(rollout: Rollout, workers: int) -> None:
    target = rollout.target
    context = rollout.context

    def restore() -> str:
        states = rollout.table.rows()
        if not any(state.touched for state in states):
            return "nothing to restore: no instance was changed"
        return restore_previous(target, states, fallback=rollout.fallback,
                                cancel=context.cancel, workers=workers)

    context.add_rollback(rollout.step, f"restore the versions that ran before {rollout.version}",
                         restore)


def _update_batch(
    rollout: Rollout,
    options: RollingOptions,
    batch: Sequence[str],
    *,
    limit: int,
    stop: threading.Event,
    allowed: int,
    pool: ThreadPoolExecutor,
) -> None:
    """Update the instances of one batch, ``limit`` at a time.

    Once more than ``allowed`` instances of the whole step have failed, instances of the
    batch that have not started are left alone.
    """
    lock = threading.Lock()

    def failed(_instance: str) -> None:
        with lock:
            if _failures(rollout) > allowed:
                stop.set()

    rollout.update_instances(batch, options.health, workers=limit, pool=pool, stop=stop,
                             on_failure=failed)


def _run_batch_checks(
    rollout: Rollout,
    options: RollingOptions,
    batch: Sequence[str],
    *,
    limit: int,
    where: str,
    pool: ThreadPoolExecutor,
) -> None:
    updated = [state.instance for state in rollout.table.get_all(batch)
               if state.result == "updated"]
    runs = run_checks(options.checks, rollout.context, instances=updated,
                      placeholders={"version": rollout.version}, workers=limit, pool=pool)
    rollout.check_cancelled(f"during the checks after {where}")

    for run in runs:
        if run.ok:
            continue
        name = run.instance or run.label
        rollout.table.add_output(name, run.label, run.output)
        if run.instance is None:
            raise StepFailed(f"{where}: {run.message}")
        rollout.table.update(run.instance, result="check failed", message=run.message)


def _failures(rollout: Rollout) -> int:
    return len(rollout.table.failures())


def _fail_beyond(rollout: Rollout, total: int, allowed: int) -> None:
    failed = rollout.table.failures()
    if len(failed) > allowed:
        first = failed[0]
        raise StepFailed(
            f"{len(failed)} of {total} instances failed and max_failures allows {allowed}: "
            f"{first.instance}: {first.message}"
        )


def _success_message(rollout: Rollout, total: int, batches: int, allowed: int) -> str:
    updated = rollout.table.count("updated")
    unchanged = rollout.table.count("unchanged")
    failed = _failures(rollout)
    plural = "batch" if batches == 1 else "batches"
    message = f"{rollout.version} deployed to {updated} of {total} instances in {batches} {plural}"
    if unchanged:
        message += f"; {unchanged} already ran it"
    if failed:
        message += f"; {failed} failed, within max_failures ({allowed})"
    return message


# -- hooks -------------------------------------------------------------------------------


def _run_batch_analysis(
    rollout: Rollout, options: RollingOptions, number: int, where: str
) -> None:
    """Run the step's ``analysis`` after batch ``number``; raise StepFailed unless it passes."""
    if options.analysis is None:
        return
    from pipeline.analysisstep import analyse_rollout, rollout_endpoint

    analyse_rollout(rollout, options.analysis, stable=rollout.fallback,
                    endpoint=rollout_endpoint(rollout), step=number, where=f"{where}: ")


def _schema() -> dict[str, Any]:
    from pipeline.analysis import ANALYSIS_REF_SCHEMA

    return {
        "properties": {
            "batch": {
                "title": "Batch size",
                "description": "Instances per batch: a count, a percentage of all instances "
                "(rounded up), or a list such as [1, '10%', '50%'] whose last entry repeats "
                "(default 1).",
                "anyOf": [*AMOUNT_SCHEMA["anyOf"],
                          {"type": "array", "items": AMOUNT_SCHEMA, "minItems": 1}],
            },
            "max_unavailable": described(
                AMOUNT_SCHEMA, "Max unavailable",
                "Instances that may be out of service at once, updating or not yet healthy: "
                "a count or a percentage, rounded down (default: the batch size).",
            ),
            "max_surge": described(
                AMOUNT_SCHEMA, "Max surge",
                "Updates in flight on top of max_unavailable, for targets whose deploy keeps "
                "the old version serving until it switches: a count or a percentage, rounded "
                "up (default 0).",
            ),
            "pause": described(DURATION_SCHEMA, "Pause",
                               "Wait between two batches (default 0)."),
            "health": health_schema(),
            "checks": check_list_schema(
                "Checks", "Checks run after each batch. A check that mentions {instance} runs "
                "once per updated instance; {version} is filled in.",
            ),
            "analysis": {
                **ANALYSIS_REF_SCHEMA,
                "title": "Analysis",
                "description": "An analysis run after each batch and its checks: a template "
                "name, a template with args, or an inline analysis.",
            },
            "max_failures": described(
                AMOUNT_SCHEMA, "Max failures",
                "Failed instances tolerated before the step fails: a count or a percentage, "
                "rounded down (default 0).",
            ),
            "previous_version": previous_version_schema(),
        },
    }


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(kind="deploy", type=STRATEGY, schema=_schema(),
                       description="Update the instances in place, batch by batch.")]


@hookimpl
def shipline_strategy_requires(step: Step) -> frozenset[Capability] | None:
    if step.type != STRATEGY:
        return None
    return frozenset()


@hookimpl
def shipline_make_strategy(step: Step) -> RollingStrategy | None:
    if step.type != STRATEGY:
        return None
    return RollingStrategy()


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    return option_diagnostics(plan, STRATEGY, lambda step: RollingOptions.parse(step.options))


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    """Sum, for every batch, the deploys at their time limit, the health waits and checks,
    plus the pauses between batches.

    Returns None when the pipeline file does not list the instances or the target's
    deploy time limit is unknown.
    """
    if step.kind != "deploy" or step.type != STRATEGY:
        return None
    total = environment_instance_count(plan, step)
    deploy_limit = deploy_time_limit(plan, step)
    if total is None or deploy_limit is None:
        return None
    from pipeline.analysis import estimate_analysis_or_zero
    from pipeline.checks import estimate_seconds

    options = RollingOptions.parse(step.options)
    sizes = batch_sizes(total, options.batch)
    per_wave = deploy_limit + options.health.longest()
    waves = sum(-(-size // max(options.in_flight(size, total), 1)) for size in sizes)
    checks = len(sizes) * sum(estimate_seconds(c) for c in options.checks)
    if options.analysis is not None:
        checks += len(sizes) * estimate_analysis_or_zero(options.analysis, plan)
    return waves * per_wave + checks + max(len(sizes) - 1, 0) * options.pause
