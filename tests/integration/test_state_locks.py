"""Environment locks and deployment records of ``shipline run``, on both state backends.

The runs are real subprocesses on release directories (see ``scripts/stateharness.py``).
A run is held inside a deploy by ``gated.sh`` until the test creates the gate file.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from integration.scripts.harness import shipline_run, wait_until, write_pipeline
from integration.scripts.stateharness import (
    GATE,
    ROOT,
    WEB,
    StoreReader,
    deploy_history,
    install,
    pipeline,
    versions,
    web_target,
)

from pipeline.exitcodes import ExitCode
from pipeline.orphans import PROCESS_OPERATION
from pipeline.state import DeploymentOutcome, RollbackOutcome


def _waiting(folder: Path, instance: str) -> bool:
    return (folder / ROOT / f"{instance}.waiting").exists()


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def test_state_two_runs_exactly_one_deploys(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target("web-1@1.1.0")))

    with shipline_run(tmp_path, "--state", state_url) as first, \
            shipline_run(tmp_path, "--state", state_url) as second:
        wait_until(lambda: first.poll() is not None or second.poll() is not None,
                   "one of the two runs to exit")
        loser, winner = (first, second) if first.poll() is not None else (second, first)
        code, _, stderr = _finish(loser)
        assert code == ExitCode.LOCKED, stderr
        assert "shipline: error: environment 'production' is locked by " in stderr
        assert f"/{winner.pid} since " in stderr

        wait_until(lambda: _waiting(tmp_path, "web-1"), "the first deploy to wait", winner)
        (tmp_path / GATE).touch()
        code, stdout, stderr = _finish(winner)

    assert code == ExitCode.OK, stdout + stderr
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.1.0")
    for instance in WEB:
        assert deploy_history(tmp_path, instance) == ["deployed 1.1.0"]

    store = StoreReader(state_url, tmp_path)
    [deployment] = store.history()
    assert deployment.version == "1.1.0"
    assert deployment.previous_version == "1.0.0"
    assert deployment.strategy == "rolling"
    assert deployment.outcome is DeploymentOutcome.SUCCEEDED
    assert store.lock() is None


def test_state_lock_wait_runs_after_holder(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target("web-1@1.1.0")))

    with shipline_run(tmp_path, "--state", state_url) as holder:
        wait_until(lambda: _waiting(tmp_path, "web-1"), "the first deploy to wait", holder)
        with shipline_run(tmp_path, "--state", state_url, "--lock-wait", "300ms") as short:
            code, _, stderr = _finish(short)
        assert code == ExitCode.LOCKED
        assert "environment 'production' is locked by " in stderr

        with shipline_run(tmp_path, "--state", state_url, "--lock-wait", "60s") as patient:
            (tmp_path / GATE).touch()
            holder_code, _, holder_err = _finish(holder)
            patient_code, patient_out, patient_err = _finish(patient)

    assert holder_code == ExitCode.OK, holder_err
    assert patient_code == ExitCode.OK, patient_out + patient_err
    assert "already ran it" in patient_out
    newest, oldest = StoreReader(state_url, tmp_path).history()
    assert oldest.finished is not None
    assert oldest.finished <= newest.started
    assert newest.previous_version == "1.1.0"


def test_state_run_records_ci_job(tmp_path: Path, shipline_cli) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target()))
    env = {
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": "shop/web",
        "GITHUB_RUN_ID": "42",
        "GITHUB_ACTOR": "alice",
        "GITHUB_SHA": "0123abcd",
    }
    result = shipline_cli("run", cwd=tmp_path, env=env)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    store = StoreReader(str(tmp_path / ".shipline" / "state.db"), tmp_path)
    [deployment] = store.history()
    assert deployment.actor == "alice"
    assert deployment.job_url == "https://github.example/shop/web/actions/runs/42"
    assert deployment.commit == "0123abcd"
    assert deployment.pipeline == "shop"


def test_state_failed_deploy_rolled_back(tmp_path: Path, shipline_cli) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target(FAIL_DEPLOY="web-3@1.1.0")))

    result = shipline_cli("run", cwd=tmp_path)

    assert result.exit_code == ExitCode.FAILED, result.stdout + result.stderr
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.0.0")
    store = StoreReader(str(tmp_path / ".shipline" / "state.db"), tmp_path)
    [deployment] = store.history()
    assert deployment.outcome is DeploymentOutcome.ROLLED_BACK
    [rollback] = store.rollbacks()
    assert rollback.deployment_id == deployment.id
    assert rollback.to_version == "1.0.0"
    assert rollback.outcome is RollbackOutcome.SUCCEEDED
    # The process entries of the started commands are left out: the changes are checked.
    journal = [entry for entry in store.journal(deployment.id)
               if entry.operation != PROCESS_OPERATION]
    assert [(entry.operation, entry.instances, entry.done) for entry in journal] == [
        ("deploy", ("web-1",), True),
        ("deploy", ("web-2",), True),
        ("deploy", ("web-3",), True),
    ]
    assert [entry.details["before"] for entry in journal] == ["1.0.0"] * 3
    assert store.lock() is None


def test_state_without_deploy_needs_no_store(tmp_path: Path, shipline_cli) -> None:
    write_pipeline(tmp_path, {
        "version": 1, "name": "shop",
        "stages": [{"name": "check", "steps": [
            {"gate": {"uses": "command", "command": "true"}}]}],
    })

    result = shipline_cli("run", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert not (tmp_path / ".shipline").exists()


def test_state_invalid_lock_wait_exits_invalid(tmp_path: Path, shipline_cli) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target()))

    result = shipline_cli("run", "--lock-wait", "soon", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.startswith(
        "shipline: error: argument --lock-wait: 'soon' is not a valid duration: ")


def test_state_forced_release_stops_run(tmp_path: Path, shipline_cli) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target("web-2@1.1.0"), lease="1s"))
    state = str(tmp_path / "state.db")

    with shipline_run(tmp_path, "--state", state) as run:
        wait_until(lambda: _waiting(tmp_path, "web-2"), "the deploy of web-2", run)
        released = shipline_cli("lock", "release", "production", "--force", "--reason",
                                "stuck", "--state", state, cwd=tmp_path)
        code, stdout, stderr = _finish(run)

    assert released.exit_code == ExitCode.OK, released.stderr
    assert code == ExitCode.INTERRUPTED, stdout + stderr
    assert "lost the lock on environment 'production' (nobody holds it now)" in stderr
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.0.0")
    [deployment] = StoreReader(state, tmp_path).history()
    assert deployment.outcome is DeploymentOutcome.INTERRUPTED


def test_state_lock_wait_stopped_by_sigterm(tmp_path: Path, state_url: str) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target("web-1@1.1.0")))
    log = tmp_path / "waiter.log"

    with shipline_run(tmp_path, "--state", state_url) as holder:
        wait_until(lambda: _waiting(tmp_path, "web-1"), "the first deploy to wait", holder)
        with log.open("w") as stderr:
            waiter = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "run", "--state", state_url,
                 "--lock-wait", "10m", "-vv"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
            try:
                wait_until(lambda: "retrying in" in log.read_text(),
                           "the second run to wait for the lock", waiter)
                waiter.send_signal(signal.SIGTERM)
                code = waiter.wait(timeout=20)
            finally:
                if waiter.poll() is None:
                    waiter.kill()
                    waiter.wait()
        (tmp_path / GATE).touch()
        holder_code, _, _ = _finish(holder)

    assert code == ExitCode.INTERRUPTED
    assert ("shipline: error: cancelled while waiting for the lock of 'production'"
            in log.read_text())
    assert holder_code == ExitCode.OK
    assert len(StoreReader(state_url, tmp_path).history()) == 1
