"""shipline: progressive deployments from a CI job.

The public surface for plugin authors is small: :data:`hookimpl`, the plan types, the
step report, and the interfaces of targets, routers and strategies. A complete plugin
that adds a gate type::

    # my_gate.py
    import pipeline
    from pipeline import Outcome, StepReport, StepSchema

    @pipeline.hookimpl
    def shipline_step_schemas():
        return [StepSchema(kind="gate", type="always-green", schema={
            "properties": {"reason": {"type": "string", "title": "Reason",
                                      "description": "Why the gate passes."}},
        })]

    @pipeline.hookimpl
    def shipline_run_gate(step, context):
        if step.type != "always-green":
            return None
        return StepReport(step.id, step.name, step.kind, Outcome.PASSED,
                          message=step.options.get("reason", ""))

and in its ``pyproject.toml``::

    [project.entry-points.shipline]
    always-green = "my_gate"
"""

from __future__ import annotations

import pluggy

from pipeline.exitcodes import ExitCode
from pipeline.plan import Environment, Plan, Stage, Step
from pipeline.report import Outcome, StepReport
from pipeline.schema import StepSchema

__version__ = "0.1.0"

#: Marks a function as a hook implementation: ``@pipeline.hookimpl``.
hookimpl = pluggy.HookimplMarker("shipline")

__all__ = [
    "Environment",
    "ExitCode",
    "Outcome",
    "Plan",
    "Stage",
    "Step",
    "StepReport",
    "StepSchema",
    "__version__",
    "hookimpl",
]
