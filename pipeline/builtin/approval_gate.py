"""The ``approval`` gate: a step that waits for a manual approval.

``gate: {uses: approval, ...}`` takes the approval spec of :mod:`pipeline.approval`: a
flag (``file`` or ``env``), or ``signed`` approvals checked against the approvers' keys.
It passes once approved. When the timeout passes first it fails, which blocks the run
(exit 3) when nothing was deployed yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.approval import APPROVAL_SCHEMA, ApprovalSpec, wait_for_approval
from pipeline.context import Interrupted
from pipeline.diagnostics import Diagnostic
from pipeline.errors import ShiplineError
from pipeline.report import Outcome, StepReport
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step

GATE_TYPE = "approval"

_SCHEMA = {
    "properties": APPROVAL_SCHEMA["properties"],
    "anyOf": APPROVAL_SCHEMA["anyOf"],
}


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            kind="gate", type=GATE_TYPE, schema=_SCHEMA, plugin="approval-gate",
            description="Wait until a person approves: a file, an environment flag, or "
            "signed approvals from enough approvers.",
        )
    ]


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Report approval gates whose spec is invalid or whose public key files are missing.

    Keys in ``keys_env`` are read only when the gate runs, because CI systems often set
    such variables only for the deploy job.
    """
    diagnostics = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind == "gate" and step.type == GATE_TYPE:
                diagnostics.extend(_check_gate(step, plan.file.parent))
    return diagnostics


def _check_gate(step: Step, base: Path) -> list[Diagnostic]:
    try:
        spec = ApprovalSpec.parse(step.options, "approval")
    except ShiplineError as exc:
        return [Diagnostic(str(exc), step.mark, (*step.path, "gate"))]
    if spec.signed is None:
        return []

    diagnostics = []
    for approver, key in spec.signed.keys.items():
        if not (base / key).is_file():
            message = f"public key of approver {approver!r} not found: {base / key}"
            hint = "create the approver's key pair with 'shipline keygen --output NAME'"
            path = (*step.path, "gate", "signed", "keys", approver)
            diagnostics.append(Diagnostic(message, step.mark, path, hint))
    return diagnostics


@hookimpl
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    if step.type != GATE_TYPE:
        return None

    try:
        spec = ApprovalSpec.parse(step.options, "approval")
        result = wait_for_approval(spec, context)
    except Interrupted:
        raise
    except ShiplineError as exc:
        return StepReport(step.id, step.name, step.kind, Outcome.FAILED, message=str(exc))

    outcome = Outcome.PASSED if result.approved else Outcome.FAILED
    return StepReport(step.id, step.name, step.kind, outcome, message=result.message,
                      duration=result.waited)


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    if step.kind != "gate" or step.type != GATE_TYPE:
        return None
    try:
        return ApprovalSpec.parse(step.options, "approval").timeout
    except ShiplineError:
        return None
