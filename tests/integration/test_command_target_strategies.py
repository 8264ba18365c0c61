"""Rolling, blue-green and canary deploys on the ``command`` target, end to end.

Every instance is a release directory (``servers/INSTANCE/releases/VERSION`` and a
``current`` symlink) changed by ``scripts/release.sh``. With slots, the router is
``scripts/router.sh``, which keeps the active slot and the weight in files.
Failures are injected through the target's ``env``. Each test runs ``shipline run``
and then reads from the disk where every instance ended up: the release ``current``
points at, the history of deploys and removals, and the router's state.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from integration.scripts.harness import (
    PAUSE,
    PAUSE_SETTLE,
    SCRIPTS,
    details_after,
    junit_cases,
    process_alive,
    result_type,
    run_and_interrupt,
    run_in_process,
    step_lines,
)

from pipeline.exitcodes import ExitCode
from pipeline.testing import CliResult

RunCli = Callable[..., CliResult]

#: Folder of the release directories, relative to the pipeline file.
ROOT = "servers"
#: Folder of the router's state files, relative to the pipeline file.
ROUTER = "router"

WEB = ["web-1", "web-2", "web-3", "web-4"]
BLUE = ["blue-1", "blue-2"]
GREEN = ["green-1", "green-2"]

#: Health checks that give up quickly: three attempts 100 ms apart.
QUICK_HEALTH = {"timeout": "2s", "retries": 2, "interval": "100ms"}


# -- pipelines ---------------------------------------------------------------------------


def release(action: str, *arguments: str) -> str:
    return " ".join(["sh", shlex.quote(str(SCRIPTS / "release.sh")), action, ROOT, *arguments])


def router(action: str, *arguments: str) -> str:
    return " ".join(["sh", shlex.quote(str(SCRIPTS / "router.sh")), ROUTER, action, *arguments])


def web_target(**options: Any) -> dict[str, Any]:
    """Return the options of four instances updated in place, without slots or router."""
    return {
        "type": "command",
        "instances": WEB,
        "deploy": release("deploy", "{instance}", "{version}"),
        "version": release("version", "{instance}"),
        "health": release("health", "{instance}"),
        "timeout": "10s",
        **options,
    }


def slot_target(**options: Any) -> dict[str, Any]:
    """Return the options of blue and green slots of two instances each, routed by
    ``router.sh``."""
    return {
        "type": "command",
        "slots": {"blue": BLUE, "green": GREEN},
        "deploy": release("deploy", "{instance}", "{version}"),
        "version": release("version", "{instance}"),
        "health": release("health", "{instance}"),
        "remove": release("remove", "{instance}", "{version}"),
        "active_slot": router("active_slot"),
        "switch": router("switch", "{slot}"),
        "set_weight": router("set_weight", "{slot}", "{weight}"),
        "timeout": "10s",
        **options,
    }


def pipeline(target: dict[str, Any], strategy: str, **options: Any) -> dict[str, Any]:
    """Return a pipeline with one stage that deploys 1.1.0 with ``strategy``."""
    return {
        "version": 1,
        "name": "integration",
        "environments": {"servers": {"target": target}},
        "stages": [{
            "name": "upgrade",
            "environment": "servers",
            "steps": [{"deploy": {"version": "1.1.0", "strategy": strategy, **options}}],
        }],
    }


# -- the state on disk -------------------------------------------------------------------


def install(folder: Path, instances: list[str], version: str | None) -> None:
    """Create the release directory of each instance, with ``version`` live if given."""
    for instance in instances:
        directory = folder / ROOT / instance
        directory.mkdir(parents=True)
        if version is None:
            continue
        (directory / "releases" / version).mkdir(parents=True)
        (directory / "releases" / version / "VERSION").write_text(f"{version}\n")
        (directory / "current").symlink_to(f"releases/{version}")


def install_slots(folder: Path) -> None:
    """Install 1.0.0 on blue, which serves traffic, and nothing on green."""
    install(folder, BLUE, "1.0.0")
    install(folder, GREEN, None)
    (folder / ROUTER).mkdir()
    (folder / ROUTER / "active").write_text("blue\n")


def live_versions(folder: Path, instances: list[str]) -> dict[str, str | None]:
    """Return the release each instance's ``current`` points at, ``None`` without one."""
    versions: dict[str, str | None] = {}
    for instance in instances:
        link = folder / ROOT / instance / "current"
        if link.is_symlink():
            versions[instance] = os.readlink(link).removeprefix("releases/")
        else:
            versions[instance] = None
    return versions


def history(folder: Path, instance: str) -> list[str]:
    """Return what ``release.sh`` did to ``instance`` in this test, oldest first."""
    path = folder / ROOT / instance / "history"
    return path.read_text().splitlines() if path.exists() else []


def router_state(folder: Path) -> tuple[str, str | None, list[str]]:
    """Return the active slot, the weight line (``None`` without one) and the log."""
    weight = folder / ROUTER / "weight"
    log = folder / ROUTER / "log"
    return (
        (folder / ROUTER / "active").read_text().strip(),
        weight.read_text().strip() if weight.exists() else None,
        log.read_text().splitlines() if log.exists() else [],
    )


def hanging_pid(folder: Path, instance: str) -> int:
    return int((folder / ROOT / f"{instance}.hanging").read_text())


# -- rolling -----------------------------------------------------------------------------


def test_rolling_failure_in_first_batch(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"FAIL_DEPLOY": "web-2@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "rolling", batch=2))

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "1 of 4 instances failed and max_failures allows 0: web-2: deploy failed: "
        "exit code 1: release.sh: injected deploy failure: web-2@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].outcome == "PASSED"
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 1 instance; 1 more still ran it"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-2") == ["deploy 1.1.0 failed"]
    assert history(tmp_path, "web-3") == []
    assert history(tmp_path, "web-4") == []


def test_rolling_failure_in_last_batch(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"FAIL_DEPLOY": "web-4@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "rolling", batch=2))

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "1 of 4 instances failed and max_failures allows 0: web-4: deploy failed: "
        "exit code 1: release.sh: injected deploy failure: web-4@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 3 instances; 1 more still ran it"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    for instance in ("web-1", "web-2", "web-3"):
        assert history(tmp_path, instance) == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-4") == ["deploy 1.1.0 failed"]


def test_rolling_interrupt_during_pause(tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    document = pipeline(web_target(), "rolling", batch=2, pause=PAUSE,
                        checks=[{"command": "touch checked-batch"}])

    finished = run_and_interrupt(tmp_path, document, (tmp_path / "checked-batch").exists,
                                 "the checks after the first batch", settle=PAUSE_SETTLE)

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (rolling)"].outcome == "INTERRUPTED"
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "interrupted during the pause after batch 1 of 2"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 2 instances"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-2") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-3") == []
    cases = junit_cases(tmp_path / "report.xml")
    assert result_type(cases["deploy 1.1.0 (rolling)"]) == "interrupted"
    assert result_type(cases["rollback: deploy 1.1.0 (rolling)"]) == "passed"


def test_rolling_health_never_passes(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"UNHEALTHY": "*@1.1.0"})
    document = pipeline(target, "rolling", health=QUICK_HEALTH)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (rolling)"].message == (
        "1 of 4 instances failed and max_failures allows 0: web-1: health check failed "
        "3 times: unhealthy: exit code 1: release.sh: injected health failure: web-1@1.1.0"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-2") == []


def test_rolling_hanging_deploy_times_out(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(timeout="500ms", env={"HANG_DEPLOY": "web-1@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "rolling"))

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (rolling)"].message == (
        "1 of 4 instances failed and max_failures allows 0: web-1: deploy failed: "
        "timed out after 500ms"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deploy 1.1.0 hanging"]
    assert history(tmp_path, "web-2") == []
    assert not process_alive(hanging_pid(tmp_path, "web-1"))


def test_rolling_deploy_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(deploy="no-such-deploy-tool {instance} {version}")

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "rolling"))

    # The deploy never started, so web-1 still runs 1.0.0 and the rollback, which would
    # need the same missing command, leaves it alone.
    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == (
        "1 of 4 instances failed and max_failures allows 0: web-1: deploy failed: "
        "command not found: 'no-such-deploy-tool'"
    )
    assert lines["rollback: deploy 1.1.0 (rolling)"].outcome == "PASSED"
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "nothing to restore: the instance still ran the previous version (1.0.0)"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == []


def test_rolling_health_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(health="no-such-health-tool {instance}")
    document = pipeline(target, "rolling", health=QUICK_HEALTH)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (rolling)"].message == (
        "1 of 4 instances failed and max_failures allows 0: web-1: health check failed "
        "3 times: unhealthy: command not found: 'no-such-health-tool'"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]


def test_rolling_interrupt_during_deploy(tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"HANG_DEPLOY": "web-2@1.1.0"})
    hanging = tmp_path / ROOT / "web-2.hanging"

    finished = run_and_interrupt(tmp_path, pipeline(target, "rolling"), hanging.exists,
                                 "the deploy of web-2")

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (rolling)"].message == "interrupted during batch 2 of 4"
    assert lines["rollback: deploy 1.1.0 (rolling)"].message == (
        "restored the previous version (1.0.0) on 1 instance; 1 more still ran it"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-2") == ["deploy 1.1.0 hanging"]
    assert history(tmp_path, "web-3") == []
    assert not process_alive(hanging_pid(tmp_path, "web-2"))


def test_rolling_failed_restore_exits_4(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"FAIL_DEPLOY": "web-2@1.1.0 web-1@1.0.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "rolling", batch=2))

    assert result.exit_code == ExitCode.ROLLBACK_FAILED
    assert details_after(result.stdout, "rollback: deploy 1.1.0 (rolling)").splitlines() == [
        "instance  expected  running  result",
        "web-1     1.0.0     1.1.0    restore failed: exit code 1: "
        "release.sh: injected deploy failure: web-1@1.0.0",
        "web-2     1.0.0     1.0.0    still on the previous version",
        "web-3     ?         1.0.0    not changed by this deploy",
        "web-4     ?         1.0.0    not changed by this deploy",
    ]
    assert live_versions(tmp_path, WEB) == {
        "web-1": "1.1.0", "web-2": "1.0.0", "web-3": "1.0.0", "web-4": "1.0.0",
    }
    assert result_type(junit_cases(tmp_path / "report.xml")[
        "rollback: deploy 1.1.0 (rolling)"]) == "rollback_failed"


# -- canary, in place --------------------------------------------------------------------

#: A quarter, then half, then all instances. The last step is the promotion, written out.
WEIGHTS = [{"set_weight": 25}, {"set_weight": 50}, {"set_weight": 100}]


def test_canary_failure_at_first_weight(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"FAIL_DEPLOY": "web-1@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "canary", steps=WEIGHTS))

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "1 of 1 canary instances failed: web-1: deploy failed: exit "
        "code 1: release.sh: injected deploy failure: web-1@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "nothing to restore: the instance still ran the previous version (1.0.0)"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deploy 1.1.0 failed"]
    assert history(tmp_path, "web-2") == []


def test_canary_failure_at_last_weight(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"FAIL_DEPLOY": "web-4@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "canary", steps=WEIGHTS))

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "1 of 2 canary instances failed: web-4: deploy failed: exit "
        "code 1: release.sh: injected deploy failure: web-4@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "restored the previous version (1.0.0) on 3 instances; 1 more still ran it"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-3") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-4") == ["deploy 1.1.0 failed"]


def test_canary_interrupt_during_pause(tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    steps = [{"set_weight": 25}, {"pause": PAUSE}, {"set_weight": 100}]
    document = pipeline(web_target(), "canary", steps=steps)

    finished = run_and_interrupt(
        tmp_path, document, lambda: history(tmp_path, "web-1") == ["deployed 1.1.0"],
        "the first canary instance", settle=PAUSE_SETTLE,
    )

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == "interrupted during the pause of step 2"
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "restored the previous version (1.0.0) on 1 instance"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-2") == []


def test_canary_health_never_passes(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"UNHEALTHY": "*@1.1.0"})
    document = pipeline(target, "canary", steps=WEIGHTS, health=QUICK_HEALTH)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (canary)"].message == (
        "1 of 1 canary instances failed: web-1: health check failed 3 times: unhealthy: "
        "exit code 1: release.sh: injected health failure: web-1@1.1.0"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]


def test_canary_hanging_deploy_times_out(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(timeout="500ms", env={"HANG_DEPLOY": "web-2@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "canary", steps=WEIGHTS))

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (canary)"].message == (
        "1 of 1 canary instances failed: web-2: deploy failed: "
        "timed out after 500ms"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]
    assert history(tmp_path, "web-2") == ["deploy 1.1.0 hanging"]
    assert not process_alive(hanging_pid(tmp_path, "web-2"))


def test_canary_health_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(health="no-such-health-tool {instance}")
    document = pipeline(target, "canary", steps=WEIGHTS, health=QUICK_HEALTH)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (canary)"].message == (
        "1 of 1 canary instances failed: web-1: health check failed 3 times: unhealthy: "
        "command not found: 'no-such-health-tool'"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]


def test_canary_interrupt_during_deploy(tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target(env={"HANG_DEPLOY": "web-2@1.1.0"})
    hanging = tmp_path / ROOT / "web-2.hanging"

    finished = run_and_interrupt(tmp_path, pipeline(target, "canary", steps=WEIGHTS),
                                 hanging.exists, "the deploy of web-2")

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "interrupted while updating canary instances"
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "restored the previous version (1.0.0) on 1 instance; 1 more still ran it"
    )
    assert live_versions(tmp_path, WEB) == dict.fromkeys(WEB, "1.0.0")
    assert history(tmp_path, "web-2") == ["deploy 1.1.0 hanging"]
    assert history(tmp_path, "web-3") == []
    assert not process_alive(hanging_pid(tmp_path, "web-2"))


# -- canary, in the idle slot ------------------------------------------------------------


def test_canary_slot_failure_on_one_instance(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(env={"FAIL_DEPLOY": "green-2@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "canary", steps=WEIGHTS))

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (canary)"].message == (
        "1 of 2 instances of slot 'green' failed: green-2: deploy failed: exit code 1: "
        "release.sh: injected deploy failure: green-2@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (canary)"].message == (
        "weight of slot 'green' back to 0; removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert history(tmp_path, "blue-1") == []
    assert history(tmp_path, "green-1") == ["deployed 1.1.0", "removed 1.1.0"]
    assert history(tmp_path, "green-2") == ["deploy 1.1.0 failed", "removed 1.1.0"]
    assert router_state(tmp_path) == (
        "blue", "green 0", ["set_weight green 0", "set_weight green 0"],
    )


def test_canary_slot_failure_at_last_weight(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(env={"FAIL_WEIGHT": "50"})
    steps = [{"set_weight": 25}, {"set_weight": 50}]

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "canary", steps=steps))

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (canary)"].message == (
        "setting the weight of slot 'green' to 50 failed: set_weight command (slot green, "
        "weight 50) failed: exit code 1: router.sh: injected failure of set_weight 50"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert router_state(tmp_path) == ("blue", "green 0", [
        "set_weight green 0", "set_weight green 25", "set_weight green 50 failed",
        "set_weight green 0",
    ])


# -- blue-green --------------------------------------------------------------------------


def test_blue_green_failure_on_one_instance(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(env={"FAIL_DEPLOY": "green-2@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "blue-green"))

    assert result.exit_code == ExitCode.FAILED
    lines = step_lines(result.stdout)
    assert lines["deploy 1.1.0 (blue-green)"].message == (
        "1 of 2 instances of slot 'green' failed: green-2: deploy failed: exit code 1: "
        "release.sh: injected deploy failure: green-2@1.1.0"
    )
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert history(tmp_path, "green-1") == ["deployed 1.1.0", "removed 1.1.0"]
    assert router_state(tmp_path) == ("blue", None, [])


def test_blue_green_health_never_passes(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(env={"UNHEALTHY": "green-1@1.1.0"})
    document = pipeline(target, "blue-green", health=QUICK_HEALTH)

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (blue-green)"].message == (
        "1 of 2 instances of slot 'green' failed: green-1: health check failed 3 times: "
        "unhealthy: exit code 1: release.sh: injected health failure: green-1@1.1.0"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert router_state(tmp_path) == ("blue", None, [])


def test_blue_green_hanging_deploy_times_out(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(timeout="500ms", env={"HANG_DEPLOY": "green-1@1.1.0"})

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "blue-green"))

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (blue-green)"].message == (
        "1 of 2 instances of slot 'green' failed: green-1: deploy failed: "
        "timed out after 500ms"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert history(tmp_path, "green-1") == ["deploy 1.1.0 hanging", "removed 1.1.0"]
    assert not process_alive(hanging_pid(tmp_path, "green-1"))
    assert router_state(tmp_path) == ("blue", None, [])


def test_blue_green_deploy_command_not_found(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(deploy="no-such-deploy-tool {instance} {version}")

    result = run_in_process(shipline_cli, tmp_path, pipeline(target, "blue-green"))

    # Unlike a rolling rollback, which deploys the previous version with the missing
    # command, this rollback only removes the new version from the idle slot.
    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["deploy 1.1.0 (blue-green)"].message == (
        "2 of 2 instances of slot 'green' failed: green-1: deploy failed: "
        "command not found: 'no-such-deploy-tool'"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert history(tmp_path, "green-1") == ["removed 1.1.0"]
    assert router_state(tmp_path) == ("blue", None, [])


def test_blue_green_interrupt_during_scale_down(tmp_path: Path) -> None:
    install_slots(tmp_path)
    document = pipeline(slot_target(), "blue-green", scale_down_delay=PAUSE,
                        post_promotion=[{"command": "touch switched"}])

    finished = run_and_interrupt(tmp_path, document, (tmp_path / "switched").exists,
                                 "the post-promotion check", settle=PAUSE_SETTLE)

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (blue-green)"].message == (
        "interrupted during scale_down_delay, before removing slot 'blue'"
    )
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "traffic back on slot 'blue'; removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert history(tmp_path, "blue-1") == []
    assert router_state(tmp_path) == ("blue", None, ["switch green", "switch blue"])


def test_blue_green_interrupt_during_deploy(tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(env={"HANG_DEPLOY": "green-2@1.1.0"})
    hanging = tmp_path / ROOT / "green-2.hanging"

    finished = run_and_interrupt(tmp_path, pipeline(target, "blue-green"), hanging.exists,
                                 "the deploy of green-2")

    assert finished.exit_code == ExitCode.INTERRUPTED
    lines = step_lines(finished.stdout)
    assert lines["deploy 1.1.0 (blue-green)"].message == (
        "interrupted while deploying to slot 'green'"
    )
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert not process_alive(hanging_pid(tmp_path, "green-2"))
    assert router_state(tmp_path) == ("blue", None, [])


def test_blue_green_post_promotion_failure(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    document = pipeline(slot_target(), "blue-green", scale_down_delay="5s",
                        post_promotion=[{"command": "false"}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.FAILED
    assert step_lines(result.stdout)["rollback: deploy 1.1.0 (blue-green)"].message == (
        "traffic back on slot 'blue'; removed 1.1.0 from 2 instances of slot 'green'"
    )
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None,
    }
    assert router_state(tmp_path) == ("blue", None, ["switch green", "switch blue"])


def test_blue_green_failed_switch_back_exits_4(shipline_cli: RunCli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    target = slot_target(env={"FAIL_SWITCH": "blue"})
    document = pipeline(target, "blue-green", scale_down_delay="5s",
                        post_promotion=[{"command": "false"}])

    result = run_in_process(shipline_cli, tmp_path, document)

    assert result.exit_code == ExitCode.ROLLBACK_FAILED
    lines = step_lines(result.stdout)
    assert lines["rollback: deploy 1.1.0 (blue-green)"].message == (
        "switching traffic back to slot 'blue' failed: switch command (slot blue) failed: "
        "exit code 1: router.sh: injected failure of the switch to blue"
    )
    assert details_after(result.stdout, "rollback: deploy 1.1.0 (blue-green)").splitlines() == [
        "instance  slot   running  traffic",
        "blue-1    blue   1.0.0    -",
        "blue-2    blue   1.0.0    -",
        "green-1   green  1.1.0    active",
        "green-2   green  1.1.0    active",
    ]
    assert live_versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": "1.1.0", "green-2": "1.1.0",
    }
    assert router_state(tmp_path) == ("green", None, ["switch green", "switch blue failed"])
