"""Turn a validated pipeline document into an immutable :class:`~pipeline.plan.Plan`.

Compiling interpolates variables, orders stages by ``needs:`` (file order otherwise),
resolves each step to the plugin that declared its type, and checks the references a
JSON Schema cannot: stage names, environments, cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.diagnostics import Diagnostic, DocPath, closest_match
from pipeline.durations import parse_duration
from pipeline.errors import PipelineError
from pipeline.interpolate import interpolate
from pipeline.loader import Document
from pipeline.masking import Masker
from pipeline.plan import STEP_KINDS, Environment, Plan, Stage, Step, When, freeze

#: The key of a step body that selects its plugin, per step kind.
SELECTOR = {"deploy": "strategy", "scan": "uses", "gate": "uses", "notify": "uses"}


@dataclass(frozen=True)
class Compiled:
    """A plan and the masker holding the secret values found while interpolating."""

    plan: Plan
    masker: Masker
    #: Undefined variables that were tolerated, with their paths (see interpolate).
    tolerated: tuple[tuple[str, DocPath], ...] = ()


def compile_document(
    document: Document,
    owners: Mapping[tuple[str, str], str],
    environ: Mapping[str, str],
    tolerate: Callable[[DocPath], bool] | None = None,
) -> Compiled:
    """Compile ``document``, which must already be valid against the schema.

    ``owners`` maps ``(kind, type)`` to the name of the plugin that declared it.
    ``tolerate`` is passed to :func:`interpolate`. Raises :class:`PipelineError` with
    every problem found.
    """
    data = document.data
    interpolated = interpolate(
        data,
        document.source,
        environ=environ,
        variables=_variables_as_written(document),
        secret_names=data.get("secrets") or (),
        tolerate=tolerate,
    )
    compiler = _Compiler(document, interpolated.data, owners)
    plan = compiler.build()
    if compiler.diagnostics:
        raise PipelineError(compiler.diagnostics)
    return Compiled(plan, interpolated.masker, interpolated.tolerated)


class _Compiler:
    def __init__(
        self, document: Document, data: dict[str, Any], owners: Mapping[tuple[str, str], str]
    ) -> None:
        self.document = document
        self.data = data
        self.owners = owners
        self.diagnostics: list[Diagnostic] = []

    def error(self, path: DocPath, message: str, *, key: bool = False) -> None:
        source = self.document.source
        mark = source.key_mark(path) if key else source.value_mark(path)
        self.diagnostics.append(Diagnostic(message, mark, path))

    def build(self) -> Plan:
        environments = self._environments()
        raw_stages = self.data["stages"]
        stages = [self._stage(index, raw, environments) for index, raw in enumerate(raw_stages)]
        self._check_unique_names(stages)
        ordered = self._order(stages)
        return Plan(
            name=self.data["name"],
            file=self.document.path,
            description=self.data.get("description", ""),
            stages=tuple(ordered),
            environments=freeze(environments),
            analyses=freeze(self.data.get("analyses") or {}),
            notifications=freeze(self.data.get("notifications") or []),
            state=freeze(self.data.get("state") or {}),
            plugins=tuple(self.data.get("plugins") or ()),
            notify_timeout=_seconds(self.data.get("notify_timeout")),
            groups=freeze(self.data.get("groups") or {}),
            policy_files=self._policy_files(),
        )

    def _policy_files(self) -> tuple[Path, ...]:
        """Return the ``policy:`` paths, relative ones resolved against the file's folder."""
        value = self.data.get("policy") or ()
        names = [value] if isinstance(value, str) else list(value)
        folder = self.document.path.parent
        return tuple(folder / name for name in names)

    def _environments(self) -> dict[str, Environment]:
        environments = {}
        for name, raw in (self.data.get("environments") or {}).items():
            options = {k: v for k, v in raw.items() if k not in ("target", "router", "url")}
            environments[name] = Environment(
                name=name,
                target=freeze(raw["target"]),
                router=freeze(raw["router"]) if "router" in raw else None,
                url=raw.get("url"),
                options=freeze(options),
                mark=self.document.source.key_mark(("environments", name)),
            )
        return environments

    def _stage(self, index: int, raw: dict[str, Any], environments: Mapping[str, Any]) -> Stage:
        path: DocPath = ("stages", index)
        name = raw["name"]
        environment = raw.get("environment")
        if environment is not None and environment not in environments:
            self.error(
                (*path, "environment"),
                f"unknown environment '{environment}'{_suggest(environment, environments)}",
            )
        steps = tuple(
            self._step(name, (*path, "steps", i), i, body) for i, body in enumerate(raw["steps"])
        )
        for step in steps:
            if step.kind == "deploy" and environment is None:
                self.error(step.path, "a deploy step needs its stage to name an 'environment:'")
        return Stage(
            name=name,
            steps=steps,
            needs=tuple(raw.get("needs") or ()),
            when=When(raw.get("when", When.ON_SUCCESS.value)),
            environment=environment,
            timeout=_seconds(raw.get("timeout")),
            mark=self.document.source.value_mark(path),
        )

    def _step(self, stage: str, path: DocPath, index: int, raw: dict[str, Any]) -> Step:
        kind = next(k for k in STEP_KINDS if k in raw)
        body = raw[kind]
        selector = SELECTOR[kind]
        step_type = str(body[selector])
        options = {k: v for k, v in body.items() if k != selector}
        name = raw.get("name") or _default_name(kind, step_type, options)
        return Step(
            id=f"{stage}/{index + 1}",
            name=name,
            kind=kind,
            type=step_type,
            options=freeze(options),
            plugin=self.owners.get((kind, step_type), "?"),
            stage=stage,
            mark=self.document.source.value_mark(path),
            path=path,
            timeout=_seconds(raw.get("timeout")),
            continue_on_error=bool(raw.get("continue_on_error", False)),
        )

    def _check_unique_names(self, stages: Sequence[Stage]) -> None:
        first_line: dict[str, int] = {}
        for index, stage in enumerate(stages):
            line = stage.mark.line if stage.mark else 0
            if stage.name in first_line:
                self.error(
                    ("stages", index, "name"),
                    f"duplicate stage name '{stage.name}' (first used on line "
                    f"{first_line[stage.name]})",
                )
            else:
                first_line[stage.name] = line

    def _order(self, stages: list[Stage]) -> list[Stage]:
        """Order stages so that each comes after every stage it needs; stable otherwise.

        Unknown names and cycles are reported; the file order is returned for them.
        """
        index_of = {stage.name: i for i, stage in enumerate(stages)}
        for i, stage in enumerate(stages):
            for j, need in enumerate(stage.needs):
                if need not in index_of:
                    self.error(("stages", i, "needs", j),
                               f"unknown stage '{need}'{_suggest(need, index_of)}")
                elif need == stage.name:
                    self.error(("stages", i, "needs", j), f"stage '{need}' needs itself")
        if self.diagnostics:
            return stages

        cycle = _find_cycle(stages)
        if cycle:
            first = index_of[cycle[0]]
            self.error(("stages", first, "needs"),
                       "stages depend on each other in a cycle: " + " -> ".join(cycle))
            return stages

        ordered: list[Stage] = []
        placed: set[str] = set()
        remaining = list(stages)
        while remaining:
            ready = next(s for s in remaining if all(n in placed for n in s.needs))
            ordered.append(ready)
            placed.add(ready.name)
            remaining.remove(ready)
        return ordered


def _variables_as_written(document: Document) -> dict[str, Any]:
    """Return ``vars:`` with unquoted numbers as the user wrote them (``1.10``, not ``1.1``)."""
    variables = dict(document.data.get("vars") or {})
    for name, value in variables.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = document.source.plain_text(("vars", name))
            if text is not None:
                variables[name] = text
    return variables


def _find_cycle(stages: Sequence[Stage]) -> list[str]:
    """Return one cycle as a list of names that starts and ends with the same stage."""
    needs = {stage.name: stage.needs for stage in stages}
    state: dict[str, int] = {}
    for start in needs:
        if state.get(start):
            continue
        # Iterative depth-first search: ``stack`` is the current path.
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            name, position = stack[-1]
            if position < len(needs[name]):
                stack[-1] = (name, position + 1)
                child = needs[name][position]
                if state.get(child) == 1:
                    path = [n for n, _ in stack]
                    return [*path[path.index(child):], child]
                if not state.get(child):
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[name] = 2
                stack.pop()
    return []


def _default_name(kind: str, step_type: str, options: Mapping[str, Any]) -> str:
    if kind == "deploy":
        return f"deploy {options.get('version', '')} ({step_type})"
    return f"{kind} {step_type}"


def _seconds(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _suggest(name: str, choices: Any) -> str:
    match = closest_match(name, choices)
    return f" (did you mean '{match}'?)" if match else ""
