"""Validate-time checks of the analyses in a plan: unknown template names, invalid common
options, and inline options that the provider's schema fragment rejects.

These find what the JSON Schema of the pipeline file cannot. :mod:`pipeline.analysis`
runs them from its ``shipline_check_plan`` hook.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.analysismodel import AnalysisError
from pipeline.analysissettings import (
    AnalysisSettings,
    resolve_analysis,
    unknown_template_message,
)
from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.judge import JudgeSettings, is_comparison
from pipeline.plan import thaw

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.plan import Plan

__all__ = ["AnalysisUse", "check_analyses", "iter_analysis_uses", "resolve_use"]

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


def iter_analysis_uses(plan: Plan) -> Iterator[AnalysisUse]:
    """Yield every template under ``analyses:``, then every ``analysis`` of a canary step.

    Canary steps are deploy steps with strategy ``canary``; their ``steps`` option is a
    list of mappings, and those with an ``analysis`` key hold a reference.
    """
    for name in plan.analyses:
        yield AnalysisUse(name, ("analyses", name), is_template=True)

    for stage in plan.stages:
        for step in stage.steps:
            if step.kind != "deploy" or step.type != "canary":
                continue
            canary_steps = step.options.get("steps")
            if not isinstance(canary_steps, Sequence):
                continue
            for index, item in enumerate(canary_steps):
                if isinstance(item, Mapping) and "analysis" in item:
                    path = (*step.path, "deploy", "steps", index, "analysis")
                    yield AnalysisUse(item["analysis"], path, step.mark)


def resolve_use(use: AnalysisUse, plan: Plan) -> tuple[str, Mapping[str, Any], DocPath] | None:
    """Return the name, options and document path of the analysis that ``use`` denotes.

    For a template reference the path is the template's. Returns ``None`` when the
    reference does not resolve (:func:`check_analyses` reports that).
    """
    if isinstance(use.ref, str):
        if use.ref not in plan.analyses:
            return None
        return use.ref, plan.analyses[use.ref], ("analyses", use.ref)
    name, options = resolve_analysis(use.ref, plan.analyses)
    return name, options, use.path


def check_analyses(plan: Plan, config: Config) -> list[Diagnostic]:
    """Find what the schema cannot: unknown template names, conditions, provider options.

    Templates are checked once each, where they are defined; references to them only
    for their name. Inline analyses are checked where they are written, including their
    provider's options against the provider's schema fragment.
    """
    diagnostics: list[Diagnostic] = []
    inline: list[AnalysisUse] = []
    for use in iter_analysis_uses(plan):
        if isinstance(use.ref, str) and not use.is_template:
            if use.ref not in plan.analyses:
                message = unknown_template_message(use.ref, plan.analyses)
                diagnostics.append(Diagnostic(message, use.mark, use.path))
            continue
        if not isinstance(use.ref, str):
            inline.append(use)
        resolved = resolve_use(use, plan)
        if resolved is not None:
            diagnostics.extend(_check_settings(*resolved, use.mark))

    if inline:
        diagnostics.extend(_check_inline_options(inline, config))
    return diagnostics


def _check_settings(
    name: str, options: Mapping[str, Any], path: DocPath, mark: Mark | None
) -> list[Diagnostic]:
    try:
        if is_comparison(options):
            JudgeSettings.from_options(name, options)
        else:
            AnalysisSettings.from_options(name, options)
    except AnalysisError as exc:
        where = (*path, exc.key) if exc.key else path
        return [Diagnostic(str(exc), mark, where)]
    return []


def _check_inline_options(uses: Sequence[AnalysisUse], config: Config) -> list[Diagnostic]:
    """Validate inline analyses against the complete ``analysis`` definition.

    The step schema that contains an inline analysis can only check the common options,
    because a fragment cannot refer to the definitions that other plugins add.
    """
    from jsonschema import Draft202012Validator

    from pipeline.planning import full_schema

    schema, _ = full_schema(config)
    definition = schema["$defs"]["analysis"]
    validator = Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/analysis"})

    diagnostics = []
    for use in uses:
        instance = thaw(use.ref)
        for error in validator.iter_errors(instance):
            if error.validator == "unevaluatedProperties":
                diagnostics.extend(_unknown_keys(instance, definition, use))
            else:
                path = (*use.path, *error.absolute_path)
                diagnostics.append(Diagnostic(error.message, use.mark, path))
    return diagnostics


def _unknown_keys(
    instance: Mapping[str, Any], definition: Mapping[str, Any], use: AnalysisUse
) -> list[Diagnostic]:
    """Report the keys of ``instance`` that neither the core nor its provider declares.

    ``definition`` is the built ``analysis`` definition, in which each provider's
    fragment is the ``then`` of an ``allOf`` branch whose ``if`` matches the provider.
    Nothing is reported for an unknown provider: that error is reported on its own.
    """
    declared = set(definition.get("properties", {}))
    provider_known = False
    for branch in definition.get("allOf", []):
        selector = branch.get("if", {}).get("properties", {}).get("provider", {})
        if selector.get("const") == instance.get("provider"):
            declared |= set(branch.get("then", {}).get("properties", {}))
            provider_known = True
    if not provider_known:
        return []

    diagnostics = []
    for key in sorted(set(instance) - declared):
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, sorted(declared - set(instance)), n=1)
        hint = f"did you mean {close[0]!r}?" if close else None
        diagnostics.append(Diagnostic(message, use.mark, use.path, hint))
    return diagnostics
