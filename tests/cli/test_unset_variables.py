"""Commands that do not deploy (history, status, lock, rollback) with deploy-time
variables unset."""

from __future__ import annotations

from pathlib import Path

from integration.scripts.harness import write_pipeline
from integration.scripts.stateharness import WEB, install, pipeline, versions, web_target

from pipeline.exitcodes import ExitCode


def _deploy_twice(shipline_cli, folder: Path) -> dict:
    """Deploy 1.1.0 then 1.2.0 with ``version: ${V}``; return the pipeline document."""
    document = pipeline(web_target(), "${V}")
    write_pipeline(folder, document)
    for version in ("1.1.0", "1.2.0"):
        result = shipline_cli("run", cwd=folder, env={"V": version})
        assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    return document


def test_unset_variable_history_status_lock(shipline_cli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    _deploy_twice(shipline_cli, tmp_path)

    history = shipline_cli("history", "production", cwd=tmp_path)
    status = shipline_cli("status", cwd=tmp_path)
    lock = shipline_cli("lock", "status", "production", cwd=tmp_path)

    assert history.exit_code == ExitCode.OK, history.stderr
    assert [line.split()[3] for line in history.stdout.splitlines()[1:]] == ["1.2.0", "1.1.0"]
    assert status.exit_code == ExitCode.OK, status.stderr
    assert "  recorded version: 1.2.0" in status.stdout.splitlines()
    assert lock.exit_code == ExitCode.OK, lock.stderr
    assert lock.stdout == "environment 'production' is not locked\n"


def test_unset_variable_rollback(shipline_cli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    _deploy_twice(shipline_cli, tmp_path)

    result = shipline_cli("rollback", "production", "--fast", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert versions(tmp_path) == dict.fromkeys(WEB, "1.1.0")


def test_unset_variable_in_state_rejected(shipline_cli, tmp_path: Path) -> None:
    document = pipeline(web_target(), "${V}")
    document["state"]["path"] = "${STATE_DIR}/state.db"
    write_pipeline(tmp_path, document)

    result = shipline_cli("history", "production", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert "state.path: undefined variable 'STATE_DIR'" in result.stderr
    assert "'V'" not in result.stderr


def test_unset_variable_in_target_rejected_by_status(shipline_cli, tmp_path: Path) -> None:
    document = pipeline(web_target(), "${V}")
    document["environments"]["production"]["target"]["env"]["HOST"] = "${DEPLOY_HOST}"
    write_pipeline(tmp_path, document)

    result = shipline_cli("status", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert ("environments.production.target.env.HOST: undefined variable 'DEPLOY_HOST'"
            in result.stderr)
    assert "'V'" not in result.stderr


def test_undefined_environment_rejected(shipline_cli, tmp_path: Path) -> None:
    write_pipeline(tmp_path, pipeline(web_target(), "1.1.0"))
    message = ("shipline: error: environment 'nosuch' is not defined in shipline.yml "
               "(defined: production)\n")

    for command in (["history", "nosuch"], ["lock", "status", "nosuch"], ["status", "nosuch"]):
        result = shipline_cli(*command, cwd=tmp_path)

        assert result.exit_code == ExitCode.INVALID, command
        assert result.stderr == message, command
    assert not (tmp_path / ".shipline").exists()


def test_missing_pipeline_file_names_option(shipline_cli, tmp_path: Path) -> None:
    for command in (["history", "production"], ["status"], ["rollback", "production"]):
        result = shipline_cli(*command, cwd=tmp_path)

        assert result.exit_code == ExitCode.INVALID, command
        assert result.stderr == (
            f"shipline: error: no pipeline file found: neither {tmp_path / 'shipline.yml'} "
            f"nor {tmp_path / 'shipline.yaml'} exists; create one or pass the pipeline file "
            f"with -f FILE\n"), command
