"""Checks of ``protect`` rules that validation can make without CI facts.

The rules themselves are evaluated at the start of ``shipline run``
(:func:`pipeline.protect.enforce`), because only the CI job has the facts of who runs it
and from which ref. ``shipline validate`` reports here what can never work: a group that the
top-level ``groups:`` does not define.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.diagnostics import Diagnostic, closest_match

if TYPE_CHECKING:
    from pipeline.plan import Plan


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    diagnostics = []
    for name, environment in plan.environments.items():
        protect = environment.options.get("protect") or {}
        for index, group in enumerate(protect.get("groups") or ()):
            if group in plan.groups:
                continue
            match = closest_match(group, plan.groups)
            hint = f"did you mean '{match}'?" if match else "define it under 'groups:'"
            diagnostics.append(Diagnostic(
                f"unknown group '{group}'",
                path=("environments", name, "protect", "groups", index),
                hint=hint,
            ))
    return diagnostics
