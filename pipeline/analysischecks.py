"""Validate-time checks of the analyses in a plan: unknown template names, invalid common
options, and inline options that the provider's schema fragment rejects.

These find what the JSON Schema of the pipeline file cannot. :mod:`pipeline.analysis`
runs them from its ``shipline_check_plan`` hook.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.analysismodel import AnalysisError
from pipeline.analysispolicy import POLICY_KEYS, Policies
from pipeline.analysissettings import (
    PLACEHOLDER_BUILTINS,
    prepare_analysis,
    resolve_analysis,
    unknown_template_message,
)
from pipeline.analysisuses import AnalysisUse, iter_analysis_uses
from pipeline.diagnostics import Diagnostic, DocPath, Mark
from pipeline.judge import is_comparison, judge_problems
from pipeline.plan import thaw

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.plan import Plan

__all__ = ["check_analyses", "provider_uses", "resolve_use"]

def provider_uses(
    plan: Plan, provider: str
) -> Iterator[tuple[str, Mapping[str, Any], DocPath]]:
    """Yield the name, options and document path of each analysis that uses ``provider``,
    once per definition: a template where it is defined, an inline analysis where it is
    written. For the plan checks of provider plugins."""
    for use in iter_analysis_uses(plan):
        if isinstance(use.ref, str) and not use.is_template:
            continue
        resolved = resolve_use(use, plan)
        if resolved is not None and resolved[1].get("provider") == provider:
            yield resolved


def resolve_use(use: AnalysisUse, plan: Plan) -> tuple[str, Mapping[str, Any], DocPath] | None:
    """Return the name, options and document path of the analysis that ``use`` denotes.

    For a template reference the path is the template's, and the options are the
    template's with the use's policy overrides. Returns ``None`` when the reference does
    not resolve (:func:`check_analyses` reports that).
    """
    template = _template_name(use)
    if template is not None and template not in plan.analyses:
        return None
    try:
        name, options, _ = resolve_analysis(use.ref, plan.analyses)
    except AnalysisError:
        return None
    path = ("analyses", template) if template is not None else use.path
    return name, options, path


def check_analyses(plan: Plan, config: Config) -> list[Diagnostic]:
    """Find what the schema cannot: unknown templates and arguments, conditions, options.

    Templates are checked once each, where they are defined, with every required
    argument set to a placeholder. A reference to a valid template is checked for its
    name, its arguments and its policy overrides. Inline analyses are checked where
    they are written, including their provider's options against the provider's schema
    fragment.
    """
    diagnostics: list[Diagnostic] = []
    inline: list[AnalysisUse] = []
    invalid_templates: set[str] = set()
    uses = list(iter_analysis_uses(plan))
    for use in uses:
        if use.is_template and isinstance(use.ref, str):
            found = _check_template(use.ref, plan, use.mark)
            if found:
                invalid_templates.add(use.ref)
            diagnostics.extend(found)

    for use in uses:
        template = _template_name(use)
        if use.is_template or template in invalid_templates:
            continue
        if template is not None and template not in plan.analyses:
            message = unknown_template_message(template, plan.analyses)
            diagnostics.append(Diagnostic(message, use.mark, use.path))
            continue
        if template is None:
            inline.append(use)
        diagnostics.extend(_check_use(use, plan))

    if inline:
        diagnostics.extend(_check_inline_options(inline, config))
    return diagnostics


def _template_name(use: AnalysisUse) -> str | None:
    """Return the template that ``use`` defines or refers to, or ``None`` for inline ones."""
    if isinstance(use.ref, str):
        return use.ref
    if isinstance(use.ref, Mapping) and isinstance(use.ref.get("template"), str):
        return str(use.ref["template"])
    return None


def _check_template(name: str, plan: Plan, mark: Mark | None) -> list[Diagnostic]:
    """Check a template's options, with a placeholder for every required argument."""
    options = plan.analyses[name]
    declared = options.get("args")
    placeholders = {}
    if isinstance(declared, Mapping):
        placeholders = {arg: "1" for arg, default in declared.items() if default is None}
    ref = {"template": name, "args": placeholders}
    return _settings_diagnostics(ref, plan, ("analyses", name), mark)


def _check_use(use: AnalysisUse, plan: Plan) -> list[Diagnostic]:
    return _settings_diagnostics(use.ref, plan, use.path, use.mark)


def _settings_diagnostics(
    ref: str | Mapping[str, Any], plan: Plan, path: DocPath, mark: Mark | None
) -> list[Diagnostic]:
    try:
        name, options, _given = resolve_analysis(ref, plan.analyses)
        if is_comparison(options):
            return _judge_diagnostics(name, options, path, mark)
        prepare_analysis(ref, plan.analyses, PLACEHOLDER_BUILTINS)
    except AnalysisError as exc:
        where = (*path, exc.key) if exc.key else path
        return [Diagnostic(str(exc), mark, where)]
    return []


def _judge_diagnostics(
    name: str, options: Mapping[str, Any], path: DocPath, mark: Mark | None
) -> list[Diagnostic]:
    """Report every invalid option of a judge analysis, its policies included."""
    problems = judge_problems(name, options)
    for key in POLICY_KEYS:
        try:
            Policies.from_options(name, {key: options[key]} if key in options else {})
        except AnalysisError as exc:
            problems.append(((key,), str(exc)))
    return [Diagnostic(message, mark, (*path, *where)) for where, message in problems]


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
