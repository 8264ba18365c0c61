"""Tests for pipeline.context: creating targets once per run."""

from __future__ import annotations

import pytest

import pipeline
from helpers.memorytarget import make_config, make_plan
from pipeline.context import RunContext
from pipeline.errors import ShiplineError
from pipeline.plan import Environment


class FailingTargetPlugin:
    """A target plugin whose target cannot be created; counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    @pipeline.hookimpl
    def shipline_make_target(self, environment: Environment, context: RunContext) -> None:
        self.attempts += 1
        raise ShiplineError(f"environment '{environment.name}': the stable version did not "
                            "start")


def test_target_failure_not_retried() -> None:
    plugin = FailingTargetPlugin()
    plan = make_plan([])
    context = RunContext(plan=plan, config=make_config(plugin))
    context.environment = plan.environments["production"]

    for _ in range(2):
        with pytest.raises(ShiplineError, match="the stable version did not start"):
            context.target()
    assert plugin.attempts == 1
