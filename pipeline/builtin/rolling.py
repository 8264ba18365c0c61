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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.amounts import batch_sizes, parse_amount
from pipeline.rollouterrors import OptionError
from pipeline.rolloutoptions import (
    AMOUNT_SCHEMA,
    BATCH_AMOUNT_SCHEMA,
    DURATION_SCHEMA,
    HealthPolicy,
    call_time_limit,
    check_list_schema,
    described,
    environment_instance_count,
    health_schema,
    option_diagnostics,
    option_duration,
    previous_version_schema,
    read_rounds,
    update_time_limit,
)
from pipeline.rolloutparallel import MAX_PARALLEL
from pipeline.schema import StepSchema
from pipeline.target import Capability

if TYPE_CHECKING:

    from pipeline.config import Config
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan, Step
    from pipeline.rollingrun import RollingStrategy

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


def _schema() -> dict[str, Any]:
    from pipeline.analysis import ANALYSIS_REF_SCHEMA

    return {
        "properties": {
            "batch": {
                "title": "Batch size",
                "description": "Instances per batch: a count, a percentage of all instances "
                "(rounded up), or a list such as [1, '10%', '50%'] whose last entry repeats "
                "(default 1).",
                "anyOf": [*BATCH_AMOUNT_SCHEMA["anyOf"],
                          {"type": "array", "items": BATCH_AMOUNT_SCHEMA, "minItems": 1}],
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
    from pipeline.rollingrun import RollingStrategy

    return RollingStrategy()


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    return option_diagnostics(plan, STRATEGY, lambda step: RollingOptions.parse(step.options))


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    """Sum, for every batch, the reads of its versions, the deploys at their time limit,
    the health waits and checks, plus the pauses between batches.

    Returns None when the pipeline file does not list the instances or the target's
    time limits are unknown.
    """
    if step.kind != "deploy" or step.type != STRATEGY:
        return None
    options = RollingOptions.parse(step.options)
    total = environment_instance_count(plan, step)
    per_wave = update_time_limit(plan, step, options.health)
    read = call_time_limit(plan, step)
    if total is None or per_wave is None or read is None:
        return None
    from pipeline.analysis import estimate_analysis_or_zero
    from pipeline.checkspec import estimate_seconds

    sizes = batch_sizes(total, options.batch)
    waves = sum(-(-size // max(options.in_flight(size, total), 1)) for size in sizes)
    checks = len(sizes) * sum(estimate_seconds(c) for c in options.checks)
    checks += sum(read_rounds(size, options.in_flight(size, total)) * read for size in sizes)
    if options.analysis is not None:
        checks += len(sizes) * estimate_analysis_or_zero(options.analysis, plan)
    return waves * per_wave + checks + max(len(sizes) - 1, 0) * options.pause
