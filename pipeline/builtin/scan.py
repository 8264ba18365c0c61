"""Scan steps: read the vulnerability reports that scanners wrote earlier in the job.

``scan: {uses: trivy, report: trivy.json, fail_on: high}`` reads the report, counts
its findings by normalized severity and fails when they exceed the step's limits.
The runner turns that failure into BLOCKED (exit 3) when nothing was deployed yet.
``uses`` names the format the step expects (``trivy``, ``grype``, ``sarif``,
``osv-scanner``, ``cyclonedx``), or ``auto`` to accept any of them, so that one step
can combine reports of several scanners. A report that is missing, malformed or of
an unknown format fails the step: it never passes. See docs/scanning.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.diagnostics import Diagnostic
from pipeline.scan.formats import ANY_FORMAT, FORMAT_TITLES
from pipeline.scan.options import OPTIONS_SCHEMA
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan, Step
    from pipeline.report import StepReport

SCAN_TYPES = (ANY_FORMAT, *FORMAT_TITLES)


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    schemas = [StepSchema(
        kind="scan", type=ANY_FORMAT, schema=OPTIONS_SCHEMA,
        description="Check vulnerability reports of any supported format (Trivy, Grype, "
        "SARIF, OSV-Scanner, CycloneDX), detected from their content.",
    )]
    for name, title in FORMAT_TITLES.items():
        schemas.append(StepSchema(
            kind="scan", type=name, schema=OPTIONS_SCHEMA,
            description=f"Block the run on serious findings in {title} vulnerability reports.",
        ))
    return schemas


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Reject ``expires`` values of the right form that are not real dates (2026-02-30)."""
    found = []
    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "scan" or step.type not in SCAN_TYPES:
                continue
            from pipeline.scan.policy import InvalidExpiry, ScanPolicy

            try:
                ScanPolicy.from_options(step.options)
            except InvalidExpiry as exc:
                path = (*step.path, "scan", "ignore", exc.index, "expires")
                found.append(Diagnostic(str(exc), None, path))
    return found


@hookimpl
def shipline_estimate_duration(step: Step) -> float | None:
    if step.kind != "scan" or step.type not in SCAN_TYPES:
        return None
    return 0.0


@hookimpl
def shipline_run_scan(step: Step, context: RunContext) -> StepReport | None:
    if step.type not in SCAN_TYPES:
        return None
    from pipeline.scan.step import run_scan_step

    return run_scan_step(step, context)
