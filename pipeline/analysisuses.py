"""Finding the analyses of a plan: the templates under ``analyses:`` and every use.

Validating a plan checks analyses only when it has some. This module finds them
without importing the analysis settings, conditions and judges that
:mod:`pipeline.analysischecks` needs to check them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.diagnostics import DocPath, Mark

if TYPE_CHECKING:
    from pipeline.plan import Plan, Step


@dataclass(frozen=True)
class AnalysisUse:
    """One analysis in a plan: a template, or a reference or inline analysis in a step."""

    #: The template name (a string) or the inline mapping, as written.
    ref: str | Mapping[str, Any]
    #: Document path of the value, and the mark of the step that contains it.
    path: DocPath
    mark: Mark | None = None
    #: True for the definition of a template under ``analyses:``, not a use of it.
    is_template: bool = False


#: Options of deploy strategies that contain one analysis, by strategy.
ANALYSIS_OPTIONS = {
    "blue-green": ("pre_promotion_analysis", "post_promotion_analysis"),
    "rolling": ("analysis",),
}


def iter_analysis_uses(plan: Plan) -> Iterator[AnalysisUse]:
    """Yield every template under ``analyses:``, then every use of an analysis in a step.

    Uses are the ``analysis`` entries of canary steps, the analysis options of
    blue-green and rolling deploy steps (:data:`ANALYSIS_OPTIONS`), and ``analysis``
    gate steps.
    """
    for name in plan.analyses:
        yield AnalysisUse(name, ("analyses", name), is_template=True)

    for stage in plan.stages:
        for step in stage.steps:
            yield from _step_uses(step)


def _step_uses(step: Step) -> Iterator[AnalysisUse]:
    if step.kind == "gate" and step.type == "analysis" and "analysis" in step.options:
        yield AnalysisUse(step.options["analysis"], (*step.path, "gate", "analysis"),
                          step.mark)
    if step.kind != "deploy":
        return
    for option in ANALYSIS_OPTIONS.get(step.type, ()):
        if option in step.options:
            yield AnalysisUse(step.options[option], (*step.path, "deploy", option), step.mark)
    if step.type != "canary":
        return
    canary_steps = step.options.get("steps")
    if not isinstance(canary_steps, Sequence):
        return
    for index, item in enumerate(canary_steps):
        if isinstance(item, Mapping) and "analysis" in item:
            path = (*step.path, "deploy", "steps", index, "analysis")
            yield AnalysisUse(item["analysis"], path, step.mark)


def uses_analyses(plan: Plan) -> bool:
    """Tell whether ``plan`` defines or uses any analysis."""
    return next(iter_analysis_uses(plan), None) is not None
