"""From a pipeline file to a checked plan: load, load its plugins, validate, compile."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.compiler import compile_document
from pipeline.config import Config
from pipeline.diagnostics import Diagnostic, DocPath
from pipeline.errors import PipelineError, PluginError
from pipeline.loader import Document, find_default_file, load_file
from pipeline.plan import Plan
from pipeline.schema import StepSchema, build_schema, validate

logger = logging.getLogger("shipline")


@dataclass(frozen=True)
class LoadedPlan:
    """A compiled plan and the document and schema it came from."""

    plan: Plan
    document: Document
    schema: Mapping[str, Any]


def resolve_pipeline_path(argument: str | None, invocation_dir: Path,
                          option: str | None = None) -> Path:
    """Return the pipeline file named on the command line, or the default one.

    ``option`` is the option that names the file (``-f FILE``), for the message when
    no default file is found; None means a positional argument.
    """
    if argument:
        return Path(argument)
    found = find_default_file(invocation_dir, option)
    try:
        return found.relative_to(Path.cwd())
    except ValueError:
        return found


def collect_fragments(config: Config) -> list[StepSchema]:
    """Ask every plugin for its step schemas, tagging each with the plugin's name."""
    return [fragment for _, fragment in _declared_fragments(config)]


def full_schema(config: Config) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """Return the schema with every plugin fragment, and the owner of each step type.

    The fragments of built-in plugins are not checked against the metaschema, because
    that check was the largest single cost of start-up (see docs/benchmarks.md) and
    ``tests/test_plugins.py`` checks them. Every other fragment is checked.
    """
    declared = _declared_fragments(config)
    fragments = [fragment for _, fragment in declared]
    owners = {(f.kind, f.type): f.plugin for f in fragments}
    unchecked = _unchecked_plugins(config, declared)
    return build_schema(fragments, unchecked_plugins=unchecked), owners


def _declared_fragments(config: Config) -> list[tuple[str, StepSchema]]:
    """Return (name of the declaring plugin, fragment tagged with its plugin) pairs."""
    declared: list[tuple[str, StepSchema]] = []
    hook = config.hook.shipline_step_schemas
    for impl in hook.get_hookimpls():
        try:
            fragments = impl.function()
        except Exception as exc:
            raise PluginError(
                f"plugin '{impl.plugin_name}' failed in shipline_step_schemas: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for fragment in fragments or ():
            tagged = StepSchema(
                kind=fragment.kind, type=fragment.type, schema=fragment.schema,
                plugin=fragment.plugin or impl.plugin_name,
                description=fragment.description,
            )
            declared.append((impl.plugin_name, tagged))
    return declared


def _unchecked_plugins(config: Config, declared: list[tuple[str, StepSchema]]) -> frozenset[str]:
    """Return the built-in plugin names whose fragments skip the metaschema check.

    A name that a plugin which is not built in also puts on its fragments stays
    checked, so such a fragment cannot skip the check by borrowing a built-in's name.
    """
    built_in = config.registry.builtin_names()
    borrowed = {fragment.plugin for owner, fragment in declared if owner not in built_in}
    return built_in - borrowed


def load_plan(path: Path, config: Config, environ: Mapping[str, str] | None = None, *,
              tolerate: Callable[[DocPath], bool] | None = None) -> LoadedPlan:
    """Load, validate and compile ``path``; raise ``PipelineError`` with every problem.

    The pipeline's own plugins (its ``plugins:`` list and ``shipline_plugins.py``) are
    loaded first, because their step schemas are part of what the file is validated
    against. The plan's secret values are added to ``config.masker``. ``tolerate``
    selects the paths where an undefined variable is kept as written instead of being
    an error, for commands that do not deploy (see :func:`interpolate`).
    """
    document = load_file(path)
    _load_pipeline_plugins(document, config)
    schema, owners = full_schema(config)
    validate(document, schema)

    compiled = compile_document(document, owners, os.environ if environ is None else environ,
                                tolerate)
    for secret in compiled.masker.secrets:
        config.masker.add(secret)
    for name, where in compiled.tolerated:
        logger.debug("variable %s is not set; it is used at %s, which this command does "
                     "not need", name, ".".join(str(part) for part in where))

    diagnostics: list[Diagnostic] = []
    for found in config.hook.shipline_check_plan(plan=compiled.plan, config=config):
        diagnostics.extend(_with_mark(diagnostic, document) for diagnostic in found)
    if diagnostics:
        raise PipelineError(diagnostics)
    logger.debug("compiled %s: %d stages", path, len(compiled.plan.stages))
    return LoadedPlan(compiled.plan, document, schema)


def _with_mark(diagnostic: Diagnostic, document: Document) -> Diagnostic:
    """Give a plugin's diagnostic the position of its path when the plugin left it out.

    A path that the document does not have, such as a missing key, gets the position of
    its nearest ancestor that it has.
    """
    if diagnostic.mark is not None or not diagnostic.path:
        return diagnostic
    path = tuple(diagnostic.path)
    mark = None
    while path and mark is None:
        mark = document.source.value_mark(path)
        path = path[:-1]
    return dataclasses.replace(diagnostic, mark=mark)


def _load_pipeline_plugins(document: Document, config: Config) -> None:
    names = document.data.get("plugins")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        config.registry.load_modules(names, origin=f"plugins: in {document.display_name}")
    config.registry.load_local_file(document.path.parent)
    config.registry.check_pending()
