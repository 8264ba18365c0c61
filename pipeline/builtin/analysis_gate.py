"""The ``analysis`` gate: an analysis as a step of its own.

``gate: {uses: analysis, analysis: REF}`` runs the analysis ``REF`` (a template name, a
template with ``args``, or an inline analysis; see :mod:`pipeline.analysis`) and passes
when it passes, policies included. The new version is the one that the latest deploy
step of this run deployed, there is no stable version, and the endpoint is the stage
environment's ``url``. A gate that does not pass fails its step like the ``http`` and
``command`` gates do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.report import Outcome, StepReport
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step

GATE_TYPE = "analysis"


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    from pipeline.analysis import ANALYSIS_REF_SCHEMA

    schema: dict[str, Any] = {
        "required": ["analysis"],
        "properties": {"analysis": ANALYSIS_REF_SCHEMA},
    }
    return [StepSchema(kind="gate", type=GATE_TYPE, schema=schema,
                       description="Pass when an analysis passes, after its policies.")]


@hookimpl
def shipline_run_gate(step: Step, context: RunContext) -> StepReport | None:
    if step.type != GATE_TYPE:
        return None
    from pipeline.analysis import record_outcome, run_analysis_use

    started = context.clock.monotonic()
    version = context.outputs.get("deployed-version") or context.version or ""
    endpoint = context.environment.url if context.environment is not None else None
    outcome = run_analysis_use(step.options["analysis"], context, stable_version=None,
                               canary_version=version, endpoint=endpoint)
    context.check_cancelled()

    data: dict[str, Any] = {}
    sections: list[str] = []
    record_outcome(outcome, data, sections)
    return StepReport(
        step.id, step.name, step.kind,
        Outcome.PASSED if outcome.passed else Outcome.FAILED,
        message=f"analysis '{outcome.name}' {outcome.message}",
        details="\n\n".join(sections),
        duration=context.clock.monotonic() - started,
        data=data,
    )


@hookimpl
def shipline_estimate_duration(step: Step, plan: Plan) -> float | None:
    if step.kind != "gate" or step.type != GATE_TYPE:
        return None
    from pipeline.analysis import estimate_analysis_or_zero

    return estimate_analysis_or_zero(step.options.get("analysis", ""), plan)
