"""``shipline status`` on release directories, after real runs."""

from __future__ import annotations

import json
from pathlib import Path

from integration.scripts.harness import write_pipeline
from integration.scripts.stateharness import (
    WEB,
    install,
    install_slots,
    pipeline,
    slot_target,
    web_target,
)

from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state.sqlite import SqliteStore


def _deploy(shipline_cli, folder: Path, version: str, target: dict, **deploy) -> None:
    write_pipeline(folder, pipeline(target, version, **deploy))
    result = shipline_cli("run", cwd=folder)
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr


def test_status_shows_differing_instance(shipline_cli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.1.0")
    _deploy(shipline_cli, tmp_path, "1.2.0", web_target())
    (tmp_path / "servers" / "web-2" / "current").unlink()
    (tmp_path / "servers" / "web-2" / "current").symlink_to("releases/1.1.0")

    result = shipline_cli("status", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.splitlines() == [
        "environment production",
        "  recorded version: 1.2.0",
        "  lock: environment 'production' is not locked",
        "  instance  running  note",
        "  web-1     1.2.0",
        "  web-2     1.1.0    differs from the recorded version 1.2.0",
        "  web-3     1.2.0",
        "  web-4     1.2.0",
        "  1 serving instance(s) do not run the recorded version 1.2.0",
    ]


def test_status_unfinished_and_slots_json(shipline_cli, tmp_path: Path) -> None:
    install_slots(tmp_path)
    _deploy(shipline_cli, tmp_path, "1.1.0", slot_target(), strategy="blue-green",
            scale_down_delay=0)
    with SqliteStore(tmp_path / ".shipline" / "state.db", FakeClock()) as store:
        unfinished = store.start_deployment(
            pipeline="shop", environment="production", version="1.2.0",
            previous_version="1.1.0", strategy="blue-green",
            job_url="https://ci.example/jobs/8")

    result = shipline_cli("status", "production", "--format", "json", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    [status] = json.loads(result.stdout)
    assert status["recorded_version"] == "1.1.0"
    assert status["unfinished"] == [
        f"deployment {unfinished.id} of 1.2.0, started 2027-01-15 08:00:00 by "
        "https://ci.example/jobs/8, did not finish: the next run rolls it back, or "
        "continues it with --resume"
    ]
    assert status["instances"] == [
        {"instance": "blue-1", "slot": "blue", "serving": False, "running": None},
        {"instance": "blue-2", "slot": "blue", "serving": False, "running": None},
        {"instance": "green-1", "slot": "green", "serving": True, "running": "1.1.0"},
        {"instance": "green-2", "slot": "green", "serving": True, "running": "1.1.0"},
    ]
    assert status["target_error"] is None


def test_status_unknown_environment(shipline_cli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.0.0")
    write_pipeline(tmp_path, pipeline(web_target()))

    result = shipline_cli("status", "qa", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == ("shipline: error: environment 'qa' is not defined in "
                             "shipline.yml (defined: production)\n")


def test_status_missing_store_creates_nothing(shipline_cli, tmp_path: Path) -> None:
    install(tmp_path, WEB, "1.1.0")
    write_pipeline(tmp_path, pipeline(web_target(), "1.2.0"))

    result = shipline_cli("status", "--state", "typo/state.db", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "environment production",
        "  recorded version: no successful deployment recorded",
        f"  lock: environment 'production' is not locked: there is no state store at "
        f"{tmp_path / 'typo/state.db'}",
    ]
    assert not (tmp_path / "typo").exists()
    assert not (tmp_path / ".shipline").exists()
