"""Crash recovery: SIGKILL a real ``shipline run``, then check what the next run does.

Each test stops the first run at a chosen point: ``gated.sh`` makes a deploy wait for a
file that never comes, or the run reaches a long pause. The test kills the run there
with SIGKILL, so that no code of shipline runs afterwards. Then it starts a second run
with a pipeline whose deploys do not wait. The lease is 1 second and the second run waits for the
lock with ``--lock-wait``. The tests then read every instance's version and deploy
history from the disk, and the deployments, journal and rollbacks from the store.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from integration.scripts.harness import (
    PAUSE_SETTLE,
    SCRIPTS,
    interrupt,
    run_to_end,
    shipline_run,
    wait_until,
    write_pipeline,
)
from integration.scripts.stateharness import (
    BLUE,
    GREEN,
    ROOT,
    WEB,
    StoreReader,
    active_slot,
    deploy_history,
    install,
    install_slots,
    pipeline,
    router_log,
    slot_target,
    versions,
    web_target,
)

from pipeline.exitcodes import ExitCode
from pipeline.orphans import PROCESS_OPERATION, current_host, lists_in
from pipeline.state import DeploymentOutcome, JournalEntry, RollbackOutcome

#: Lease of the runs' locks, short so that the second run does not wait long.
LEASE = "1s"


def _kill_when(folder: Path, document: dict[str, Any], state_url: str, ready: Any,
               description: str, settle: float = 0.0) -> None:
    """Run ``document``, wait until ``ready()``, then SIGKILL the run."""
    write_pipeline(folder, document)
    with shipline_run(folder, "--state", state_url) as process:
        wait_until(ready, description, process)
        time.sleep(settle)
        process.kill()
        process.communicate(timeout=20)
    assert process.returncode == -9


def _changes(store: StoreReader, deployment_id: str) -> list[JournalEntry]:
    """Return the journal entries of a deployment without those of started commands."""
    return [entry for entry in store.journal(deployment_id)
            if entry.operation != PROCESS_OPERATION]


def _waiting(folder: Path, instance: str) -> bool:
    return (folder / ROOT / f"{instance}.waiting").exists()


def _second_run(folder: Path, state_url: str, *extra: str, **deploy: Any) -> tuple[int, str]:
    """Run the plain (not held) pipeline once more and return its exit code and output."""
    write_pipeline(folder, pipeline(web_target(), lease=LEASE, **deploy))
    finished = run_to_end(folder, "--state", state_url, "--lock-wait", "20s", *extra)
    return finished.exit_code, finished.stdout + finished.stderr


def test_state_recovery_after_kill_mid_batch(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    _kill_when(tmp_path, pipeline(web_target("web-3@1.1.0 web-4@1.1.0"), lease=LEASE,
                                  batch=2),
               state_url, lambda: _waiting(tmp_path, "web-3") and _waiting(tmp_path, "web-4"),
               "the deploys of web-3 and web-4")
    assert versions(tmp_path) == {"web-1": "1.1.0", "web-2": "1.1.0", "web-3": "1.0.0",
                                  "web-4": "1.0.0"}
    store = StoreReader(state_url, tmp_path)
    [killed] = store.history()
    assert killed.outcome is None
    assert store.lock() is not None

    code, output = _second_run(tmp_path, state_url, batch=2)

    assert code == ExitCode.OK, output
    assert (f"shipline: environment 'production': deployment {killed.id} of 1.1.0 was left "
            "unfinished by a run that stopped; rolling back 4 instances it changed") in output
    assert (f"shipline: environment 'production': recovered deployment {killed.id}: restored "
            "the previous version (1.0.0) on 2 instances; 2 more still ran it") in output
    assert output.index("recovered deployment") < output.index("stage release")
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.1.0")
    for instance in ("web-1", "web-2"):
        assert deploy_history(tmp_path, instance) == [
            "deployed 1.1.0", "deployed 1.0.0", "deployed 1.1.0"]
    for instance in ("web-3", "web-4"):
        assert deploy_history(tmp_path, instance) == ["deployed 1.1.0"]

    second, first = store.history()
    assert first.id == killed.id
    assert first.outcome is DeploymentOutcome.RECOVERED
    assert second.outcome is DeploymentOutcome.SUCCEEDED
    assert second.previous_version == "1.0.0"
    [rollback] = store.rollbacks()
    assert rollback.deployment_id == killed.id
    assert (rollback.from_version, rollback.to_version) == ("1.1.0", "1.0.0")
    assert rollback.outcome is RollbackOutcome.SUCCEEDED
    # One entry per batch, written before the batch starts and done once it ended.
    assert [(entry.instances, entry.details["before"], entry.done)
            for entry in _changes(store, killed.id)] == [
        (("web-1", "web-2"), "1.0.0", True), (("web-3", "web-4"), "1.0.0", False)]


def test_state_recovery_after_kill_in_canary_pause(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    canary = pipeline(web_target(), lease=LEASE, strategy="canary", traffic="instances",
                      steps=[{"set_weight": 50}, {"pause": "10m"}])
    del canary["stages"][0]["steps"][0]["deploy"]["health"]
    canary["environments"]["production"]["target"]["health"] = "true"

    def canary_running() -> bool:
        return all(deploy_history(tmp_path, i) == ["deployed 1.1.0"] for i in ("web-1", "web-2"))

    _kill_when(tmp_path, canary, state_url, canary_running, "the canary instances",
               settle=PAUSE_SETTLE)
    assert versions(tmp_path) == {"web-1": "1.1.0", "web-2": "1.1.0", "web-3": "1.0.0",
                                  "web-4": "1.0.0"}

    write_pipeline(tmp_path, pipeline(web_target(FAIL_DEPLOY="web-1@1.1.0"), lease=LEASE))
    finished = run_to_end(tmp_path, "--state", state_url, "--lock-wait", "20s")

    # The recovery put 1.0.0 back before the new deploy, whose failure on web-1 then
    # left nothing to restore.
    assert finished.exit_code == ExitCode.FAILED, finished.stdout + finished.stderr
    assert "restored the previous version (1.0.0) on 2 instances" in finished.stdout
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.0.0")
    store = StoreReader(state_url, tmp_path)
    second, first = store.history()
    assert first.strategy == "canary"
    assert first.outcome is DeploymentOutcome.RECOVERED
    assert second.outcome is DeploymentOutcome.ROLLED_BACK
    assert store.lock() is None


def test_state_recovery_after_kill_during_rollback(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    target = web_target("web-1@1.0.0", FAIL_DEPLOY="web-3@1.1.0")
    _kill_when(tmp_path, pipeline(target, lease=LEASE), state_url,
               lambda: _waiting(tmp_path, "web-1"), "the restore of web-1")
    assert versions(tmp_path)["web-1"] == "1.1.0"
    assert versions(tmp_path)["web-3"] == "1.0.0"

    code, output = _second_run(tmp_path, state_url, version="1.0.0")

    assert code == ExitCode.OK, output
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.0.0")
    assert deploy_history(tmp_path, "web-1") == ["deployed 1.1.0", "deployed 1.0.0"]
    store = StoreReader(state_url, tmp_path)
    second, first = store.history()
    assert first.outcome is DeploymentOutcome.RECOVERED
    assert second.version == "1.0.0"
    assert second.outcome is DeploymentOutcome.SUCCEEDED
    assert [r.outcome for r in store.rollbacks()] == [RollbackOutcome.SUCCEEDED]


def test_state_resume_continues_after_kill(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    _kill_when(tmp_path, pipeline(web_target("web-3@1.1.0"), lease=LEASE), state_url,
               lambda: _waiting(tmp_path, "web-3"), "the deploy of web-3")

    code, output = _second_run(tmp_path, state_url, "--resume")

    assert code == ExitCode.OK, output
    assert "was left unfinished by a run that stopped; resuming it" in output
    assert "1.1.0 deployed to 2 of 4 instances in 4 batches; 2 already ran it" in output
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.1.0")
    for instance in WEB:
        assert deploy_history(tmp_path, instance) == ["deployed 1.1.0"]
    store = StoreReader(state_url, tmp_path)
    second, first = store.history()
    assert first.outcome is DeploymentOutcome.RESUMED
    assert second.outcome is DeploymentOutcome.SUCCEEDED
    assert second.previous_version == "1.0.0"
    assert store.rollbacks() == []


def test_state_resume_other_version_rejected(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    _kill_when(tmp_path, pipeline(web_target("web-3@1.1.0"), lease=LEASE), state_url,
               lambda: _waiting(tmp_path, "web-3"), "the deploy of web-3")
    [killed] = StoreReader(state_url, tmp_path).history()

    code, output = _second_run(tmp_path, state_url, "--resume", version="1.2.0")

    assert code == ExitCode.INVALID, output
    assert (f"shipline: error: --resume: the unfinished deployment {killed.id} of "
            f"environment 'production' deploys 1.1.0, but this run deploys 1.2.0: run with "
            f"version 1.1.0 to resume it, or without --resume to roll it back first") in output
    assert versions(tmp_path) == {"web-1": "1.1.0", "web-2": "1.1.0", "web-3": "1.0.0",
                                  "web-4": "1.0.0"}
    store = StoreReader(state_url, tmp_path)
    assert [deployment.outcome for deployment in store.history()] == [None]
    assert store.lock() is None


def test_state_resumed_failure_restores_all(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    _kill_when(tmp_path, pipeline(web_target("web-3@1.1.0"), lease=LEASE), state_url,
               lambda: _waiting(tmp_path, "web-3"), "the deploy of web-3")

    write_pipeline(tmp_path, pipeline(web_target(FAIL_DEPLOY="web-4@1.1.0"), lease=LEASE))
    finished = run_to_end(tmp_path, "--state", state_url, "--lock-wait", "20s", "--resume")

    assert finished.exit_code == ExitCode.FAILED, finished.stdout + finished.stderr
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.0.0")


def test_state_killed_run_blocks_until_lease_ends(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    document = pipeline(web_target("web-1@1.1.0"), lease="30s")
    _kill_when(tmp_path, document, state_url, lambda: _waiting(tmp_path, "web-1"),
               "the deploy of web-1")

    finished = run_to_end(tmp_path, "--state", state_url)

    assert finished.exit_code == ExitCode.LOCKED
    assert "environment 'production' is locked by " in finished.stderr
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.0.0")


def test_state_recovery_switches_traffic_back(tmp_path: Path, state_url: str) -> None:
    install_slots(tmp_path)
    document = pipeline(slot_target(), lease=LEASE, strategy="blue-green",
                        scale_down_delay="10m")
    _kill_when(tmp_path, document, state_url, lambda: active_slot(tmp_path) == "green",
               "the switch to green", settle=PAUSE_SETTLE)
    assert versions(tmp_path, GREEN) == dict.fromkeys(GREEN, "1.1.0")

    # The next run's own deploy fails on green-2, so it ends where the recovery left
    # the environment: blue serves 1.0.0 and green runs nothing.
    write_pipeline(tmp_path, pipeline(slot_target(FAIL_DEPLOY="green-2@1.1.0"), lease=LEASE,
                                      strategy="blue-green"))
    finished = run_to_end(tmp_path, "--state", state_url, "--lock-wait", "20s")

    assert finished.exit_code == ExitCode.FAILED, finished.stdout + finished.stderr
    assert ("traffic back on slot 'blue'; removed 1.1.0 from 2 instances"
            in finished.stdout)
    assert router_log(tmp_path)[:2] == ["switch green", "switch blue"]
    assert active_slot(tmp_path) == "blue"
    assert versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None}
    store = StoreReader(state_url, tmp_path)
    second, first = store.history()
    assert first.outcome is DeploymentOutcome.RECOVERED
    assert second.outcome is DeploymentOutcome.ROLLED_BACK
    assert [(entry.operation, entry.instances) for entry in _changes(store, first.id)] == [
        ("deploy", ("green-1", "green-2")), ("switch", ("green-1", "green-2"))]


def test_state_recovery_sets_canary_weight_to_zero(tmp_path: Path, state_url: str) -> None:
    install_slots(tmp_path)
    document = pipeline(slot_target(), lease=LEASE, strategy="canary", traffic="router",
                        steps=[{"set_weight": 20}, {"pause": "10m"}])
    _kill_when(tmp_path, document, state_url,
               lambda: "set_weight green 20" in router_log(tmp_path),
               "the canary weight", settle=PAUSE_SETTLE)

    write_pipeline(tmp_path, pipeline(slot_target(FAIL_DEPLOY="green-2@1.1.0"), lease=LEASE,
                                      strategy="blue-green"))
    finished = run_to_end(tmp_path, "--state", state_url, "--lock-wait", "20s")

    assert finished.exit_code == ExitCode.FAILED, finished.stdout + finished.stderr
    assert ("weight of slot 'green' back to 0; removed 1.1.0 from 2 instances"
            in finished.stdout)
    # The canary sets the weight to 0 before it raises it; the recovery sets it back.
    assert router_log(tmp_path)[:3] == [
        "set_weight green 0", "set_weight green 20", "set_weight green 0"]
    assert active_slot(tmp_path) == "blue"
    assert versions(tmp_path, BLUE + GREEN) == {
        "blue-1": "1.0.0", "blue-2": "1.0.0", "green-1": None, "green-2": None}


def _stubborn_target(patterns: str) -> dict[str, Any]:
    """Return web_target() with deploys matching ``patterns`` that outlive shipline."""
    target = web_target()
    target["deploy"] = " ".join(["sh", shlex.quote(str(SCRIPTS / "stubborn.sh")), "deploy",
                                 ROOT, "{instance}", "{version}"])
    target["env"] = {**target["env"], "STUBBORN": patterns}
    return target


def _running(pid: int) -> bool:
    """Return whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_state_recovery_stops_orphaned_deploy(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    pid_file = tmp_path / ROOT / "web-1.pid"
    write_pipeline(tmp_path, pipeline(_stubborn_target("web-1@1.1.0"), lease=LEASE))
    with shipline_run(tmp_path, "--state", state_url) as process:
        wait_until(pid_file.exists, "the deploy of web-1", process)
        process.kill()
        process.communicate(timeout=20)
    orphan = int(pid_file.read_text())
    assert _running(orphan)
    [killed] = StoreReader(state_url, tmp_path).history()

    try:
        code, output = _second_run(tmp_path, state_url, version="1.2.0")
    finally:
        if _running(orphan):
            os.killpg(orphan, signal.SIGKILL)

    assert code == ExitCode.OK, output
    assert (f"shipline: environment 'production': deployment {killed.id}: stopped 1 "
            f"command that the stopped run left running (process groups {orphan})") in output
    assert output.index("stopped 1 command") < output.index("rolling back")
    assert not _running(orphan)
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.2.0")
    # The journal names the file where the killed run listed its commands. Recovery
    # deleted the file once it had stopped them.
    journal = StoreReader(state_url, tmp_path).journal(killed.id)
    [where] = lists_in(journal)
    assert where.host == current_host()
    assert not where.path.exists()
    assert [entry.done for entry in journal if entry.operation == PROCESS_OPERATION] == [True]


def test_state_recovery_sigterm_exits_130(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    pid_file = tmp_path / ROOT / "web-1.pid"
    term_file = tmp_path / "web-1.sigterm"
    target = _stubborn_target("web-1@1.1.0")
    target["env"]["STUBBORN_TERM"] = str(term_file)
    write_pipeline(tmp_path, pipeline(target, lease=LEASE))
    with shipline_run(tmp_path, "--state", state_url) as process:
        wait_until(pid_file.exists, "the deploy of web-1", process)
        process.kill()
        process.communicate(timeout=20)
    orphan = int(pid_file.read_text())

    # The orphan ignores SIGTERM, so the recovery waits for it: the signal arrives then.
    write_pipeline(tmp_path, pipeline(web_target(), lease=LEASE, version="1.2.0"))
    try:
        with shipline_run(tmp_path, "--state", state_url, "--lock-wait", "20s") as second:
            wait_until(term_file.exists, "the recovery's SIGTERM to the orphan", second)
            finished = interrupt(second)
    finally:
        if _running(orphan):
            os.killpg(orphan, signal.SIGKILL)

    assert finished.exit_code == ExitCode.INTERRUPTED
    assert finished.stderr.endswith("shipline: interrupted\n")
    [killed] = StoreReader(state_url, tmp_path).history()
    assert killed.outcome is None

