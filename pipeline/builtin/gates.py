"""The ``http`` and ``command`` gates: a health check as a step of its own.

``gate: {uses: http, url: ...}`` passes when the response has the expected status
(and body, if asked); ``gate: {uses: command, command: ...}`` passes when the command
exits with code 0. Both retry with backoff (see :mod:`pipeline.checks`). Commands run
in the pipeline file's folder, which is also where a relative ``ca_file`` is read from.

URLs and commands may use two placeholders: ``{environment}``, the name of the stage's
environment, and ``{version}``, the version that an earlier deploy step of this run
deployed. A placeholder without a value is an error when the gate runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.checkspec import (
    COMMAND_DEFAULTS,
    COMMAND_OPTIONS_SCHEMA,
    HTTP_DEFAULTS,
    HTTP_OPTIONS_SCHEMA,
    estimate_seconds,
)
from pipeline.checktemplates import GATE_PLACEHOLDERS, template_problems
from pipeline.diagnostics import Diagnostic
from pipeline.durations import format_duration
from pipeline.report import Outcome, StepReport
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.checks import CheckResult
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step

#: The ``uses`` values of the gates in this module.
GATE_TYPES = ("http", "command")


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            kind="gate", type="http", schema=HTTP_OPTIONS_SCHEMA,
            description="Pass when an HTTP request gets the expected status, retrying "
            "with backoff.",
        ),
        StepSchema(
            kind="gate", type="command", schema=COMMAND_OPTIONS_SCHEMA,
            description="Pass when a command exits with code 0, retrying with backoff.",
        ),
    ]


@hookimpl
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    if step.type not in GATE_TYPES:
        return None
    from pipeline.checks import run_check

    result = run_check(
        {step.type: step.options}, clock=context.clock, cancel=context.cancel,
        placeholders=gate_placeholders(context), cwd=context.plan.file.parent,
    )
    if result.cancelled:
        context.check_cancelled()

    return StepReport(
        step.id, step.name, step.kind,
        Outcome.PASSED if result.ok else Outcome.FAILED,
        message=result.message, details=_details(step, result), output=result.output,
        duration=result.duration, data=dict(result.data),
    )


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Report unknown placeholders and URLs without a scheme in http and command gates."""
    diagnostics = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "gate" or step.type not in GATE_TYPES:
                continue
            for option, message in template_problems(step.type, step.options,
                                                     GATE_PLACEHOLDERS):
                diagnostics.append(Diagnostic(message, None, (*step.path, "gate", option)))
    return diagnostics


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    if step.kind != "gate" or step.type not in GATE_TYPES:
        return None
    return estimate_seconds({step.type: step.options})


def gate_placeholders(context: RunContext) -> dict[str, str]:
    """Return the placeholder values a gate's URL or command may use."""
    values = {}
    if context.environment is not None:
        values["environment"] = context.environment.name
    version = context.outputs.get("deployed-version")
    if version is not None:
        values["version"] = version
    return values


def _details(step: Step, result: CheckResult) -> str:
    defaults: Mapping[str, Any] = HTTP_DEFAULTS if step.type == "http" else COMMAND_DEFAULTS
    retries = int(step.options.get("retries", defaults["retries"]))
    lines = [f"attempts: {result.attempts} of {retries + 1}"]
    if "exit_code" in result.data:
        lines.append(f"exit code: {result.data['exit_code']}")
    if "status" in result.data:
        lines.append(f"status: {result.data['status']}")
    lines.append(f"duration: {format_duration(result.duration)}")
    return "\n".join(lines)
