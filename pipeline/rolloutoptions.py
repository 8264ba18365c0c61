"""Options of the deploy strategies: parsing, limits read from the plan, JSON Schema pieces
and the diagnostics ``shipline validate`` reports for values the schema cannot check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.amounts import PERCENT_PATTERN
from pipeline.checkspec import CHECK_SCHEMA
from pipeline.durations import DURATION_PATTERN, parse_duration
from pipeline.errors import ShiplineError
from pipeline.rollouterrors import OptionError

if TYPE_CHECKING:
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan, Step


# -- options -----------------------------------------------------------------------------


def option_duration(
    options: Mapping[str, Any], key: str, default: float, prefix: str = ""
) -> float:
    """Return the duration option ``key`` in seconds, or ``default`` when it is missing.

    Raises OptionError naming the option (``prefix.key``) for an invalid duration.
    """
    if key not in options:
        return default
    try:
        return parse_duration(options[key])
    except ValueError as exc:
        name = f"{prefix}.{key}" if prefix else key
        raise OptionError(f"{name}: {exc}") from exc


def deploy_time_limit(plan: Plan, step: Step) -> float | None:
    """Return the longest one instance's deploy can take on the step's target, in
    seconds, or None for a target type whose limit is unknown (a plugin's).

    On the command target that is the per-command ``timeout``; on the local target,
    ``start_timeout`` plus the grace that stopping the old process may take.
    """
    return _target_limit(plan, step, "deploy")


def health_time_limit(plan: Plan, step: Step) -> float | None:
    """Return the longest one health check of one instance can take on the step's
    target, in seconds, or None for a target type whose limit is unknown (a plugin's).

    On the command target the health command has the per-command ``timeout``; on the
    local target each health request has a fixed time limit.
    """
    return _target_limit(plan, step, "health")


def call_time_limit(plan: Plan, step: Step) -> float | None:
    """Return the longest one other call of the step's target can take, in seconds: a
    version or active-slot read, a traffic change or a removal. None when unknown.

    On the command target each is a command with the per-command ``timeout``. On the
    local target the longest is stopping a process, which gets a fixed grace.
    """
    return _target_limit(plan, step, "call")


def _target_limit(plan: Plan, step: Step, call: str) -> float | None:
    """Return the time limit of ``call`` (``deploy``, ``health`` or any other call) on
    the step's target, if it is a built-in target."""
    from pipeline.builtin import command_target, local_target

    options = _target_options(plan, step)
    kind = options.get("type") if options is not None else None
    if options is None or kind not in (command_target.TARGET_TYPE, local_target.TARGET_TYPE):
        return None
    if kind == command_target.TARGET_TYPE:
        return _seconds(options, "timeout", command_target.DEFAULT_TIMEOUT)
    if call == "deploy":
        start = _seconds(options, "start_timeout", local_target.DEFAULT_START_TIMEOUT)
        return start + local_target.STOP_GRACE
    if call == "health":
        return local_target.REQUEST_TIMEOUT
    return max(local_target.STOP_GRACE, local_target.REQUEST_TIMEOUT)


def parallel_waves(instances: int, workers: int | None = None) -> int:
    """Return how many rounds of parallel calls cover ``instances`` instances,
    ``workers`` at a time (default: as many as a rollout runs at once)."""
    from pipeline.rolloutparallel import MAX_PARALLEL

    return max(-(-instances // max(workers or MAX_PARALLEL, 1)), 1)


def read_rounds(instances: int, workers: int | None = None) -> int:
    """Return how many rounds reading the versions of ``instances`` instances takes: the
    first read alone, which decides whether the rest run in parallel, then the rest
    ``workers`` at a time (see :meth:`pipeline.rollout.Rollout.read_versions`)."""
    if instances <= 1:
        return 1
    return 1 + parallel_waves(instances - 1, workers)


def update_time_limit(plan: Plan, step: Step, health: HealthPolicy) -> float | None:
    """Return the longest updating one instance can take, in seconds: its deploy and
    then its health wait; None when the target's limits are unknown."""
    deploy = deploy_time_limit(plan, step)
    attempt = health_time_limit(plan, step)
    if deploy is None or (health.enabled and attempt is None):
        return None
    return deploy + health.longest(attempt or 0.0)


@dataclass(frozen=True)
class SlotTimes:
    """The maximum durations of the parts of a deploy to a slot (blue-green, canary), in
    seconds."""

    #: Deploying the idle slot and waiting for its health, in rounds of instances.
    deploy: float
    #: Reading the active slot, its versions and the idle slot's versions, changing
    #: traffic once, and removing the old version.
    calls: float
    #: One more call of the target, such as a weight change.
    call: float


def slot_times(plan: Plan, step: Step, health: HealthPolicy) -> SlotTimes | None:
    """Return the longest parts of a slot deploy of ``step``, or None when the pipeline
    file does not list the instances or the target's time limits are unknown."""
    instances = environment_instance_count(plan, step)
    per_wave = update_time_limit(plan, step, health)
    call = call_time_limit(plan, step)
    if instances is None or per_wave is None or call is None:
        return None
    waves = parallel_waves(instances)
    reads = 1 + waves + read_rounds(instances)
    return SlotTimes(deploy=waves * per_wave, calls=(reads + 1 + waves) * call, call=call)


def _target_options(plan: Plan, step: Step) -> Mapping[str, Any] | None:
    stage = plan.stage(step.stage)
    if stage.environment is None or stage.environment not in plan.environments:
        return None
    return plan.environments[stage.environment].target


def _seconds(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key)
    return default if value is None else parse_duration(value)


def environment_instance_count(plan: Plan, step: Step) -> int | None:
    """Return how many instances serve traffic in the step's environment, read from the
    target's ``instances`` option (a list or a count) or from its ``slots`` (the size of
    the largest slot). Return None when the pipeline file lists neither.
    """
    stage = plan.stage(step.stage)
    if stage.environment is None or stage.environment not in plan.environments:
        return None
    options = plan.environments[stage.environment].target
    instances = options.get("instances")
    if isinstance(instances, int) and not isinstance(instances, bool):
        return instances
    if isinstance(instances, Sequence) and not isinstance(instances, str):
        return len(instances)

    slots = options.get("slots")
    if isinstance(slots, Mapping):
        sizes = [len(members) for members in slots.values()
                 if isinstance(members, Sequence) and not isinstance(members, str)]
        return max(sizes) if sizes else None
    return None


# -- schema pieces -----------------------------------------------------------------------

#: A duration: seconds as a number, or a string such as ``500ms``, ``30s``, ``5m``.
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
}

#: A count of instances or a percentage of them.
AMOUNT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": PERCENT_PATTERN},
    ],
}

#: A count of instances, at least 1, or a percentage of them: the size of a batch.
BATCH_AMOUNT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": PERCENT_PATTERN},
    ],
}


def described(schema: Mapping[str, Any], title: str, description: str) -> dict[str, Any]:
    """Return a copy of ``schema`` with a title and a description, for option fragments."""
    return {**schema, "title": title, "description": description}


def health_schema() -> dict[str, Any]:
    """Return the JSON Schema of the ``health`` option shared by the strategies."""
    return {
        "title": "Health check",
        "description": "How long each updated instance may take to pass the target's "
        "health check, or false to skip it.",
        "anyOf": [
            {"const": False},
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "timeout": described(DURATION_SCHEMA, "Health timeout",
                                         "Time within which the instance must pass (default "
                                         "60s)."),
                    "retries": {"title": "Health retries",
                                "description": "Failed attempts repeated before the instance "
                                "counts as failed (default 5).",
                                "type": "integer", "minimum": 0},
                    "interval": described(DURATION_SCHEMA, "Health interval",
                                          "Wait between two attempts (default 2s)."),
                },
            },
        ],
    }


def check_list_schema(title: str, description: str) -> dict[str, Any]:
    """Return the JSON Schema of a list of checks (``http`` or ``command``)."""
    return {"title": title, "description": description, "type": "array",
            "items": dict(CHECK_SCHEMA)}


def previous_version_schema() -> dict[str, Any]:
    return {
        "title": "Previous version",
        "description": "The version a rollback restores on instances whose running "
        "version the target cannot read. Without it, such a rollback fails (exit 4).",
        "type": "string",
    }


def option_diagnostics(
    plan: Plan, strategy: str, parse: Callable[[Step], object]
) -> list[Diagnostic]:
    """Parse the options of every deploy step of ``strategy`` in ``plan`` with ``parse``
    and return one diagnostic per OptionError, so that ``shipline validate`` reports
    what the JSON Schema cannot express (a percentage above 100, for example).

    The diagnostic points at the option that the message starts with (``batch[1]:``,
    ``health.timeout:``) when the step has it, else at the step.
    """
    from pipeline.diagnostics import Diagnostic

    diagnostics = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "deploy" or step.type != strategy:
                continue
            try:
                parse(step)
            except ShiplineError as exc:
                option, rest = _named_option(str(exc), step.options)
                if option:
                    # The mark is looked up from the path when the plan is checked, and
                    # the path already names the option.
                    diagnostics.append(Diagnostic(rest, None, (*step.path, "deploy", *option)))
                else:
                    diagnostics.append(Diagnostic(str(exc), step.mark, (*step.path, "deploy")))
    return diagnostics


_OPTION_PREFIX = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\])*): ")


def _named_option(
    message: str, options: Mapping[str, Any]
) -> tuple[tuple[str | int, ...], str]:
    """Return the path of the option that ``message`` starts with and the rest of the
    message, such as ``("batch", 1)`` for ``batch[1]: ...``.

    Returns ``()`` and the whole message when ``options`` has no such option.
    """
    match = _OPTION_PREFIX.match(message)
    if match is None:
        return (), message
    parts: list[str | int] = [int(part) if part.isdigit() else part
                              for part in re.findall(r"[A-Za-z_]\w*|\d+", match.group(1))]
    value: Any = options
    for part in parts:
        if isinstance(part, int) and isinstance(value, Sequence) and not isinstance(value, str):
            if part >= len(value):
                return (), message
            value = value[part]
        elif isinstance(part, str) and isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return (), message
    return tuple(parts), message[match.end():]


@dataclass(frozen=True)
class HealthPolicy:
    """How long an instance may take to pass ``target.health`` after a deploy.

    Each attempt is one call of the target's health check. A failed attempt is
    repeated ``retries`` times, ``interval`` seconds apart, as long as the next attempt
    starts within ``timeout`` seconds of the first.
    """

    enabled: bool = True
    timeout: float = 60.0
    retries: int = 5
    interval: float = 2.0

    @classmethod
    def parse(cls, value: object, option: str = "health") -> HealthPolicy:
        """Build a policy from the ``health`` option: a mapping, ``false`` or missing."""
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(enabled=False)
        if not isinstance(value, Mapping):
            raise OptionError(f"{option}: expected a mapping or false")

        default = cls()
        retries = value.get("retries", default.retries)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise OptionError(f"{option}.retries: {retries!r} is not valid: use 0 or more")
        return cls(
            timeout=option_duration(value, "timeout", default.timeout, option),
            retries=retries,
            interval=option_duration(value, "interval", default.interval, option),
        )

    def longest(self, attempt_limit: float) -> float:
        """Return the longest a health wait can take, in seconds, for plan estimates.

        ``attempt_limit`` is the longest one attempt can take on the target. A failed
        attempt is repeated only when the next one starts within ``timeout`` of the
        first, and at most ``retries`` times.
        """
        if not self.enabled:
            return 0.0
        by_count = (self.retries + 1) * attempt_limit + self.retries * self.interval
        return min(by_count, self.timeout + attempt_limit)
