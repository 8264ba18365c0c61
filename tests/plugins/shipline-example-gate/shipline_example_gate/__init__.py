"""A threshold gate: passes when ``value`` is at most ``max``.

Packaged exactly as a third-party plugin is: its own distribution, found through the
``shipline`` entry-point group.
"""

from __future__ import annotations

from typing import Any

import pipeline
from pipeline import Outcome, StepReport, StepSchema

THRESHOLD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "value": {"type": "number", "title": "Value", "description": "The measured value."},
        "max": {
            "type": "number",
            "title": "Maximum",
            "description": "The largest value that passes.",
        },
        "unit": {"type": "string", "title": "Unit", "description": "Unit shown in the message."},
    },
    "required": ["value", "max"],
}


@pipeline.hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(kind="gate", type="threshold", schema=THRESHOLD_SCHEMA,
                       description="Pass when a value is at most a maximum.")]


@pipeline.hookimpl
def shipline_run_gate(step: pipeline.Step, context: Any) -> StepReport | None:
    if step.type != "threshold":
        return None
    value = step.options["value"]
    maximum = step.options["max"]
    unit = step.options.get("unit", "")
    outcome = Outcome.PASSED if value <= maximum else Outcome.FAILED
    return StepReport(step.id, step.name, step.kind, outcome,
                      message=f"{value}{unit} (max {maximum}{unit})")
