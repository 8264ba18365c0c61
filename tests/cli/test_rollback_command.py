"""``shipline rollback`` on release directories, after real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from integration.scripts.harness import write_pipeline
from integration.scripts.stateharness import (
    WEB,
    StoreReader,
    install,
    pipeline,
    versions,
    web_target,
)

from pipeline.exitcodes import ExitCode
from pipeline.state import DeploymentOutcome, RollbackOutcome


def _deploy(shipline_cli, folder: Path, version: str, **deploy: Any) -> None:
    write_pipeline(folder, pipeline(web_target(), version, **deploy))
    result = shipline_cli("run", cwd=folder)
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr


def _store(folder: Path) -> StoreReader:
    return StoreReader(str(folder / ".shipline" / "state.db"), folder)


@pytest.fixture
def deployed_twice(shipline_cli, tmp_path: Path) -> Path:
    """Release directories that went from 1.0.0 to 1.1.0, then to 1.2.0."""
    install(tmp_path, WEB, "1.0.0")
    _deploy(shipline_cli, tmp_path, "1.1.0")
    _deploy(shipline_cli, tmp_path, "1.2.0", batch="50%")
    return tmp_path


def test_rollback_to_previous_version(shipline_cli, deployed_twice: Path) -> None:
    result = shipline_cli("rollback", "production", cwd=deployed_twice)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert "PASSED   rollback to 1.1.0 (" in result.stdout
    assert "1.1.0 deployed to 4 of 4 instances in 2 batches" in result.stdout
    assert versions(deployed_twice) == dict.fromkeys(WEB, "1.1.0")
    store = _store(deployed_twice)
    newest = store.history()[0]
    assert (newest.version, newest.previous_version) == ("1.1.0", "1.2.0")
    assert newest.outcome is DeploymentOutcome.SUCCEEDED
    [rollback] = store.rollbacks()
    assert (rollback.from_version, rollback.to_version) == ("1.2.0", "1.1.0")
    assert rollback.reason == "shipline rollback"
    assert rollback.fast is False
    assert rollback.outcome is RollbackOutcome.SUCCEEDED


def test_rollback_fast_to_version(shipline_cli, deployed_twice: Path) -> None:
    result = shipline_cli("rollback", "production", "--to", "1.0.0", "--fast", "--reason",
                          "errors after release", cwd=deployed_twice)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert "PASSED   fast rollback to 1.0.0 (" in result.stdout
    assert "1.0.0 deployed to 4 of 4 instances in 1 batch" in result.stdout
    assert versions(deployed_twice) == dict.fromkeys(WEB, "1.0.0")
    [rollback] = _store(deployed_twice).rollbacks()
    assert rollback.fast is True
    assert rollback.reason == "errors after release"


def test_rollback_failure_restores_current(shipline_cli, deployed_twice: Path) -> None:
    write_pipeline(deployed_twice, pipeline(web_target(FAIL_DEPLOY="web-3@1.1.0"), "1.2.0",
                                            batch="50%"))

    result = shipline_cli("rollback", "production", cwd=deployed_twice)

    assert result.exit_code == ExitCode.FAILED, result.stdout + result.stderr
    assert versions(deployed_twice) == dict.fromkeys(WEB, "1.2.0")
    store = _store(deployed_twice)
    failed = store.history()[0]
    assert failed.outcome is DeploymentOutcome.ROLLED_BACK
    undo, manual = store.rollbacks()
    assert (manual.deployment_id, manual.outcome) == (None, RollbackOutcome.FAILED)
    assert (undo.deployment_id, undo.outcome) == (failed.id, RollbackOutcome.SUCCEEDED)


def test_rollback_without_earlier_version(shipline_cli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    _deploy(shipline_cli, tmp_path, "1.1.0")

    result = shipline_cli("rollback", "production", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: the state store records no successful version of environment "
        "'production' before 1.1.0: give the version with --to VERSION\n"
    )
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.1.0")


def test_rollback_unknown_environment(shipline_cli, deployed_twice: Path) -> None:
    result = shipline_cli("rollback", "staging", cwd=deployed_twice)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == ("shipline: error: environment 'staging' is not defined in "
                             "shipline.yml (defined: production)\n")


def test_rollback_twice_returns_forward(shipline_cli, deployed_twice: Path) -> None:
    first = shipline_cli("rollback", "production", cwd=deployed_twice)
    second = shipline_cli("rollback", "production", cwd=deployed_twice)

    assert first.exit_code == ExitCode.OK, first.stdout + first.stderr
    assert second.exit_code == ExitCode.OK, second.stdout + second.stderr
    assert "PASSED   rollback to 1.2.0 (" in second.stdout
    assert versions(deployed_twice) == dict.fromkeys(WEB, "1.2.0")


def test_rollback_to_unknown_version_rejected(shipline_cli, deployed_twice: Path) -> None:
    result = shipline_cli("rollback", "production", "--to", "1.1.9", "--fast",
                          cwd=deployed_twice)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --to: the state store records no deployment of version '1.1.9' "
        "to environment 'production' (among the newest 1000 deployments): check the "
        "version, or add --force to deploy it anyway\n")
    assert versions(deployed_twice) == dict.fromkeys(WEB, "1.2.0")
    assert _store(deployed_twice).rollbacks() == []


def test_rollback_to_unknown_version_forced(shipline_cli, deployed_twice: Path) -> None:
    result = shipline_cli("rollback", "production", "--to", "1.1.9", "--force", "--fast",
                          cwd=deployed_twice)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert versions(deployed_twice) == dict.fromkeys(WEB, "1.1.9")
