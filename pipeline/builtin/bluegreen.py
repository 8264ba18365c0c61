"""The ``blue-green`` deploy strategy: deploy to the idle slot, check it, switch traffic.

Needs a target with two slots and a router that can switch between them (SLOTS). The
router's active slot keeps serving while the other, idle, slot receives the version.

Options besides ``version``:

``health`` (default ``{timeout: 60s, retries: 5, interval: 2s}``)
    How long each idle instance may take to pass the target's health check after its
    deploy, or ``false`` to skip it.
``pre_promotion`` (default none)
    Check specs run against the idle slot before the switch. ``{slot}`` and
    ``{version}`` are filled in; a check that mentions ``{instance}`` runs once per
    idle instance.
``auto_promote`` (default ``true``)
    Switch as soon as the idle slot is healthy and its checks pass. With ``false``, the
    step waits for ``approval`` first and fails if it does not come in time.
``approval``
    ``{file, env, timeout, interval}``: see :mod:`pipeline.approval`. Required when
    ``auto_promote`` is false.
``post_promotion`` (default none)
    Check specs run after the switch, with the same placeholders; a failure switches
    traffic back.
``pre_promotion_analysis`` and ``post_promotion_analysis`` (default none)
    An analysis (template name, template with ``args``, or inline; see
    :mod:`pipeline.analysis`) run after the checks of the same phase. Its policies
    decide what a failure does; ``abort`` fails the step, which switches traffic back.
    Both get the router's endpoint, which serves the old slot until the switch, so a
    pre-promotion analysis should query the new version directly (``prometheus``,
    ``http``) rather than probe the endpoint.
``scale_down_delay`` (default ``30s``)
    How long the old slot keeps running after the switch before its version is
    removed, so that a rollback in that time is a switch only.
``previous_version``
    The old slot's version for a rollback after the scale-down, when the target
    cannot read it.

The rollback switches traffic back to the old slot (deploying its previous version
first if it was already removed) and removes the new version from the idle slot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.approval import APPROVAL_SCHEMA, ApprovalSpec, wait_for_approval
from pipeline.rollout import (
    DURATION_SCHEMA,
    MAX_PARALLEL,
    HealthPolicy,
    OptionError,
    Rollout,
    SlotDeploy,
    StepFailed,
    check_list_schema,
    described,
    format_table,
    health_schema,
    option_diagnostics,
    option_duration,
    previous_version_schema,
    require_router,
    run_checks,
)
from pipeline.schema import StepSchema
from pipeline.target import Capability, Router

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic
    from pipeline.plan import Plan, Step
    from pipeline.report import StepReport

STRATEGY = "blue-green"

#: Seconds the old slot keeps running after the switch, unless ``scale_down_delay`` is set.
DEFAULT_SCALE_DOWN_DELAY = 30.0


@dataclass(frozen=True)
class BlueGreenOptions:
    """The options of a blue-green deploy step, checked."""

    health: HealthPolicy = field(default_factory=HealthPolicy)
    pre_promotion: tuple[Mapping[str, Any], ...] = ()
    post_promotion: tuple[Mapping[str, Any], ...] = ()
    #: Analysis references (name, template with args, or inline), or ``None``.
    pre_promotion_analysis: Any = None
    post_promotion_analysis: Any = None
    auto_promote: bool = True
    approval: ApprovalSpec | None = None
    scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> BlueGreenOptions:
        """Check the options; raise OptionError (or ShiplineError) naming the invalid one."""
        auto_promote = options.get("auto_promote", True)
        if not isinstance(auto_promote, bool):
            raise OptionError(f"auto_promote: expected true or false, got {auto_promote!r}")
        approval = options.get("approval")
        if not auto_promote and approval is None:
            raise OptionError(
                "auto_promote is false but there is no 'approval' to wait for: add "
                "approval: {file: PATH} or approval: {env: NAME}"
            )

        return cls(
            health=HealthPolicy.parse(options.get("health")),
            pre_promotion=tuple(options.get("pre_promotion") or ()),
            post_promotion=tuple(options.get("post_promotion") or ()),
            pre_promotion_analysis=options.get("pre_promotion_analysis"),
            post_promotion_analysis=options.get("post_promotion_analysis"),
            auto_promote=auto_promote,
            approval=ApprovalSpec.parse(approval) if approval is not None else None,
            scale_down_delay=option_duration(options, "scale_down_delay",
                                             DEFAULT_SCALE_DOWN_DELAY),
        )


class BlueGreenStrategy:
    """Deploys to the idle slot and switches traffic to it; see the module documentation."""

    def requires(self) -> frozenset[Capability]:
        return frozenset({Capability.SLOTS})

    def run(self, step: Step, context: RunContext) -> StepReport:
        options = BlueGreenOptions.parse(step.options)
        rollout = Rollout.start(step, context)
        return rollout.run(lambda r: _blue_green(r, options))


def _blue_green(rollout: Rollout, options: BlueGreenOptions) -> str:
    """Deploy, check, approve, switch, check again and scale down; return the message."""
    router = require_router(rollout, {Capability.SLOTS}, STRATEGY)
    slots = SlotDeploy.prepare(rollout, router)
    rollout.context.add_rollback(rollout.step, _rollback_description(slots), slots.undo)

    slots.deploy_idle(options.health)
    _promotion_checks(rollout, slots, options.pre_promotion, "pre-promotion")
    _promotion_analysis(rollout, slots, router, options.pre_promotion_analysis,
                        "pre-promotion")
    if not options.auto_promote and options.approval is not None:
        _wait_for_approval(rollout, options.approval)

    rollout.check_cancelled(f"before switching traffic to slot '{slots.idle}'")
    slots.switch()
    _promotion_checks(rollout, slots, options.post_promotion, "post-promotion")
    _promotion_analysis(rollout, slots, router, options.post_promotion_analysis,
                        "post-promotion")

    note = slots.scale_down(options.scale_down_delay)
    count = len(slots.idle_instances)
    return f"slot '{slots.idle}' serves {rollout.version} on {count} instances{note}"


def _rollback_description(slots: SlotDeploy) -> str:
    if slots.active is None:
        return f"remove {slots.rollout.version} from slot '{slots.idle}'"
    return (f"switch traffic back to slot '{slots.active}' and remove "
            f"{slots.rollout.version} from slot '{slots.idle}'")


def _promotion_checks(
    rollout: Rollout, slots: SlotDeploy, specs: Sequence[Mapping[str, Any]], phase: str
) -> None:
    """Run ``specs`` against the idle slot; raise StepFailed on the first failure."""
    if not specs:
        return
    runs = run_checks(specs, rollout.context, instances=slots.idle_instances,
                      placeholders={"slot": slots.idle, "version": rollout.version},
                      workers=MAX_PARALLEL)
    rollout.check_cancelled(f"during the {phase} checks")

    rows = [[run.label, run.instance or "-", "passed" if run.ok else "failed", run.message]
            for run in runs]
    rollout.sections.append(f"{phase} checks:\n"
                            + format_table(["check", "instance", "result", "message"], rows))
    failed = [run for run in runs if not run.ok]
    for run in failed:
        rollout.table.add_output(run.instance or slots.idle, f"{phase} {run.label}", run.output)
        if run.instance is not None:
            rollout.table.update(run.instance, result="check failed", message=run.message)
    if failed:
        more = f" ({len(failed) - 1} more failed)" if len(failed) > 1 else ""
        raise StepFailed(f"{phase} check failed: {failed[0].message}{more}")


def _promotion_analysis(
    rollout: Rollout, slots: SlotDeploy, router: Router, ref: Any, phase: str
) -> None:
    """Run the analysis ``ref`` of ``phase``, if any; raise StepFailed if it does not pass."""
    if ref is None:
        return
    from pipeline.analysisstep import analyse_rollout

    analyse_rollout(rollout, ref, stable=slots.stable_version, endpoint=router.endpoint(),
                    where=f"{phase} ")


def _wait_for_approval(rollout: Rollout, approval: ApprovalSpec) -> None:
    result = wait_for_approval(approval, rollout.context)
    rollout.data["approval"] = {"approved": result.approved, "message": result.message,
                                "waited": result.waited}
    if not result.approved:
        raise StepFailed(result.message)


# -- hooks -------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    return {
        "properties": {
            "health": health_schema(),
            "pre_promotion": check_list_schema(
                "Pre-promotion checks",
                "Checks run against the idle slot before the switch; {slot} and {version} "
                "are filled in, and a check that mentions {instance} runs once per instance.",
            ),
            "post_promotion": check_list_schema(
                "Post-promotion checks",
                "Checks run after the switch; a failure switches traffic back.",
            ),
            "pre_promotion_analysis": _analysis_schema(
                "Pre-promotion analysis",
                "An analysis run after the pre-promotion checks, before the switch.",
            ),
            "post_promotion_analysis": _analysis_schema(
                "Post-promotion analysis",
                "An analysis run after the post-promotion checks; unless it passes, "
                "traffic switches back.",
            ),
            "auto_promote": {
                "title": "Auto promote",
                "description": "Switch traffic without waiting for an approval (default true).",
                "type": "boolean",
            },
            "approval": {
                **APPROVAL_SCHEMA,
                "description": "What to wait for before the switch when auto_promote is "
                "false: a file that appears or an environment variable set to true.",
            },
            "scale_down_delay": described(
                DURATION_SCHEMA, "Scale-down delay",
                "How long the old slot keeps running after the switch before its version "
                "is removed (default 30s).",
            ),
            "previous_version": previous_version_schema(),
        },
    }


def _analysis_schema(title: str, description: str) -> dict[str, Any]:
    from pipeline.analysis import ANALYSIS_REF_SCHEMA

    return {**ANALYSIS_REF_SCHEMA, "title": title, "description": description}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(kind="deploy", type=STRATEGY, schema=_schema(),
                       description="Deploy to the idle slot, check it, then switch traffic.")]


@hookimpl
def shipline_strategy_requires(step: Step) -> frozenset[Capability] | None:
    if step.type != STRATEGY:
        return None
    return BlueGreenStrategy().requires()


@hookimpl
def shipline_make_strategy(step: Step) -> BlueGreenStrategy | None:
    if step.type != STRATEGY:
        return None
    return BlueGreenStrategy()


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    return option_diagnostics(plan, STRATEGY, lambda step: BlueGreenOptions.parse(step.options))


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    """Sum the longest times of every part of a blue-green deploy.

    The parts are the reads of the slots and their versions, the idle slot's deploy
    with its health waits, the checks, the analyses, the approval timeout, the switch,
    the scale-down delay and the removal of the old version.

    Returns None when the pipeline file does not list the instances or the target's
    time limits are unknown.
    """
    if step.kind != "deploy" or step.type != STRATEGY:
        return None
    from pipeline.analysis import estimate_analysis_or_zero
    from pipeline.checkspec import estimate_seconds
    from pipeline.rolloutoptions import slot_times

    options = BlueGreenOptions.parse(step.options)
    times = slot_times(plan, step, options.health)
    if times is None:
        return None
    deploy = times.deploy + times.calls
    checks = (*options.pre_promotion, *options.post_promotion)
    approval = options.approval.timeout if options.approval and not options.auto_promote else 0.0
    analyses = sum(estimate_analysis_or_zero(ref, plan) for ref in
                   (options.pre_promotion_analysis, options.post_promotion_analysis)
                   if ref is not None)
    return (deploy + sum(estimate_seconds(check) for check in checks)
            + approval + analyses + options.scale_down_delay)
