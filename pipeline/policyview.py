"""The JSON view of a compiled plan that policy rules read as the CEL variable ``plan``.

The view is documented in docs/security.md, and ``shipline plan --format policy``
prints it. Its keys are part of the policy language, so renaming one breaks users'
rules. Durations are in seconds. A key without a value is ``null``, never missing,
so a rule may compare it without a ``has()`` test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.plan import Plan, Stage, Step, thaw


def plan_view(plan: Plan) -> dict[str, Any]:
    """Return the view of ``plan``: its stages in run order and a flat list of its steps."""
    stages: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    upstream = _upstream_names(plan.stages)
    for index, stage in enumerate(plan.stages):
        stage_steps = [_step_view(step, position, len(steps) + position)
                       for position, step in enumerate(stage.steps)]
        steps.extend(stage_steps)
        stages.append(_stage_view(stage, index, stage_steps, upstream[stage.name]))

    return {
        "name": plan.name,
        "file": str(plan.file),
        "stages": stages,
        "steps": steps,
        "environments": {
            name: _environment_view(name, environment.target, environment.router,
                                    environment.url, environment.options)
            for name, environment in plan.environments.items()
        },
        "groups": {name: list(members) for name, members in plan.groups.items()},
        "notifications": [thaw(notification) for notification in plan.notifications],
    }


def _stage_view(
    stage: Stage, index: int, steps: list[dict[str, Any]], upstream: list[str]
) -> dict[str, Any]:
    return {
        "name": stage.name,
        "index": index,
        "environment": stage.environment,
        "needs": list(stage.needs),
        "upstream": upstream,
        "when": stage.when.value,
        "timeout": stage.timeout,
        "steps": steps,
    }


def _step_view(step: Step, index: int, order: int) -> dict[str, Any]:
    options = thaw(step.options)
    deploy = step.kind == "deploy"
    return {
        "id": step.id,
        "name": step.name,
        "stage": step.stage,
        "index": index,
        "order": order,
        "kind": step.kind,
        "type": step.type,
        "plugin": step.plugin,
        "strategy": step.type if deploy else None,
        "version": str(options.get("version", "")) if deploy else None,
        "weights": _weights(options) if deploy else [],
        "timeout": step.timeout,
        "continue_on_error": step.continue_on_error,
        "options": options,
    }


def _weights(options: Mapping[str, Any]) -> list[Any]:
    """Return the ``set_weight`` values of a canary's ``steps``, in order."""
    weights = []
    for entry in options.get("steps") or ():
        if isinstance(entry, Mapping) and "set_weight" in entry:
            weights.append(entry["set_weight"])
    return weights


def _environment_view(
    name: str,
    target: Mapping[str, Any],
    router: Mapping[str, Any] | None,
    url: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    protect = thaw(options.get("protect") or {})
    return {
        "name": name,
        "target": target.get("type"),
        "router": router.get("type") if router is not None else None,
        "url": url,
        "protected": bool(protect),
        "protect": protect,
    }


def _upstream_names(stages: Sequence[Stage]) -> dict[str, list[str]]:
    """Return, per stage, every stage it needs directly or through others, sorted.

    A stage without ``needs:`` depends on the stage before it in the plan, as the
    runner treats it. ``stages`` is in run order, so every stage a stage needs comes
    before it and its set is already known.
    """
    upstream: dict[str, set[str]] = {}
    previous: str | None = None
    for stage in stages:
        direct = stage.needs or ((previous,) if previous is not None else ())
        found: set[str] = set()
        for name in direct:
            found.add(name)
            found |= upstream.get(name, set())
        upstream[stage.name] = found
        previous = stage.name
    return {name: sorted(found) for name, found in upstream.items()}
