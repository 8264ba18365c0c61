"""Tests of the blue-green strategy, run through the real Runner on the in-memory target."""

from __future__ import annotations

import shlex
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

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
from pipeline.builtin import local_target
from pipeline.builtin.bluegreen import shipline_estimate_duration
from pipeline.clock import SystemClock
from pipeline.exitcodes import ExitCode
from pipeline.report import Outcome
from pipeline.runner import Runner
from pipeline.target import Capability

SLOTS = {"blue": ["blue-1", "blue-2"], "green": ["green-1", "green-2"]}


def slotted(**options: Any) -> MemoryTarget:
    return MemoryTarget(slots=SLOTS, **options)


def blue_green(target: MemoryTarget, tmp_path: Path | None = None, **options: Any) -> Any:
    extra: dict[str, Any] = {}
    if tmp_path is not None:
        extra["plan_file"] = tmp_path / "shipline.yml"
    return run_deploy("blue-green", {"version": "2.0", **options}, target, **extra)


# -- success -----------------------------------------------------------------------------


def test_bluegreen_switches_to_idle_slot() -> None:
    target = slotted()
    run = blue_green(target)
    assert run.result.exit_code == ExitCode.OK
    assert run.step.message == "slot 'green' serves 2.0 on 2 instances"
    assert target.active == "green"
    assert target.versions == {"blue-1": None, "blue-2": None, "green-1": "2.0",
                               "green-2": "2.0"}
    assert run.outputs["deployed-version"] == "2.0"


def test_bluegreen_order_of_operations() -> None:
    target = slotted()
    blue_green(target)
    operations = [c.operation for c in target.calls if c.operation in
                  ("deploy", "health", "switch", "remove")]
    assert operations[-3:] == ["switch", "remove", "remove"]
    assert set(operations[:-3]) == {"deploy", "health"}


def test_bluegreen_waits_scale_down_delay() -> None:
    target = slotted()
    run = blue_green(target, scale_down_delay="2m")
    assert run.clock.sleeps == [120.0]  # type: ignore[attr-defined]


def test_bluegreen_default_scale_down_delay() -> None:
    run = blue_green(slotted())
    assert run.clock.sleeps == [30.0]  # type: ignore[attr-defined]


def test_bluegreen_report_table() -> None:
    run = blue_green(slotted())
    assert run.step.details == (
        "instance  slot   before  after  result\n"
        "blue-1    blue   1.0     -      removed\n"
        "blue-2    blue   1.0     -      removed\n"
        "green-1   green  ?       2.0    serving\n"
        "green-2   green  ?       2.0    serving"
    )
    assert run.step.data["slots"] == {"active": "blue", "idle": "green"}


def test_bluegreen_from_green_to_blue() -> None:
    target = slotted(active="green")
    target.versions.update({"green-1": "1.0", "green-2": "1.0"})
    run = blue_green(target)
    assert run.step.message == "slot 'blue' serves 2.0 on 2 instances"
    assert target.active == "blue"


def test_bluegreen_environment_router() -> None:
    target = slotted()
    router = MemoryRouter(target, [Capability.SLOTS])
    run = run_deploy("blue-green", {"version": "2.0"}, target, router=router)
    assert run.step.outcome is Outcome.PASSED
    assert target.active == "green"


def test_bluegreen_unknown_old_version_kept() -> None:
    target = slotted(readable=False)
    run = blue_green(target)
    assert run.step.message == (
        "slot 'green' serves 2.0 on 2 instances; 2 of 2 instances of slot 'blue' kept the "
        "old version"
    )
    assert target.operations("remove") == []


def test_bluegreen_remove_failure_noted() -> None:
    target = slotted()
    target.fail("remove", "blue-2", message="busy")
    run = blue_green(target)
    assert run.step.outcome is Outcome.PASSED
    assert run.step.message.endswith("; 1 of 2 instances of slot 'blue' kept the old version")


# -- checks before and after the switch --------------------------------------------------


def test_bluegreen_pre_promotion_failure_keeps_old_slot(tmp_path: Path) -> None:
    target = slotted()
    run = blue_green(target, tmp_path, pre_promotion=[{"command": "test {slot} = blue"}])
    assert run.result.exit_code == ExitCode.FAILED
    assert run.step.message.startswith("pre-promotion check failed: ")
    assert target.active == "blue"
    assert target.operations("switch") == []
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}
    assert run.rollbacks[0].message == "removed 2.0 from 2 instances of slot 'green'"


def test_bluegreen_pre_promotion_per_instance(tmp_path: Path) -> None:
    target = slotted()
    run = blue_green(target, tmp_path, pre_promotion=[
        {"command": "test {instance} != green-2"}, {"command": "true"}])
    assert run.step.outcome is Outcome.FAILED
    assert run.step.data["instances"][3]["result"] == "check failed"
    assert "pre-promotion checks:\ncheck" in run.step.details


def test_bluegreen_post_promotion_failure_switches_back(tmp_path: Path) -> None:
    target = slotted()
    run = blue_green(target, tmp_path, post_promotion=[{"command": "false"}])
    assert run.step.outcome is Outcome.FAILED
    assert [c.argument for c in target.operations("switch")] == ["green", "blue"]
    assert target.active == "blue"
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}
    assert run.rollbacks[0].message == (
        "traffic back on slot 'blue'; removed 2.0 from 2 instances of slot 'green'"
    )


def test_bluegreen_health_failure_no_switch() -> None:
    target = slotted()
    target.fail("health", "green-1", message="status 500")
    run = blue_green(target, health={"retries": 1, "interval": "1s"})
    assert run.step.message == (
        "1 of 2 instances of slot 'green' failed: green-1: health check failed 2 times: "
        "status 500"
    )
    assert target.operations("switch") == []
    assert target.active == "blue"


def test_bluegreen_deploy_failure_output() -> None:
    target = slotted()
    target.fail("deploy", "green-2", "2.0", message="exit status 3", output="no image")
    run = blue_green(target)
    assert run.step.output == "--- green-2: deploy ---\nno image\n"
    assert target.versions["green-1"] is None


def test_bluegreen_switch_failure_rolls_back() -> None:
    target = slotted()
    target.fail("switch", "green", message="router unreachable")
    run = blue_green(target)
    assert run.step.message == "switching traffic to slot 'green' failed: router unreachable"
    assert [c.argument for c in target.operations("switch")] == ["green", "blue"]
    assert target.active == "blue"
    assert run.result.exit_code == ExitCode.FAILED


# -- approvals ---------------------------------------------------------------------------


def test_bluegreen_waits_for_approval_file(tmp_path: Path) -> None:
    def approve_on_second_poll(seconds: float, number: int) -> None:
        if number == 2:
            (tmp_path / "promote").touch()

    target = slotted()
    run = run_deploy("blue-green", {"version": "2.0", "auto_promote": False,
                                    "approval": {"file": "promote", "interval": "10s"}},
                     target, clock=ScriptedClock(approve_on_second_poll),
                     plan_file=tmp_path / "shipline.yml")
    assert run.step.outcome is Outcome.PASSED
    assert run.step.data["approval"] == {"approved": True, "message": "approved: promote exists",
                                         "waited": 20.0}


def test_bluegreen_approval_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTE_PROD", "1")
    run = blue_green(slotted(), tmp_path, auto_promote=False, approval={"env": "PROMOTE_PROD"})
    assert run.step.outcome is Outcome.PASSED


def test_bluegreen_approval_timeout_fails(tmp_path: Path) -> None:
    target = slotted()
    run = blue_green(target, tmp_path, auto_promote=False,
                     approval={"file": "promote", "timeout": "15m"})
    assert run.step.message == "not approved within 15m: create promote to approve"
    assert target.operations("switch") == []
    assert target.versions["green-1"] is None


def test_bluegreen_auto_promote_false_needs_approval() -> None:
    plan = make_plan([make_step("blue-green", {"version": "2.0", "auto_promote": False})])
    assert check_plan(plan, MemoryPlugin(slotted())) == [
        "auto_promote is false but there is no 'approval' to wait for: add "
        "approval: {file: PATH} or approval: {env: NAME}",
    ]


# -- interrupts and rollbacks after the switch -------------------------------------------


def test_bluegreen_interrupt_during_scale_down_delay() -> None:
    target = slotted()
    holder: dict[str, Runner] = {}

    def interrupt(seconds: float, number: int) -> None:
        holder["runner"].interrupt("SIGTERM")

    run = run_deploy("blue-green", {"version": "2.0"}, target, clock=ScriptedClock(interrupt),
                     before_run=lambda runner: holder.update(runner=runner))
    assert run.result.exit_code == ExitCode.INTERRUPTED
    assert run.step.message == (
        "interrupted during scale_down_delay, before removing slot 'blue'"
    )
    assert target.active == "blue"
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}
    assert target.operations("remove")[0].instance == "green-1"


def test_bluegreen_interrupt_hanging_idle_deploy() -> None:
    target = slotted()
    target.hang("deploy", "green-2", "2.0")

    def start_timer(runner: Runner) -> None:
        timer = threading.Timer(0.2, runner.interrupt)
        timer.daemon = True
        timer.start()

    run = run_deploy("blue-green", {"version": "2.0"}, target, before_run=start_timer)
    assert run.result.exit_code == ExitCode.INTERRUPTED
    assert run.step.message == "interrupted while deploying to slot 'green'"
    assert target.operations("switch") == []
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}


def test_bluegreen_later_failure_redeploys_old_slot() -> None:
    target = slotted()
    gate = make_step("fail", {"message": "smoke test failed"}, index=2, kind="gate")
    run = run_deploy("blue-green", {"version": "2.0"}, target, extra_steps=[gate],
                     plugins=[stepplugin])
    assert run.result.reports[0].outcome is Outcome.PASSED
    assert run.rollbacks[0].message == (
        "traffic back on slot 'blue' (restored the previous version (1.0) on 2 instances); "
        "removed 2.0 from 2 instances of slot 'green'"
    )
    assert target.active == "blue"
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}


def test_bluegreen_unknown_version_rollback_is_switch_only() -> None:
    target = slotted(readable=False)
    gate = make_step("fail", {}, index=2, kind="gate")
    run = run_deploy("blue-green", {"version": "2.0"}, target, extra_steps=[gate],
                     plugins=[stepplugin])
    assert run.rollbacks[0].message == (
        "traffic back on slot 'blue'; removed 2.0 from 2 instances of slot 'green'"
    )
    assert target.versions["blue-1"] == "1.0"


def test_bluegreen_previous_version_option_after_scale_down() -> None:
    target = slotted(readable=False)
    gate = make_step("fail", {}, index=2, kind="gate")
    run = run_deploy("blue-green", {"version": "2.0", "previous_version": "1.0"}, target,
                     extra_steps=[gate], plugins=[stepplugin])
    assert [c.argument for c in target.operations("remove")] == ["1.0", "1.0", "2.0", "2.0"]
    assert run.rollbacks[0].outcome is Outcome.PASSED
    assert target.versions == {"blue-1": "1.0", "blue-2": "1.0", "green-1": None,
                               "green-2": None}


def test_bluegreen_rollback_fails_when_old_slot_cannot_return() -> None:
    target = slotted()
    target.fail("deploy", "blue-1", "1.0", message="image gone")
    gate = make_step("fail", {}, index=2, kind="gate")
    run = run_deploy("blue-green", {"version": "2.0"}, target, extra_steps=[gate],
                     plugins=[stepplugin])
    [rollback] = run.rollbacks
    assert run.result.exit_code == ExitCode.ROLLBACK_FAILED
    assert rollback.message == "1 of 2 instances could not be restored to their previous version"
    assert rollback.details == (
        "instance  expected  running  result\n"
        "blue-1    1.0       ?        restore failed: image gone\n"
        "blue-2    1.0       1.0      restored"
    )
    assert target.active == "green"
    assert target.versions["green-1"] == "2.0"


def test_bluegreen_switch_back_failure_keeps_new_slot() -> None:
    target = slotted()
    target.fail("switch", "blue", message="router unreachable")
    gate = make_step("fail", {}, index=2, kind="gate")
    run = run_deploy("blue-green", {"version": "2.0", "scale_down_delay": "1m"}, target,
                     extra_steps=[gate], plugins=[stepplugin])
    [rollback] = run.rollbacks
    assert rollback.outcome is Outcome.ROLLBACK_FAILED
    assert rollback.message == "switching traffic back to slot 'blue' failed: router unreachable"
    assert rollback.details == (
        "instance  slot   running  traffic\n"
        "blue-1    blue   1.0      -\n"
        "blue-2    blue   1.0      -\n"
        "green-1   green  2.0      active\n"
        "green-2   green  2.0      active"
    )
    assert target.versions["green-1"] == "2.0"


# -- capabilities, schema and estimates --------------------------------------------------


def test_bluegreen_needs_slots_at_validate() -> None:
    plan = make_plan([make_step("blue-green", {"version": "2.0"})])
    assert check_plan(plan, MemoryPlugin(MemoryTarget(["web-1"]))) == [
        "strategy: strategy 'blue-green' needs slots, which environment 'production' does "
        "not provide",
    ]


def test_bluegreen_needs_slots_at_run() -> None:
    run = blue_green(MemoryTarget(["web-1"]))
    assert run.step.message == (
        "strategy 'blue-green' needs slots, which environment 'production' does not provide"
    )


def test_bluegreen_schema_accepts_options() -> None:
    body = {"strategy": "blue-green", "version": "2.0", "health": False,
            "pre_promotion": [{"http": {"url": "http://127.0.0.1:1/{slot}"}}],
            "post_promotion": [{"command": "true"}], "auto_promote": False,
            "approval": {"file": "ok", "timeout": "1h"}, "scale_down_delay": "5m",
            "previous_version": "1.0"}
    assert deploy_schema_errors(body) == []


def test_bluegreen_schema_rejects_bad_approval() -> None:
    errors = deploy_schema_errors({"strategy": "blue-green", "version": "2.0",
                                   "approval": {"timeout": "1h"}})
    assert errors


def test_bluegreen_estimate_duration() -> None:
    step = make_step("blue-green", {
        "version": "2.0", "health": {"timeout": "30s", "retries": 3, "interval": "5s"},
        "pre_promotion": [{"command": {"command": "true", "timeout": "10s"}}],
        "auto_promote": False, "approval": {"file": "ok", "timeout": "10m"},
        "scale_down_delay": "1m",
    })
    target = {"type": "command", "slots": {"blue": ["b1", "b2"], "green": ["g1", "g2"]},
              "timeout": "20s"}
    plan = make_plan([step], target=target)
    # The idle slot's deploy (20s) and health checks: 20s attempts, retried while within
    # the 30s timeout, so at most 30s + 20s. Then the check, the approval, the delay,
    # and six 20s commands: the active slot, its versions, the idle slot's versions (the
    # first alone, then the other), the switch and the removal.
    assert shipline_estimate_duration(step=step, plan=plan) == (
        20 + 50 + 10 + 600 + 60 + 6 * 20)


def test_bluegreen_estimate_unknown_target_limit() -> None:
    step = make_step("blue-green", {"version": "2.0"})
    assert shipline_estimate_duration(step=step, plan=make_plan([step])) is None


# -- on the local target -----------------------------------------------------------------

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-service" / "app.py"


def test_bluegreen_local_target_switches(tmp_path: Path) -> None:
    target = {
        "type": "local", "stable": "1.0", "instances": 2, "start_timeout": "10s",
        "command": f"{shlex.quote(sys.executable)} {shlex.quote(str(DEMO_APP))} "
                   "--port {port} --version {version}",
    }
    step = make_step("blue-green", {"version": "2.0", "scale_down_delay": 0})
    plan = make_plan([step], target=target, file=tmp_path / "shipline.yml")
    result = run_plan(plan, local_target, clock=SystemClock())
    assert result.exit_code == ExitCode.OK
    assert result.reports[0].message == "slot 'green' serves 2.0 on 2 instances"
    assert [row["after"] for row in result.reports[0].data["instances"]] == [
        None, None, "2.0", "2.0"]
