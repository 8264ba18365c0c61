"""The compiled, immutable plan that the runner executes.

A :class:`Plan` is what ``shipline plan`` prints and what every run hook receives.
Step options are frozen (mappings become read-only, lists become tuples) so that no
plugin can change the plan another plugin receives.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.diagnostics import DocPath, Mark


class When(str, enum.Enum):
    """When a stage runs, given the outcome of the stages it needs."""

    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ALWAYS = "always"


#: The four kinds of step a stage can hold.
STEP_KINDS = ("deploy", "scan", "gate", "notify")


@dataclass(frozen=True)
class Step:
    """One step of a stage, resolved to the plugin that runs it.

    ``type`` is the strategy name for a deploy step and the ``uses`` value for the
    other kinds. ``options`` contains every key of the step's body except the selector
    (``strategy`` or ``uses``), after variable interpolation.
    """

    id: str
    name: str
    kind: str
    type: str
    options: Mapping[str, Any]
    plugin: str
    stage: str
    mark: Mark | None = None
    path: DocPath = ()
    #: Seconds; ``None`` means the plugin's own limits apply.
    timeout: float | None = None
    continue_on_error: bool = False


@dataclass(frozen=True)
class Environment:
    """A named place to deploy: a target, an optional router and policies."""

    name: str
    target: Mapping[str, Any]
    router: Mapping[str, Any] | None = None
    url: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    mark: Mark | None = None


@dataclass(frozen=True)
class Stage:
    """A group of steps that run in order, optionally against one environment."""

    name: str
    steps: tuple[Step, ...]
    needs: tuple[str, ...] = ()
    when: When = When.ON_SUCCESS
    environment: str | None = None
    #: Seconds for the whole stage; ``None`` for no limit.
    timeout: float | None = None
    mark: Mark | None = None


@dataclass(frozen=True)
class Plan:
    """Stages in execution order plus the pipeline-wide settings they refer to."""

    name: str
    file: Path
    stages: tuple[Stage, ...]
    environments: Mapping[str, Environment]
    analyses: Mapping[str, Mapping[str, Any]]
    notifications: tuple[Mapping[str, Any], ...]
    state: Mapping[str, Any]
    plugins: tuple[str, ...] = ()
    description: str = ""
    #: Seconds the run waits at the end for queued notifications; ``None`` for the default.
    notify_timeout: float | None = None
    #: Group name -> members' CI logins, for ``protect: {groups: [...]}``.
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: Policy files from the ``policy:`` key, resolved against the pipeline file's folder.
    policy_files: tuple[Path, ...] = ()

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def freeze(value: Any) -> Any:
    """Return a deeply read-only copy: mappings become proxies, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """Return plain JSON-compatible data from a frozen value (for ``--format json``)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value
