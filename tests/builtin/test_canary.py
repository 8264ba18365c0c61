"""Tests of the canary strategy, run through the real Runner on the in-memory target."""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import pipeline
from helpers import stepplugin
from helpers.memorytarget import (
    MemoryPlugin,
    MemoryRouter,
    MemoryTarget,
    ScriptedClock,
    check_plan,
    deploy_schema_errors,
    make_plan,
    make_step,
    run_deploy,
    run_plan,
)
from pipeline.analysis import MeasurementRequest
from pipeline.builtin import local_target
from pipeline.builtin.canary import shipline_estimate_duration
from pipeline.clock import SystemClock
from pipeline.context import RunContext
from pipeline.exitcodes import ExitCode
from pipeline.report import Outcome
from pipeline.runner import Runner
from pipeline.target import Capability

SLOTS = {"blue": ["blue-1", "blue-2"], "green": ["green-1", "green-2"]}
WEB = [f"web-{n}" for n in range(1, 11)]


class FixedProvider:
    """Returns the next scripted values on each measurement, then repeats the last."""

    def __init__(self, plugin: ProviderPlugin) -> None:
        self.plugin = plugin

    def measure(
        self, request: MeasurementRequest, cancel: threading.Event
    ) -> Mapping[str, float | None]:
        self.plugin.requests.append(request)
        if len(self.plugin.values) > 1:
            return self.plugin.values.pop(0)
        return self.plugin.values[0]


class ProviderPlugin:
    """Provides the analysis provider ``fixed``."""

    def __init__(self, values: Sequence[Mapping[str, float | None]]) -> None:
        self.values = list(values)
        self.requests: list[MeasurementRequest] = []

    @pipeline.hookimpl
    def shipline_make_provider(
        self, name: str, options: Mapping[str, Any], context: RunContext
    ) -> FixedProvider | None:
        return FixedProvider(self) if name == "fixed" else None


ERROR_RATE = {"provider": "fixed", "success": "success_rate >= 0.99", "count": 2,
              "interval": "10s"}


def routed(**options: Any) -> MemoryTarget:
    return MemoryTarget(slots=SLOTS, weights=True, endpoint="http://127.0.0.1:9/", **options)


def canary(target: MemoryTarget, steps: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
    options = {"version": "2.0", "steps": list(steps), **kwargs.pop("options", {})}
    return run_deploy("canary", options, target, **kwargs)


def weights(run: Any) -> list[int]:
    return [point["weight"] for point in run.step.data["weights"]]


# -- with a router -----------------------------------------------------------------------


def test_canary_router_promotes() -> None:
    target = routed()
    run = canary(target, [{"set_weight": 20}, {"pause": "1m"}, {"set_weight": 50}])
    assert run.result.exit_code == ExitCode.OK
    assert run.step.message == (
        "2.0 promoted after 3 steps: slot 'green' serves all traffic"
    )
    assert target.active == "green"
    assert target.versions == {"blue-1": None, "blue-2": None, "green-1": "2.0",
                               "green-2": "2.0"}
    assert run.step.data["traffic"] == "router"


def test_canary_router_weight_timeline() -> None:
    run = canary(routed(), [{"set_weight": 20}, {"pause": "1m"}, {"set_weight": 50}])
    timeline = run.step.data["weights"]
    assert weights(run) == [0, 20, 50, 100]
    assert timeline[2]["time"] - timeline[1]["time"] == 60.0


def test_canary_router_sleeps() -> None:
    run = canary(routed(), [{"set_weight": 20}, {"pause": {"duration": "2m"}}],
                 options={"scale_down_delay": "10s"})
    assert run.clock.sleeps == [120.0, 10.0]  # type: ignore[attr-defined]


def test_canary_router_weight_before_deploy() -> None:
    target = routed()
    canary(target, [{"set_weight": 20}])
    operations = [c.operation for c in target.calls if c.operation in ("set_weight", "deploy")]
    assert operations == ["set_weight", "deploy", "deploy", "set_weight"]


def test_canary_environment_router() -> None:
    target = MemoryTarget(slots=SLOTS)
    router = MemoryRouter(target, [Capability.WEIGHTS])
    run = canary(target, [{"set_weight": 30}], router=router)
    assert run.step.data["traffic"] == "router"
    assert target.active == "green"


def test_canary_router_analysis_passes() -> None:
    provider = ProviderPlugin([{"success_rate": 1.0}])
    run = canary(routed(), [{"set_weight": 20}, {"analysis": "error-rate"}],
                 plugins=[provider], analyses={"error-rate": ERROR_RATE})
    assert run.step.outcome is Outcome.PASSED
    request = provider.requests[0]
    assert (request.stable_version, request.canary_version, request.endpoint) == (
        "1.0", "2.0", "http://127.0.0.1:9/")
    assert run.step.data["analyses"][0]["verdict"] == "successful"


def test_canary_router_analysis_fails_and_aborts() -> None:
    target = routed()
    provider = ProviderPlugin([{"success_rate": 1.0}, {"success_rate": 0.7}])
    run = canary(target, [{"set_weight": 20}, {"analysis": "error-rate"}, {"set_weight": 50}],
                 plugins=[provider], analyses={"error-rate": ERROR_RATE})
    assert run.result.exit_code == ExitCode.FAILED
    assert run.step.message.startswith("analysis 'error-rate' failed: ")
    assert "analysis 'error-rate': failed: " in run.step.details
    assert len(run.step.data["analyses"][0]["measurements"]) == 2
    assert weights(run) == [0, 20, 0]
    assert run.step.data["weights"][-1]["rollback"] is True
    assert target.weights == {"green": 0}
    assert target.active == "blue"
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}
    assert run.rollbacks[0].message == (
        "weight of slot 'green' back to 0; removed 2.0 from 2 instances of slot 'green'"
    )


def test_canary_router_inline_analysis() -> None:
    provider = ProviderPlugin([{"success_rate": 0.5}])
    run = canary(routed(), [{"analysis": {"provider": "fixed", "success": "success_rate > 0.9"}}],
                 plugins=[provider])
    assert run.step.message.startswith("analysis 'inline fixed' failed: ")


def test_canary_router_unknown_template() -> None:
    run = canary(routed(), [{"analysis": "nope"}])
    assert run.step.message == (
        "analysis 'nope' error: analysis template 'nope' is not defined under 'analyses:', "
        "which defines no templates"
    )


def test_canary_router_health_failure() -> None:
    target = routed()
    target.fail("health", "green-2", message="status 502")
    run = canary(target, [{"set_weight": 20}], options={"health": {"retries": 0}})
    assert run.step.message == (
        "1 of 2 instances of slot 'green' failed: green-2: health check failed 1 time: "
        "status 502"
    )
    assert weights(run) == [0, 0]
    assert target.versions["green-1"] is None


def test_canary_router_set_weight_failure() -> None:
    target = routed()
    target.fail("set_weight", "green", "50", message="nginx reload failed")
    run = canary(target, [{"set_weight": 20}, {"set_weight": 50}])
    assert run.step.message == (
        "setting the weight of slot 'green' to 50 failed: nginx reload failed"
    )
    assert target.weights == {"green": 0}
    assert run.rollbacks[0].outcome is Outcome.PASSED


def test_canary_router_rollback_fails() -> None:
    target = routed()

    def break_router(call: Any) -> None:
        if call.operation == "set_weight" and call.argument == "20":
            target.fail("set_weight", "green", "0", message="router down")

    target.on_call(break_router)
    target.fail("set_weight", "green", "50", message="reload failed")
    run = canary(target, [{"set_weight": 20}, {"set_weight": 50}])
    rollback = run.rollbacks[0]
    assert run.result.exit_code == ExitCode.ROLLBACK_FAILED
    assert rollback.message == "setting the weight of slot 'green' back to 0 failed: router down"
    assert rollback.details == (
        "instance  slot   running  traffic\n"
        "blue-1    blue   1.0      active\n"
        "blue-2    blue   1.0      active\n"
        "green-1   green  2.0      -\n"
        "green-2   green  2.0      -"
    )
    assert target.versions["green-1"] == "2.0"


def test_canary_router_remove_fails() -> None:
    target = routed()
    target.fail("remove", "green-1", "2.0", message="busy")
    provider = ProviderPlugin([{"success_rate": 0.0}])
    run = canary(target, [{"set_weight": 10}, {"analysis": "error-rate"}], plugins=[provider],
                 analyses={"error-rate": ERROR_RATE})
    rollback = run.rollbacks[0]
    assert run.result.exit_code == ExitCode.ROLLBACK_FAILED
    assert rollback.message == "1 of 2 instances still run 2.0: removing it failed"
    assert target.weights == {"green": 0}


def test_canary_router_no_active_slot() -> None:
    target = routed()
    target.active = None
    run = canary(target, [{"set_weight": 20}])
    assert run.step.message == (
        "the router has no active slot, so no stable version serves traffic to compare the "
        "canary with: deploy the first version with blue-green or rolling"
    )
    assert target.operations("deploy") == []


def test_canary_router_later_failure_switches_back() -> None:
    target = routed()
    gate = make_step("fail", {}, index=2, kind="gate")
    run = canary(target, [{"set_weight": 50}], extra_steps=[gate], plugins=[stepplugin])
    assert run.result.reports[0].outcome is Outcome.PASSED
    assert target.active == "blue"
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}


# -- without a router --------------------------------------------------------------------


def test_canary_instances_share() -> None:
    target = MemoryTarget(WEB)
    run = canary(target, [{"set_weight": 20}, {"pause": "1m"}, {"set_weight": 25}])
    assert run.step.outcome is Outcome.PASSED
    assert run.step.data["traffic"] == "instances"
    assert [(p["weight"], p["requested"], p["instances"]) for p in run.step.data["weights"]] == [
        (20, 20, 2), (30, 25, 3), (100, 100, 10)]
    assert set(target.versions.values()) == {"2.0"}
    assert run.step.message == "2.0 promoted after 3 steps: all 10 instances run it"


def test_canary_instances_small_weight_gets_one() -> None:
    target = MemoryTarget(WEB[:3])
    seen: list[int] = []

    def count(seconds: float, number: int) -> None:
        seen.append(sum(v == "2.0" for v in target.versions.values()))

    canary(target, [{"set_weight": 1}, {"pause": "1s"}], clock=ScriptedClock(count))
    assert seen[0] == 1


def test_canary_instances_failure_restores_all() -> None:
    target = MemoryTarget(WEB)
    target.fail("deploy", "web-4", "2.0", message="exit status 1")
    run = canary(target, [{"set_weight": 20}, {"set_weight": 50}])
    assert run.step.message == (
        "1 of 3 canary instances failed: web-4: deploy failed: exit status 1"
    )
    assert target.versions == dict.fromkeys(WEB, "1.0")
    assert run.rollbacks[0].message == (
        "restored the previous version (1.0) on 4 instances; 1 more still ran it")


def test_canary_instances_lowering_weight_restores() -> None:
    target = MemoryTarget(WEB[:4])
    seen: list[int] = []

    def count(seconds: float, number: int) -> None:
        seen.append(sum(v == "2.0" for v in target.versions.values()))

    canary(target, [{"set_weight": 75}, {"pause": "1s"}, {"set_weight": 25}, {"pause": "1s"}],
           clock=ScriptedClock(count))
    assert seen == [3, 1]
    assert set(target.versions.values()) == {"2.0"}


def test_canary_instances_analysis_failure() -> None:
    target = MemoryTarget(WEB[:4])
    provider = ProviderPlugin([{"success_rate": 0.5}])
    run = canary(target, [{"set_weight": 50}, {"analysis": "error-rate"}], plugins=[provider],
                 analyses={"error-rate": ERROR_RATE}, url="http://127.0.0.1:8/")
    assert run.step.outcome is Outcome.FAILED
    assert provider.requests[0].endpoint == "http://127.0.0.1:8/"
    assert provider.requests[0].stable_version == "1.0"
    assert target.versions == dict.fromkeys(WEB[:4], "1.0")


def test_canary_instances_unknown_version_fails_rollback() -> None:
    target = MemoryTarget(WEB[:4], readable=False)
    target.fail("health", "web-2")
    run = canary(target, [{"set_weight": 50}], options={"health": {"retries": 0}})
    assert run.result.exit_code == ExitCode.ROLLBACK_FAILED
    assert run.rollbacks[0].message == (
        "2 of 2 instances could not be restored to their previous version"
    )


def test_canary_traffic_instances_ignores_router() -> None:
    target = routed()
    run = canary(target, [{"set_weight": 50}], options={"traffic": "instances"})
    assert run.step.data["traffic"] == "instances"
    assert target.operations("set_weight") == []
    assert target.versions["blue-1"] == "2.0"


def test_canary_traffic_router_needs_router() -> None:
    run = canary(MemoryTarget(WEB[:2]), [{"set_weight": 50}], options={"traffic": "router"})
    assert run.step.message == (
        "traffic: router needs a router with weights and a target with two slots, which "
        "environment 'production' does not provide"
    )


def test_canary_traffic_router_validated() -> None:
    step = make_step("canary", {"version": "2.0", "traffic": "router",
                                "steps": [{"set_weight": 10}]})
    plan = make_plan([step])
    assert check_plan(plan, MemoryPlugin(MemoryTarget(WEB))) == [
        "strategy: strategy 'canary' needs slots and weights, which environment 'production' "
        "does not provide",
    ]


# -- pauses, approvals and interrupts ----------------------------------------------------


def test_canary_pause_until_approved(tmp_path: Path) -> None:
    def approve(seconds: float, number: int) -> None:
        if number == 3:
            (tmp_path / "go").touch()

    run = canary(routed(), [{"set_weight": 20},
                            {"pause": {"until_approved": {"file": "go", "interval": "1m"}}}],
                 clock=ScriptedClock(approve), plan_file=tmp_path / "shipline.yml")
    assert run.step.outcome is Outcome.PASSED
    assert run.step.data["approvals"] == [
        {"step": 2, "approved": True, "message": "approved: go exists", "waited": 180.0}]


def test_canary_pause_not_approved(tmp_path: Path) -> None:
    target = routed()
    run = canary(target, [{"set_weight": 20},
                          {"pause": {"until_approved": {"file": "go", "timeout": "5m"}}}],
                 plan_file=tmp_path / "shipline.yml")
    assert run.step.message == "step 2: not approved within 5m: create go to approve"
    assert target.active == "blue"
    assert target.weights == {"green": 0}


def test_canary_interrupt_during_pause() -> None:
    target = routed()
    holder: dict[str, Runner] = {}

    def interrupt(seconds: float, number: int) -> None:
        if seconds == 600.0:
            holder["runner"].interrupt("SIGINT")

    run = canary(target, [{"set_weight": 20}, {"pause": "10m"}, {"set_weight": 50}],
                 clock=ScriptedClock(interrupt),
                 before_run=lambda runner: holder.update(runner=runner))
    assert run.result.exit_code == ExitCode.INTERRUPTED
    assert run.step.message == "interrupted during the pause of step 2"
    assert target.weights == {"green": 0}
    assert target.active == "blue"
    assert target.versions["green-1"] is None


def test_canary_in_place_interrupt_during_pause() -> None:
    target = MemoryTarget(WEB[:4])
    holder: dict[str, Runner] = {}

    def interrupt(seconds: float, number: int) -> None:
        holder["runner"].interrupt("SIGTERM")

    run = canary(target, [{"set_weight": 50}, {"pause": "10m"}], clock=ScriptedClock(interrupt),
                 before_run=lambda runner: holder.update(runner=runner))
    assert run.result.exit_code == ExitCode.INTERRUPTED
    assert target.versions == dict.fromkeys(WEB[:4], "1.0")


# -- options, schema and estimates -------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "steps: expected a list of set_weight, pause and analysis steps"),
        ([{"set_weight": 120}], "steps[0].set_weight: 120 is not valid: use 0 to 100"),
        ([{"wait": 1}], "steps[0]: unknown step 'wait': use set_weight, pause or analysis"),
        ([{"pause": "soon"}],
         "steps[0].pause: 'soon' is not a valid duration: use a number of seconds or a value "
         "like 500ms, 30s, 5m, 1h"),
        ([{"pause": {"until_approved": {}}}],
         "steps[0].pause.until_approved: give a 'file' or an 'env' variable to wait for"),
        ([{"set_weight": 1, "pause": 1}],
         "steps[0]: expected a mapping with one key: set_weight, pause or analysis"),
    ],
)
def test_canary_invalid_steps(steps: list[Any], message: str) -> None:
    plan = make_plan([make_step("canary", {"version": "2.0", "steps": steps})])
    assert check_plan(plan, MemoryPlugin(MemoryTarget(WEB))) == [message]


def test_canary_schema_accepts_options() -> None:
    body = {"strategy": "canary", "version": "2.0", "traffic": "auto", "health": False,
            "scale_down_delay": "0s", "previous_version": "1.0",
            "steps": [{"set_weight": 20}, {"pause": "30s"}, {"pause": {"duration": 5}},
                      {"pause": {"until_approved": {"env": "GO", "timeout": "1h"}}},
                      {"analysis": "error-rate"},
                      {"analysis": {"provider": "probe", "success": "success_rate >= 0.99"}}]}
    assert deploy_schema_errors(body) == []


def test_canary_schema_rejects_two_keys() -> None:
    errors = deploy_schema_errors({"strategy": "canary", "version": "2.0",
                                   "steps": [{"set_weight": 20, "pause": "1s"}]})
    assert errors


def test_canary_estimate_duration() -> None:
    step = make_step("canary", {
        "version": "2.0", "health": False, "scale_down_delay": "30s",
        "steps": [{"set_weight": 20}, {"pause": "1m"},
                  {"pause": {"until_approved": {"file": "go", "timeout": "10m"}}},
                  {"analysis": "error-rate"}],
    })
    target = {"type": "local", "command": "app --port {port}", "stable": "1.0",
              "instances": 2, "start_timeout": "20s"}
    plan = make_plan([step], target=target,
                     analyses={"error-rate": {**ERROR_RATE, "timeout": "5s",
                                              "consecutive_error_limit": 0,
                                              "on_inconclusive": "abort"}})
    # A deploy (the 20s start timeout and 5s to stop the old process) at the start and
    # for the one weight, then the pauses, the approval and the analysis. Seven calls
    # take up to 5s each: the active slot, its versions, two rounds of the idle slot's
    # versions, the weight, the promotion and the removal.
    assert shipline_estimate_duration(step=step, plan=plan) == (
        30 + 2 * 25 + 60 + 600 + (2 * 5 + 10) + 7 * 5)


# -- on the local target -----------------------------------------------------------------

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-service" / "app.py"


def local_plan(root: Path, strategy: str, options: dict[str, Any]) -> Any:
    target = {
        "type": "local", "stable": "1.0", "instances": 2, "start_timeout": "10s",
        "command": f"{shlex.quote(sys.executable)} {shlex.quote(str(DEMO_APP))} "
                   "--port {port} --version {version}",
    }
    step = make_step(strategy, {"version": "2.0", **options})
    return make_plan([step], target=target, file=root / "shipline.yml")


def test_canary_local_target_promotes(tmp_path: Path) -> None:
    plan = local_plan(tmp_path, "canary", {"steps": [{"set_weight": 50}, {"pause": "100ms"}],
                                           "scale_down_delay": 0})
    result = run_plan(plan, local_target, clock=SystemClock())
    report = result.reports[0]
    assert result.exit_code == ExitCode.OK
    assert report.message == "2.0 promoted after 2 steps: slot 'green' serves all traffic"
    assert [point["weight"] for point in report.data["weights"]] == [0, 50, 100]
    assert [row["after"] for row in report.data["instances"]] == [None, None, "2.0", "2.0"]

