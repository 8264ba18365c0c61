"""Tests of the rolling strategy, run through the real Runner on the in-memory target."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import stepplugin
from helpers.memorytarget import (
    MemoryPlugin,
    MemoryTarget,
    ScriptedClock,
    check_plan,
    deploy_schema_errors,
    make_plan,
    make_step,
    run_deploy,
    run_plan,
)
from pipeline.builtin import command_target
from pipeline.builtin.rolling import shipline_estimate_duration
from pipeline.clock import SystemClock
from pipeline.exitcodes import ExitCode
from pipeline.report import Outcome
from pipeline.runner import Runner

WEB = [f"web-{n}" for n in range(1, 11)]


def rolling(target: MemoryTarget, **options: Any) -> Any:
    return run_deploy("rolling", {"version": "2.0", **options}, target)


def deployed_in_order(target: MemoryTarget, version: str = "2.0") -> list[str]:
    """Return the instances that got ``version``, in the order their deploys started."""
    calls = sorted(target.operations("deploy"), key=lambda call: call.started)
    return [call.instance or "" for call in calls if call.argument == version]


def deployed(target: MemoryTarget, version: str = "2.0") -> list[str]:
    """Return the instances that got ``version``, sorted by name."""
    return sorted(deployed_in_order(target, version))


# -- success -----------------------------------------------------------------------------


def test_rolling_updates_every_instance() -> None:
    target = MemoryTarget(WEB)
    run = rolling(target, batch=[1, "10%", "50%"])
    assert run.result.exit_code == ExitCode.OK
    assert run.step.outcome is Outcome.PASSED
    assert run.step.message == "2.0 deployed to 10 of 10 instances in 4 batches"
    assert set(target.versions.values()) == {"2.0"}
    assert run.outputs["deployed-version"] == "2.0"


def test_rolling_batches_run_in_order() -> None:
    target = MemoryTarget(WEB[:6])
    batches: list[list[str]] = []

    def note(seconds: float, number: int) -> None:
        done = [i for i in deployed(target) if not any(i in b for b in batches)]
        batches.append(done)

    run = run_deploy("rolling", {"version": "2.0", "batch": 2, "pause": "1m",
                                 "health": False}, target, clock=ScriptedClock(note))
    assert run.step.outcome is Outcome.PASSED
    assert batches == [["web-1", "web-2"], ["web-3", "web-4"]]


def test_rolling_pauses_between_batches_only() -> None:
    target = MemoryTarget(WEB[:3])
    run = rolling(target, batch=1, pause="5m", health=False)
    assert run.clock.sleeps == [300.0, 300.0]  # type: ignore[attr-defined]


def test_rolling_no_pause_after_unchanged_batch() -> None:
    target = MemoryTarget(WEB[:3])
    target.versions["web-1"] = "2.0"
    run = rolling(target, batch=1, pause="5m", health=False)
    assert run.clock.sleeps == [300.0]  # type: ignore[attr-defined]
    assert deployed(target) == ["web-2", "web-3"]


def test_rolling_report_table_and_data() -> None:
    target = MemoryTarget(WEB[:2])
    run = rolling(target, batch=2)
    assert run.step.details == (
        "instance  before  after  result\n"
        "web-1     1.0     2.0    updated\n"
        "web-2     1.0     2.0    updated"
    )
    assert run.step.data["instances"][0] == {
        "instance": "web-1", "slot": None, "before": "1.0", "after": "2.0",
        "result": "updated", "message": "", "touched": True,
    }


def test_rolling_skips_instances_on_the_version() -> None:
    target = MemoryTarget(WEB[:3])
    target.versions["web-2"] = "2.0"
    run = rolling(target, batch=3)
    assert deployed(target) == ["web-1", "web-3"]
    assert run.step.message == "2.0 deployed to 2 of 3 instances in 1 batch; 1 already ran it"


def test_rolling_uses_active_slot_instances() -> None:
    target = MemoryTarget(slots={"blue": ["b1", "b2"], "green": ["g1", "g2"]})
    run = rolling(target, batch=2)
    assert run.step.outcome is Outcome.PASSED
    assert deployed(target) == ["b1", "b2"]


# -- parallelism -------------------------------------------------------------------------


def test_rolling_batch_is_parallel() -> None:
    target = MemoryTarget(WEB[:8], delay=0.05)
    rolling(target, batch=4, health=False)
    assert target.peak["deploy"] == 4


def test_rolling_max_unavailable_limits_parallelism() -> None:
    target = MemoryTarget(WEB[:8], delay=0.05)
    rolling(target, batch=4, max_unavailable=2, health=False)
    assert target.peak["deploy"] == 2


def test_rolling_max_unavailable_percentage() -> None:
    target = MemoryTarget(WEB[:8], delay=0.05)
    rolling(target, batch=8, max_unavailable="25%", health=False)
    assert target.peak["deploy"] == 2


def test_rolling_max_surge_adds_parallelism() -> None:
    target = MemoryTarget(WEB[:8], delay=0.05)
    rolling(target, batch=4, max_unavailable=1, max_surge=2, health=False)
    assert target.peak["deploy"] == 3


def test_rolling_max_surge_alone_updates() -> None:
    target = MemoryTarget(WEB[:4], delay=0.05)
    run = rolling(target, batch=4, max_unavailable=0, max_surge="50%", health=False)
    assert run.step.outcome is Outcome.PASSED
    assert target.peak["deploy"] == 2


def test_rolling_rounded_down_limit_updates_one() -> None:
    target = MemoryTarget(WEB[:3], delay=0.02)
    run = rolling(target, batch=3, max_unavailable="25%", health=False)
    assert run.step.outcome is Outcome.PASSED
    assert target.peak["deploy"] == 1


def test_rolling_zero_unavailable_and_surge_fails() -> None:
    target = MemoryTarget(WEB[:3])
    run = rolling(target, max_unavailable=0, max_surge=0)
    assert run.step.outcome is Outcome.FAILED
    assert run.step.message == (
        "max_unavailable and max_surge are both 0, so no instance could be updated: "
        "raise one of them"
    )
    assert target.operations("deploy") == []


def test_rolling_health_waits_inside_parallel_slot() -> None:
    target = MemoryTarget(WEB[:4], delay=0.03)
    rolling(target, batch=4, max_unavailable=2)
    health = target.operations("health")
    deploys = target.operations("deploy")
    assert len(health) == 4
    assert deploys[2].started >= min(call.ended for call in health[:2])


def test_rolling_rollback_is_parallel() -> None:
    target = MemoryTarget(WEB[:8], delay=0.05)
    target.fail("health", "web-8", "2.0")
    rolling(target, batch=8)
    restores = [c for c in target.operations("deploy") if c.argument == "1.0"]
    assert len(restores) == 8
    assert target.peak["deploy"] == 8


def test_rolling_rollback_parallel_with_batch_one() -> None:
    target = MemoryTarget(WEB[:4], delay=0.05)
    target.fail("health", "web-4", "2.0")
    run = rolling(target, batch=1)
    restores = [c for c in target.operations("deploy") if c.argument == "1.0"]
    assert run.result.exit_code == ExitCode.FAILED
    assert sorted(c.instance or "" for c in restores) == WEB[:4]
    assert target.peak["deploy"] == 4


def test_rolling_rollback_keeps_max_unavailable() -> None:
    target = MemoryTarget(WEB[:4], delay=0.05)
    target.fail("health", "web-4", "2.0")
    rolling(target, batch=1, max_unavailable=2)
    restores = [c for c in target.operations("deploy") if c.argument == "1.0"]
    assert len(restores) == 4
    assert target.peak["deploy"] == 2


# -- failures and rollback ---------------------------------------------------------------


def test_rolling_failure_in_first_batch() -> None:
    target = MemoryTarget(WEB[:6], delay=0.05)
    target.fail("deploy", "web-2", "2.0", message="exit status 1", output="cannot unpack")
    run = rolling(target, batch=3)
    assert run.result.exit_code == ExitCode.FAILED
    assert run.step.message == (
        "1 of 6 instances failed and max_failures allows 0: web-2: deploy failed: exit status 1"
    )
    assert run.step.output == "--- web-2: deploy ---\ncannot unpack\n"
    assert deployed(target) == ["web-1", "web-2", "web-3"]
    assert set(target.versions.values()) == {"1.0"}


def test_rolling_failure_rollback_report() -> None:
    target = MemoryTarget(WEB[:4], delay=0.05)
    target.fail("deploy", "web-3", "2.0")
    run = rolling(target, batch=2)
    [rollback] = run.rollbacks
    assert rollback.outcome is Outcome.PASSED
    assert rollback.message == (
        "restored the previous version (1.0) on 3 instances; 1 more still ran it")
    # web-3's failed deploy left it on 1.0, so the rollback does not deploy it again.
    assert sorted(c.instance or "" for c in target.operations("deploy")
                  if c.argument == "1.0") == ["web-1", "web-2", "web-4"]


def test_rolling_failure_in_last_batch() -> None:
    target = MemoryTarget(WEB[:6])
    target.fail("deploy", "web-6", "2.0")
    run = rolling(target, batch=2)
    assert run.step.outcome is Outcome.FAILED
    assert len(deployed_in_order(target)) == 6
    assert target.versions == dict.fromkeys(WEB[:6], "1.0")
    assert run.result.exit_code == ExitCode.FAILED


def test_rolling_health_never_passes() -> None:
    target = MemoryTarget(WEB[:4], delay=0.05)
    target.fail("health", "web-1", message="status 503")
    run = rolling(target, batch=2, health={"retries": 2, "interval": "1s"})
    assert run.step.message == (
        "1 of 4 instances failed and max_failures allows 0: web-1: health check failed "
        "3 times: status 503"
    )
    assert len([c for c in target.operations("health") if c.instance == "web-1"]) == 3
    assert deployed(target) == ["web-1", "web-2"]
    assert target.versions == dict.fromkeys(WEB[:4], "1.0")


def test_rolling_stops_starting_after_threshold() -> None:
    target = MemoryTarget(WEB[:6])
    target.fail("deploy", "web-1", "2.0")
    rolling(target, batch=6, max_unavailable=1)
    assert deployed_in_order(target) == ["web-1"]


def test_rolling_max_failures_tolerated() -> None:
    target = MemoryTarget(WEB)
    target.fail("deploy", "web-4", "2.0")
    run = rolling(target, batch=5, max_failures=1)
    assert run.step.outcome is Outcome.PASSED
    assert run.step.message == (
        "2.0 deployed to 9 of 10 instances in 2 batches; 1 failed, within max_failures (1)"
    )
    assert target.versions["web-4"] == "1.0"
    assert run.rollbacks == []


def test_rolling_max_failures_exceeded() -> None:
    target = MemoryTarget(WEB)
    target.fail("deploy", "web-2", "2.0")
    target.fail("deploy", "web-7", "2.0")
    run = rolling(target, batch=5, max_failures="10%")
    assert run.step.message == (
        "2 of 10 instances failed and max_failures allows 1: web-2: deploy failed: "
        "injected failure; also failed: web-7"
    )
    assert target.versions == dict.fromkeys(WEB, "1.0")


def test_rolling_rollback_fails() -> None:
    target = MemoryTarget(WEB[:3])
    target.fail("deploy", "web-3", "2.0")
    target.fail("deploy", "web-2", "1.0", message="disk full")
    run = rolling(target, batch=3)
    [rollback] = run.rollbacks
    assert run.result.exit_code == ExitCode.ROLLBACK_FAILED
    assert rollback.outcome is Outcome.ROLLBACK_FAILED
    assert rollback.message == "1 of 3 instances could not be restored to their previous version"
    assert rollback.details == (
        "instance  expected  running  result\n"
        "web-1     1.0       1.0      restored\n"
        "web-2     1.0       2.0      restore failed: disk full\n"
        "web-3     1.0       1.0      still on the previous version"
    )


def test_rolling_unknown_previous_version_fails_rollback() -> None:
    target = MemoryTarget(WEB[:2], readable=False)
    target.fail("health", "web-2")
    run = rolling(target, batch=2, health={"retries": 0})
    [rollback] = run.rollbacks
    assert run.result.exit_code == ExitCode.ROLLBACK_FAILED
    assert rollback.message == "2 of 2 instances could not be restored to their previous version"
    assert target.operations("deploy")[-1].argument == "2.0"


def test_rolling_previous_version_option_restores() -> None:
    target = MemoryTarget(WEB[:2], readable=False)
    target.fail("health", "web-2")
    run = rolling(target, batch=2, health={"retries": 0}, previous_version="1.0")
    assert run.result.exit_code == ExitCode.FAILED
    assert target.versions == dict.fromkeys(WEB[:2], "1.0")


def test_rolling_rollback_after_later_step_fails() -> None:
    target = MemoryTarget(WEB[:3])
    gate = make_step("fail", {"message": "smoke test failed"}, index=2, kind="gate")
    run = run_deploy("rolling", {"version": "2.0", "batch": 3}, target, extra_steps=[gate],
                     plugins=[stepplugin])
    assert run.result.reports[0].outcome is Outcome.PASSED
    assert run.rollbacks[0].outcome is Outcome.PASSED
    assert target.versions == dict.fromkeys(WEB[:3], "1.0")


# -- checks ------------------------------------------------------------------------------


def test_rolling_instance_check_counts_as_failure(tmp_path: Path) -> None:
    target = MemoryTarget(WEB[:4])
    run = run_deploy("rolling", {
        "version": "2.0", "batch": 2, "max_failures": 1,
        "checks": [{"command": "test {instance} != web-3"}],
    }, target, plan_file=tmp_path / "shipline.yml")
    assert run.step.outcome is Outcome.PASSED
    assert run.step.data["instances"][2]["result"] == "check failed"


def test_rolling_global_check_fails_step(tmp_path: Path) -> None:
    target = MemoryTarget(WEB[:4])
    run = run_deploy("rolling", {
        "version": "2.0", "batch": 2, "max_failures": 4,
        "checks": [{"command": "test {version} = 3.0"}],
    }, target, plan_file=tmp_path / "shipline.yml")
    assert run.step.outcome is Outcome.FAILED
    assert run.step.message.startswith("batch 1 of 2: ")
    assert deployed(target) == ["web-1", "web-2"]
    assert target.versions == dict.fromkeys(WEB[:4], "1.0")


# -- interrupts --------------------------------------------------------------------------


def test_rolling_interrupt_during_pause() -> None:
    target = MemoryTarget(WEB[:6])
    holder: dict[str, Runner] = {}

    def interrupt(seconds: float, number: int) -> None:
        if seconds == 600.0:
            holder["runner"].interrupt("SIGTERM")

    run = run_deploy("rolling", {"version": "2.0", "batch": 2, "pause": "10m",
                                 "health": False}, target, clock=ScriptedClock(interrupt),
                     before_run=lambda runner: holder.update(runner=runner))
    assert run.result.exit_code == ExitCode.INTERRUPTED
    assert run.step.outcome is Outcome.INTERRUPTED
    assert run.step.message == "interrupted during the pause after batch 1 of 3"
    assert deployed(target) == ["web-1", "web-2"]
    assert target.versions == dict.fromkeys(WEB[:6], "1.0")
    assert run.rollbacks[0].outcome is Outcome.PASSED


def test_rolling_interrupt_hanging_deploy() -> None:
    target = MemoryTarget(WEB[:4])
    target.hang("deploy", "web-2", "2.0")

    def start_timer(runner: Runner) -> None:
        timer = threading.Timer(0.2, runner.interrupt)
        timer.daemon = True
        timer.start()

    run = run_deploy("rolling", {"version": "2.0", "batch": 2}, target, before_run=start_timer)
    assert run.result.exit_code == ExitCode.INTERRUPTED
    assert run.step.message == "interrupted during batch 1 of 2"
    assert target.versions == dict.fromkeys(WEB[:4], "1.0")


def test_rolling_step_timeout_rolls_back() -> None:
    target = MemoryTarget(WEB[:2])
    target.hang("deploy", "web-2", "2.0")
    step = make_step("rolling", {"version": "2.0", "batch": 2}, timeout=0.2)
    plan = make_plan([step])
    from helpers.memorytarget import make_config

    runner = Runner(plan, make_config(MemoryPlugin(target)))
    result = runner.run()
    # The strategy's own report shows where the timeout stopped it, with the table.
    assert result.reports[0].message == "timed out after 200ms (interrupted during batch 1 of 1)"
    assert "web-2" in result.reports[0].details
    assert result.exit_code == ExitCode.FAILED
    assert target.versions == dict.fromkeys(WEB[:2], "1.0")


# -- validation, schema and estimates ----------------------------------------------------


def test_rolling_schema_accepts_options() -> None:
    body = {"strategy": "rolling", "version": "2.0", "batch": [1, "10%"],
            "max_unavailable": "25%", "max_surge": 1, "pause": "30s",
            "health": {"timeout": "1m", "retries": 3, "interval": "2s"},
            "checks": [{"http": {"url": "http://127.0.0.1:8080/{instance}"}}],
            "max_failures": "10%", "previous_version": "1.0"}
    assert deploy_schema_errors(body) == []


def test_rolling_schema_rejects_unknown_key() -> None:
    errors = deploy_schema_errors({"strategy": "rolling", "version": "2.0", "batches": 2})
    assert errors == ["Unevaluated properties are not allowed ('batches' was unexpected)"]


def test_rolling_validate_reports_bad_amount() -> None:
    plan = make_plan([make_step("rolling", {"version": "2.0", "max_failures": "120%"})])
    assert check_plan(plan, MemoryPlugin(MemoryTarget(WEB))) == [
        "max_failures: '120%' is not valid: use 0% up to 100%",
    ]


def test_rolling_validate_reports_zero_limits() -> None:
    plan = make_plan([make_step("rolling", {"version": "2.0", "max_unavailable": "0%"})])
    assert check_plan(plan, MemoryPlugin(MemoryTarget(WEB))) == [
        "max_unavailable and max_surge are both 0, so no instance could be updated: "
        "raise one of them",
    ]


def test_rolling_estimate_duration() -> None:
    step = make_step("rolling", {"version": "2.0", "batch": 2, "pause": "1m",
                                 "health": {"timeout": "30s", "retries": 2, "interval": "5s"},
                                 "checks": [{"command": {"command": "true", "timeout": "2s"}}]})
    plan = make_plan([step], target={"type": "command", "instances": WEB[:6], "timeout": "1m"})
    # 3 batches of 2. Each reads its versions (the first alone, then the other, 1m each)
    # and deploys at the 1m limit. Then it runs health checks of up to 1m each, retried
    # while within the 30s timeout (at most 30s + 1m), and the 2s check. A 1m pause
    # separates the batches.
    assert shipline_estimate_duration(step=step, plan=plan) == (
        3 * 2 * 60 + 3 * (60 + 90) + 3 * 2 + 2 * 60)


def test_rolling_estimate_counts_waves_of_a_batch() -> None:
    step = make_step("rolling", {"version": "2.0", "batch": 4, "max_unavailable": 1,
                                 "health": False})
    plan = make_plan([step], target={"type": "command", "instances": WEB[:4], "timeout": "30s"})
    # Four version reads and four deploys, one after another.
    assert shipline_estimate_duration(step=step, plan=plan) == 4 * 30 + 4 * 30


def test_rolling_estimate_unknown_target_limit() -> None:
    step = make_step("rolling", {"version": "2.0"})
    plan = make_plan([step], target={"type": "plugin-target", "instances": WEB[:2]})
    assert shipline_estimate_duration(step=step, plan=plan) is None


def test_rolling_estimate_unknown_count() -> None:
    step = make_step("rolling", {"version": "2.0"})
    assert shipline_estimate_duration(step=step, plan=make_plan([step])) is None


@pytest.mark.parametrize("other", ["canary", "blue-green"])
def test_rolling_hooks_ignore_other_types(other: str) -> None:
    from pipeline.builtin import rolling as module

    step = make_step(other, {"version": "2.0", "steps": [{"set_weight": 10}]})
    assert module.shipline_make_strategy(step=step) is None
    assert module.shipline_strategy_requires(step=step) is None
    assert module.shipline_estimate_duration(step=step, plan=make_plan([step])) is None


# -- on the command target ---------------------------------------------------------------


def release_folders(root: Path, names: list[str], versions: list[str]) -> None:
    """Give each instance folder release folders and a ``current`` link to 1.0."""
    for name in names:
        for version in versions:
            (root / name / version).mkdir(parents=True)
        (root / name / "current").symlink_to("1.0")


def command_plan(root: Path, names: list[str], options: dict[str, Any]) -> Any:
    target = {
        "type": "command", "instances": names,
        "deploy": "ln -sfn {version} {instance}/current",
        "version": "readlink {instance}/current",
        "health": "test -d {instance}/current",
        "timeout": "10s",
    }
    step = make_step("rolling", {"version": "2.0", **options})
    return make_plan([step], target=target, file=root / "shipline.yml")


def test_rolling_command_target_switches_links(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    release_folders(tmp_path, names, ["1.0", "2.0"])
    result = run_plan(command_plan(tmp_path, names, {"batch": 2}), command_target,
                      clock=SystemClock())
    assert result.exit_code == ExitCode.OK
    assert [(tmp_path / n / "current").readlink() for n in names] == [Path("2.0")] * 3


def test_rolling_command_target_rolls_back(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    release_folders(tmp_path, names[:2], ["1.0", "2.0"])
    release_folders(tmp_path, names[2:], ["1.0"])
    plan = command_plan(tmp_path, names, {"batch": 1, "health": {"retries": 0}})
    result = run_plan(plan, command_target, clock=SystemClock())
    assert result.exit_code == ExitCode.FAILED
    assert result.reports[0].message.startswith(
        "1 of 3 instances failed and max_failures allows 0: c: health check failed 1 time: ")
    assert result.reports[1].outcome is Outcome.PASSED
    assert [(tmp_path / n / "current").readlink() for n in names] == [Path("1.0")] * 3


def test_rolling_command_not_found(tmp_path: Path) -> None:
    target = {"type": "command", "instances": ["a", "b"], "timeout": "10s",
              "deploy": "no-such-command-xyz {instance} {version}"}
    step = make_step("rolling", {"version": "2.0", "previous_version": "1.0"})
    plan = make_plan([step], target=target, file=tmp_path / "shipline.yml")
    result = run_plan(plan, command_target, clock=SystemClock())
    deploy, rollback = result.reports
    assert result.exit_code == ExitCode.ROLLBACK_FAILED
    assert deploy.message == (
        "1 of 2 instances failed and max_failures allows 0: a: deploy failed: "
        "command not found: 'no-such-command-xyz'"
    )
    assert deploy.data["instances"][1]["result"] == "not reached"
    assert rollback.message == "1 of 1 instances could not be restored to their previous version"


def test_rolling_rollback_skips_instance_still_on_previous() -> None:
    target = MemoryTarget(WEB[:2])
    target.fail("deploy", "web-1", "2.0")
    target.fail("deploy", "web-1", "1.0")
    run = rolling(target, batch=1)
    [rollback] = run.rollbacks
    assert rollback.outcome is Outcome.PASSED
    assert target.versions == dict.fromkeys(WEB[:2], "1.0")


def test_rolling_many_failures_named_in_short() -> None:
    # The ten deploys of the batch run at once, so all eight fail before the step stops.
    target = MemoryTarget(WEB, delay=0.05)
    for instance in WEB[:8]:
        target.fail("deploy", instance, "2.0")
    run = rolling(target, batch=10, max_failures=1)
    assert run.step.message == (
        "8 of 10 instances failed and max_failures allows 1: web-1: deploy failed: "
        "injected failure; also failed: web-2, web-3, web-4, web-5, web-6 and 2 more"
    )
