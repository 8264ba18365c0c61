"""Deploy steps: run the step's strategy against its environment's target.

Also checks, at validate time, that every deploy step's strategy gets the capabilities
it needs (a router for weights, two slots for blue-green) from its environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.checktemplates import (
    DEPLOY_CHECK_PLACEHOLDERS,
    check_specs,
    template_problems,
)
from pipeline.diagnostics import Diagnostic
from pipeline.errors import ShiplineError
from pipeline.target import Capability

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Environment, Plan, Step
    from pipeline.report import StepReport


def environment_capabilities(environment: Environment, config: Config) -> frozenset[Capability]:
    """Combine the capabilities that the target and router plugins report for the environment."""
    found: frozenset[Capability] = frozenset()
    for answer in config.hook.shipline_capabilities(environment=environment):
        if answer:
            found |= answer
    return found


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    diagnostics = []
    for stage in plan.stages:
        if stage.environment is None or stage.environment not in plan.environments:
            continue
        environment = plan.environments[stage.environment]
        available = environment_capabilities(environment, config)
        for step in stage.steps:
            if step.kind != "deploy":
                continue
            diagnostics += _check_templates(step)
            diagnostics += _check_version(step)
            required = config.hook.shipline_strategy_requires(step=step) or frozenset()
            missing = sorted(c.value for c in required - available)
            if missing:
                diagnostics.append(Diagnostic(
                    f"strategy '{step.type}' needs {' and '.join(missing)}, which environment "
                    f"'{environment.name}' does not provide",
                    None, (*step.path, "deploy", "strategy"),
                    hint=_capability_hint(missing),
                ))
    return diagnostics


def _check_version(step: Step) -> list[Diagnostic]:
    """Reject a version with a control character, such as a line break from a variable.

    A version is written into terminal lines, reports and CI outputs, where a line break
    would split a line or start a new entry.
    """
    version = step.options.get("version")
    if not isinstance(version, str) or version.isprintable():
        return []
    return [Diagnostic(
        f"version {version!r} contains a control character such as a line break",
        None, (*step.path, "deploy", "version"),
        hint="a version is one line of printable text: check the variable it comes from",
    )]


def _check_templates(step: Step) -> list[Diagnostic]:
    """Report unknown placeholders and URLs without a scheme in the step's checks."""
    diagnostics = []
    for path, kind, options in check_specs(step.options):
        for option, message in template_problems(kind, options, DEPLOY_CHECK_PLACEHOLDERS):
            where = (*step.path, "deploy", *path)
            if isinstance(options, Mapping):
                where = (*where, option)
            diagnostics.append(Diagnostic(message, None, where))
    return diagnostics


def _capability_hint(missing: list[str]) -> str:
    hints = {
        Capability.SLOTS.value: "a command target gets slots from 'slots:', 'switch' and "
        "'active_slot'; the local target has them",
        Capability.WEIGHTS.value: "add a 'router:' to the environment, or 'set_weight' to a "
        "command target with slots",
    }
    return "; ".join(hints[name] for name in missing if name in hints)


@hookimpl(trylast=True)
def shipline_run_deploy(step: Step, context: RunContext) -> StepReport:
    strategy = context.hook.shipline_make_strategy(step=step, context=context)
    if strategy is None:
        raise ShiplineError(f"no plugin provides deploy strategy '{step.type}'")
    report: StepReport = strategy.run(step, context)
    return report
