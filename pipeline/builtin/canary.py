"""The ``canary`` deploy strategy: shift traffic to the new version step by step.

Options besides ``version``:

``steps`` (required)
    A list of steps, each a mapping with one key:

    - ``set_weight: N``: send N percent (0-100) of requests to the new version;
    - ``pause: DURATION``, ``pause: {duration: DURATION}``, or
      ``pause: {until_approved: {file, env, timeout, interval}}`` (see
      :mod:`pipeline.approval`): wait, or wait for a person;
    - ``analysis: NAME`` or an inline analysis: run it (see :mod:`pipeline.analysis`)
      and fail the step unless its verdict is successful.

    After the last step the new version gets all traffic, as if ``set_weight: 100``.
``traffic`` (default ``auto``)
    How weights reach users. With ``router``, the environment's router (or the target
    acting as one) sends the weight to the idle slot, which runs the new version, and
    promotion switches traffic to that slot. The environment must then offer WEIGHTS
    and SLOTS, which ``shipline validate`` checks. With ``instances``, the weight
    becomes the share of the serving instances that run the new version, updated in
    place: ``ceil(weight * N / 100)``, so any weight above 0 gets at least one
    instance. ``auto`` means ``router`` when the environment offers WEIGHTS and SLOTS
    and the target has two slots, and ``instances`` otherwise.
``health`` (default ``{timeout: 60s, retries: 5, interval: 2s}``)
    How long each instance given the new version may take to pass the target's health
    check, or ``false`` to skip it.
``scale_down_delay`` (default ``30s``)
    With ``router`` traffic: how long the old slot keeps running after promotion
    before its version is removed.
``previous_version``
    What a rollback restores when the target cannot read an instance's version.

On a failure or an interrupt the rollback sets the canary's weight back to 0 and
removes the canary. With a router, it switches traffic back if the canary was
promoted, and removes the new version from the idle slot. In place, the canary
instances get their previous version again. The previous version then serves
everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.approval import APPROVAL_SCHEMA, ApprovalSpec, wait_for_approval
from pipeline.context import RollbackFailed
from pipeline.errors import ShiplineError
from pipeline.rollout import (
    DURATION_SCHEMA,
    MAX_PARALLEL,
    HealthPolicy,
    OptionError,
    Rollout,
    SlotDeploy,
    StepFailed,
    capabilities_of,
    described,
    health_schema,
    instances_for_weight,
    option_diagnostics,
    option_duration,
    previous_version_schema,
    restore_previous,
    serving_instances,
)
from pipeline.schema import StepSchema
from pipeline.target import Capability, Router

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan, Step
    from pipeline.report import StepReport

STRATEGY = "canary"

#: Seconds the old slot keeps running after promotion, unless ``scale_down_delay`` is set.
DEFAULT_SCALE_DOWN_DELAY = 30.0

TRAFFIC_MODES = ("auto", "router", "instances")

_ROUTER_NEEDS = frozenset({Capability.WEIGHTS, Capability.SLOTS})


@dataclass(frozen=True)
class CanaryStep:
    """One entry of ``steps``: ``kind`` is ``set_weight``, ``pause`` or ``analysis``."""

    kind: str
    weight: int = 0
    #: Seconds of a timed pause.
    seconds: float = 0.0
    approval: ApprovalSpec | None = None
    #: The analysis template name or inline mapping.
    analysis: Any = None

    def describe(self) -> str:
        if self.kind == "set_weight":
            return f"set_weight {self.weight}"
        if self.kind == "analysis":
            # Imported here: the analysis modules load only for pipelines that use one.
            from pipeline.analysissettings import analysis_label

            return f"analysis '{analysis_label(self.analysis)}'"
        return "pause until approved" if self.approval else "pause"


@dataclass(frozen=True)
class CanaryOptions:
    """The options of a canary deploy step, checked."""

    steps: tuple[CanaryStep, ...]
    traffic: str = "auto"
    health: HealthPolicy = field(default_factory=HealthPolicy)
    scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> CanaryOptions:
        """Check the options; raise OptionError (or ShiplineError) naming the invalid one."""
        traffic = options.get("traffic", "auto")
        if traffic not in TRAFFIC_MODES:
            raise OptionError(
                f"traffic: {traffic!r} is not valid: use {', '.join(TRAFFIC_MODES)}"
            )
        return cls(
            steps=_parse_steps(options.get("steps")),
            traffic=str(traffic),
            health=HealthPolicy.parse(options.get("health")),
            scale_down_delay=option_duration(options, "scale_down_delay",
                                             DEFAULT_SCALE_DOWN_DELAY),
        )


def _parse_steps(value: object) -> tuple[CanaryStep, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise OptionError("steps: expected a list of set_weight, pause and analysis steps")
    return tuple(_parse_step(item, f"steps[{index}]") for index, item in enumerate(value))


def _parse_step(item: object, where: str) -> CanaryStep:
    if not isinstance(item, Mapping) or len(item) != 1:
        raise OptionError(f"{where}: expected a mapping with one key: set_weight, pause or "
                          "analysis")
    [(kind, value)] = item.items()

    if kind == "set_weight":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise OptionError(f"{where}.set_weight: {value!r} is not valid: use 0 to 100")
        return CanaryStep("set_weight", weight=value)
    if kind == "analysis":
        return CanaryStep("analysis", analysis=value)
    if kind != "pause":
        raise OptionError(f"{where}: unknown step {kind!r}: use set_weight, pause or analysis")

    if isinstance(value, Mapping) and "until_approved" in value:
        return CanaryStep("pause", approval=ApprovalSpec.parse(
            value["until_approved"], f"{where}.pause.until_approved"))
    if isinstance(value, Mapping):
        return CanaryStep("pause", seconds=option_duration(value, "duration", 0.0,
                                                           f"{where}.pause"))
    return CanaryStep("pause", seconds=option_duration({"pause": value}, "pause", 0.0, where))


class CanaryStrategy:
    """Shifts traffic to the new version step by step; see the module documentation."""

    def __init__(self, traffic: str = "auto") -> None:
        self.traffic = traffic

    def requires(self) -> frozenset[Capability]:
        return _ROUTER_NEEDS if self.traffic == "router" else frozenset()

    def run(self, step: Step, context: RunContext) -> StepReport:
        options = CanaryOptions.parse(step.options)
        rollout = Rollout.start(step, context)
        return rollout.run(lambda r: _canary(r, options))


def _canary(rollout: Rollout, options: CanaryOptions) -> str:
    router = _traffic_router(rollout, options.traffic)
    rollout.data["traffic"] = "router" if router is not None else "instances"
    if router is not None:
        return _canary_in_slot(rollout, options, router)
    return _canary_in_place(rollout, options)


def _traffic_router(rollout: Rollout, traffic: str) -> Router | None:
    """Return the router that carries the weights, or None to shift instances instead."""
    if traffic == "instances":
        return None
    router = rollout.router
    usable = (router is not None
              and capabilities_of(rollout.target, router) >= _ROUTER_NEEDS
              and len(rollout.target.slots()) == 2)
    if usable:
        return router
    if traffic == "router":
        raise StepFailed(
            f"traffic: router needs a router with weights and a target with two slots, "
            f"which environment '{rollout.environment_name}' does not provide"
        )
    return None


# -- with a router -----------------------------------------------------------------------


def _canary_in_slot(rollout: Rollout, options: CanaryOptions, router: Router) -> str:
    """Run the canary in the idle slot, weighted by the router, then promote it."""
    slots = SlotDeploy.prepare(rollout, router)
    if slots.active is None:
        raise StepFailed(
            "the router has no active slot, so no stable version serves traffic to "
            "compare the canary with: deploy the first version with blue-green or rolling"
        )
    rollout.context.add_rollback(
        rollout.step,
        f"set the weight of slot '{slots.idle}' back to 0 and remove {rollout.version} from it",
        slots.undo,
    )

    slots.set_weight(0)
    slots.deploy_idle(options.health)
    for number, item in enumerate(options.steps, start=1):
        rollout.check_cancelled(f"before step {number} ({item.describe()})")
        if item.kind == "set_weight":
            slots.set_weight(item.weight)
        else:
            _wait_or_analyse(rollout, item, number, stable=slots.stable_version,
                             endpoint=router.endpoint())

    rollout.check_cancelled(f"before promoting slot '{slots.idle}'")
    slots.switch()
    rollout.record_weight(100)
    note = slots.scale_down(options.scale_down_delay)
    return (f"{rollout.version} promoted after {len(options.steps)} steps: slot "
            f"'{slots.idle}' serves all traffic{note}")


# -- without a router --------------------------------------------------------------------


@dataclass
class _InPlace:
    """The serving instances of an in-place canary; the first ``current`` run the canary."""

    rollout: Rollout
    instances: list[str]
    health: HealthPolicy
    current: int = 0

    def set_weight(self, weight: int) -> None:
        """Give the new version to ``ceil(weight * N / 100)`` instances, adding canary
        instances or giving the previous version back to the extra ones."""
        wanted = instances_for_weight(weight, len(self.instances))
        if wanted > self.current:
            self._grow(self.instances[self.current:wanted])
        elif wanted < self.current:
            self._shrink(self.instances[wanted:self.current])
        self.current = wanted
        share = round(100 * wanted / len(self.instances))
        self.rollout.record_weight(share, requested=weight, instances=wanted)

    def _grow(self, instances: Sequence[str]) -> None:
        rollout = self.rollout
        rollout.update_instances(instances, self.health, workers=MAX_PARALLEL)
        rollout.check_cancelled("while updating canary instances")
        failed = [state for state in rollout.table.get_all(instances)
                  if state.result not in ("updated", "unchanged")]
        if failed:
            raise StepFailed(f"{len(failed)} of {len(instances)} canary instances failed: "
                             f"{failed[0].instance}: {failed[0].message}")

    def _shrink(self, instances: Sequence[str]) -> None:
        rollout = self.rollout
        states = rollout.table.get_all(instances)
        try:
            restore_previous(rollout.target, states, fallback=rollout.fallback,
                             cancel=rollout.context.cancel)
        except RollbackFailed as exc:
            rollout.sections.append(f"lowering the canary weight:\n{exc.details}")
            raise StepFailed(f"lowering the canary weight failed: {exc}") from exc
        for state in states:
            rollout.table.update(state.instance, after=state.before or rollout.fallback,
                                 result="restored", touched=False)

    @property
    def stable_version(self) -> str | None:
        for state in self.rollout.table.rows():
            if state.before and state.before != self.rollout.version:
                return state.before
        return self.rollout.fallback


def _canary_in_place(rollout: Rollout, options: CanaryOptions) -> str:
    """Run the canary on a share of the serving instances, updated in place."""
    instances = serving_instances(rollout.target, rollout.router)
    if not instances:
        raise StepFailed(f"environment '{rollout.environment_name}' has no instances")
    rollout.table.update_all(instances, result="not reached")
    canary = _InPlace(rollout, instances, options.health)

    def restore() -> str:
        states = rollout.table.rows()
        if not any(state.touched for state in states):
            return "nothing to restore: no instance runs the canary"
        return restore_previous(rollout.target, states, fallback=rollout.fallback,
                                cancel=rollout.context.cancel)

    rollout.context.add_rollback(
        rollout.step, f"give the canary instances of {rollout.version} their previous version",
        restore,
    )

    endpoint = _endpoint(rollout)
    for number, item in enumerate(options.steps, start=1):
        rollout.check_cancelled(f"before step {number} ({item.describe()})")
        if item.kind == "set_weight":
            canary.set_weight(item.weight)
        else:
            _wait_or_analyse(rollout, item, number, stable=canary.stable_version,
                             endpoint=endpoint)

    rollout.check_cancelled("before promoting the canary")
    canary.set_weight(100)
    return (f"{rollout.version} promoted after {len(options.steps)} steps: all "
            f"{len(instances)} instances run it")


def _endpoint(rollout: Rollout) -> str | None:
    if rollout.router is not None:
        endpoint = rollout.router.endpoint()
        if endpoint:
            return endpoint
    environment = rollout.context.environment
    return environment.url if environment is not None else None


# -- pauses and analyses -----------------------------------------------------------------


def _wait_or_analyse(
    rollout: Rollout, item: CanaryStep, number: int, *, stable: str | None,
    endpoint: str | None,
) -> None:
    """Run a pause or an analysis step; raise StepFailed if it does not pass."""
    if item.kind == "pause" and item.approval is not None:
        result = wait_for_approval(item.approval, rollout.context)
        rollout.data.setdefault("approvals", []).append(
            {"step": number, "approved": result.approved, "message": result.message,
             "waited": result.waited})
        if not result.approved:
            raise StepFailed(f"step {number}: {result.message}")
    elif item.kind == "pause":
        rollout.sleep(item.seconds, f"during the pause of step {number}")
    else:
        _analyse(rollout, item, number, stable=stable, endpoint=endpoint)


def _analyse(
    rollout: Rollout, item: CanaryStep, number: int, *, stable: str | None,
    endpoint: str | None,
) -> None:
    from pipeline.analysisstep import analyse_rollout

    analyse_rollout(rollout, item.analysis, stable=stable, endpoint=endpoint, step=number)


# -- hooks -------------------------------------------------------------------------------


def _pause_schema() -> dict[str, Any]:
    return {
        "title": "Pause",
        "description": "Wait a duration, or until a person approves.",
        "anyOf": [
            DURATION_SCHEMA,
            {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "properties": {
                    "duration": described(DURATION_SCHEMA, "Pause duration",
                                          "How long to wait."),
                    "until_approved": {
                        **APPROVAL_SCHEMA,
                        "description": "Wait until a file exists or an environment variable "
                        "is true; the step fails when the timeout passes first.",
                    },
                },
            },
        ],
    }


def _schema() -> dict[str, Any]:
    from pipeline.analysis import ANALYSIS_REF_SCHEMA

    step = {
        "title": "Canary step",
        "description": "One of set_weight, pause or analysis.",
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "set_weight": {
                "title": "Set weight",
                "description": "Percent of requests (0-100) that the new version receives.",
                "type": "integer", "minimum": 0, "maximum": 100,
            },
            "pause": _pause_schema(),
            "analysis": ANALYSIS_REF_SCHEMA,
        },
    }
    return {
        "required": ["steps"],
        "properties": {
            "steps": {
                "title": "Canary steps",
                "description": "set_weight, pause and analysis steps, in order; the new "
                "version gets all traffic after the last one.",
                "type": "array", "minItems": 1, "items": step,
            },
            "traffic": {
                "title": "Traffic",
                "description": "router: weights through the router and two slots; "
                "instances: weight as the share of instances running the new version; "
                "auto (default): router when the environment can, else instances.",
                "enum": list(TRAFFIC_MODES),
            },
            "health": health_schema(),
            "scale_down_delay": described(
                DURATION_SCHEMA, "Scale-down delay",
                "With a router: how long the old slot keeps running after promotion "
                "(default 30s).",
            ),
            "previous_version": previous_version_schema(),
        },
    }


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(kind="deploy", type=STRATEGY, schema=_schema(),
                       description="Shift traffic to the new version in steps, with "
                       "pauses and analyses.")]


@hookimpl
def shipline_strategy_requires(step: Step) -> frozenset[Capability] | None:
    if step.type != STRATEGY:
        return None
    return CanaryStrategy(str(step.options.get("traffic", "auto"))).requires()


@hookimpl
def shipline_make_strategy(step: Step) -> CanaryStrategy | None:
    if step.type != STRATEGY:
        return None
    return CanaryStrategy(str(step.options.get("traffic", "auto")))


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    return option_diagnostics(plan, STRATEGY, lambda step: CanaryOptions.parse(step.options))


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    """Sum the deploys with their health waits (once at the start and once per weight),
    the target's reads and traffic changes, the pauses, approval timeouts, analyses,
    the scale-down delay and the removal of the old version.

    Returns None when the pipeline file does not list the instances or the target's
    time limits are unknown.
    """
    if step.kind != "deploy" or step.type != STRATEGY:
        return None
    from pipeline.rolloutoptions import slot_times

    options = CanaryOptions.parse(step.options)
    times = slot_times(plan, step, options.health)
    if times is None:
        return None
    total = options.scale_down_delay + times.deploy + times.calls
    for item in options.steps:
        if item.kind == "set_weight":
            # The deploy of the instances the weight needs, and the traffic change.
            total += times.deploy + times.call
        elif item.kind == "analysis":
            total += _estimate_analysis(item.analysis, plan)
        else:
            total += item.approval.timeout if item.approval else item.seconds
    return total


def _estimate_analysis(ref: Any, plan: Plan) -> float:
    """Return the analysis's longest duration, or 0 when it does not resolve because of
    an unknown template or invalid options. ``shipline validate`` reports those."""
    from pipeline.analysis import estimate_analysis

    try:
        return estimate_analysis(ref, plan)
    except ShiplineError:
        return 0.0
