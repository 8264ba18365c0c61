"""``shipline lock status|release``, on an SQLite store with locks taken by the test."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipeline.cienv import detect
from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import Lock, default_owner
from pipeline.state.errors import format_time
from pipeline.state.sqlite import SqliteStore

OWNER = "https://ci.example/jobs/7"


def _lock(path: Path, age: float) -> Lock:
    """Take the lock of production with a 60 s lease, as if ``age`` seconds ago."""
    with SqliteStore(path, FakeClock(start=time.time() - age)) as store:
        return store.acquire_lock("production", OWNER, 60.0)


def _cli(shipline_cli, tmp_path: Path, *args: str):
    return shipline_cli("lock", *args, "--state", str(tmp_path / "state.db"), cwd=tmp_path)


def test_lock_status_held(shipline_cli, tmp_path: Path) -> None:
    lock = _lock(tmp_path / "state.db", age=5)

    result = _cli(shipline_cli, tmp_path, "status", "production")

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == (
        f"environment 'production' is locked by {OWNER} since {format_time(lock.acquired)} "
        f"(last heartbeat {format_time(lock.heartbeat)}, lease expires "
        f"{format_time(lock.expires)} unless renewed)\n"
    )


def test_lock_status_not_locked(shipline_cli, tmp_path: Path) -> None:
    SqliteStore(tmp_path / "state.db", FakeClock()).close()

    result = _cli(shipline_cli, tmp_path, "status", "production")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "environment 'production' is not locked\n"


def test_lock_status_expired(shipline_cli, tmp_path: Path) -> None:
    lock = _lock(tmp_path / "state.db", age=3600)

    result = _cli(shipline_cli, tmp_path, "status", "production")

    assert result.stdout == (
        f"environment 'production': the lock of {OWNER} expired at "
        f"{format_time(lock.expires)}; the next run takes it over\n"
    )


def test_lock_release_live_without_force(shipline_cli, tmp_path: Path) -> None:
    lock = _lock(tmp_path / "state.db", age=5)

    result = _cli(shipline_cli, tmp_path, "release", "production")

    assert result.exit_code == ExitCode.LOCKED
    assert result.stderr == (
        f"shipline: error: environment 'production' is locked by {OWNER} since "
        f"{format_time(lock.acquired)} and its lease expires {format_time(lock.expires)}: "
        "if that run is gone, use 'shipline lock release production --force --reason TEXT'\n"
    )
    with SqliteStore(tmp_path / "state.db", FakeClock()) as store:
        assert store.lock_status("production") == lock


def test_lock_release_force_records_reason(shipline_cli, tmp_path: Path) -> None:
    lock = _lock(tmp_path / "state.db", age=5)

    result = shipline_cli("lock", "release", "production", "--force", "--reason",
                          "runner lost", "--state", str(tmp_path / "state.db"),
                          cwd=tmp_path, env={"GITLAB_USER_LOGIN": "bob",
                                             "CI_JOB_URL": "https://gitlab.example/jobs/9"})

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == (
        f"released the lock of environment 'production' held by {OWNER} since "
        f"{format_time(lock.acquired)} (recorded: released by https://gitlab.example/jobs/9: "
        "runner lost)\n"
    )
    with SqliteStore(tmp_path / "state.db", FakeClock()) as store:
        assert store.lock_status("production") is None
        [forced] = store.forced_releases("production")
    assert forced.owner == OWNER
    assert forced.released_by == "https://gitlab.example/jobs/9"
    assert forced.reason == "runner lost"


def test_lock_release_force_needs_reason(shipline_cli, tmp_path: Path) -> None:
    _lock(tmp_path / "state.db", age=5)

    result = _cli(shipline_cli, tmp_path, "release", "production", "--force")

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == ("shipline: error: lock release --force needs --reason TEXT, "
                             "which is recorded with who released the lock\n")


def test_lock_release_expired(shipline_cli, tmp_path: Path) -> None:
    _lock(tmp_path / "state.db", age=3600)

    result = _cli(shipline_cli, tmp_path, "release", "production")

    assert result.exit_code == ExitCode.OK, result.stderr
    assert "(recorded: released by " in result.stdout
    assert result.stdout.endswith(": its lease had expired)\n")
    assert result.stderr == (f"shipline: WARNING: lock of production held by {OWNER} was "
                             f"released by {default_owner(detect())}: its lease had expired\n")


def test_lock_release_not_locked(shipline_cli, tmp_path: Path) -> None:
    SqliteStore(tmp_path / "state.db", FakeClock()).close()

    result = _cli(shipline_cli, tmp_path, "release", "production")

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "environment 'production' is not locked: nothing to release\n"


def test_lock_then_run_exits_locked(shipline_cli, tmp_path: Path, write_pipeline) -> None:
    lock = _lock(tmp_path / "state.db", age=5)
    write_pipeline("""\
        version: 1
        name: shop
        environments:
          production:
            target: {type: command, instances: [web-1], deploy: "true"}
        stages:
          - name: release
            environment: production
            steps:
              - deploy: {version: "1.1.0", strategy: rolling, health: false}
        """)

    result = shipline_cli("run", "--state", str(tmp_path / "state.db"), cwd=tmp_path)

    assert result.exit_code == ExitCode.LOCKED
    assert result.stderr == (
        f"shipline: error: environment 'production' is locked by {OWNER} since "
        f"{format_time(lock.acquired)} (lease expires {format_time(lock.expires)} unless "
        "renewed): wait with --lock-wait, or run 'shipline lock release production --force "
        "--reason TEXT' if that run is gone\n"
    )
    assert result.stdout == ""


def test_lock_locked_error_as_json(shipline_cli, tmp_path: Path, write_pipeline) -> None:
    _lock(tmp_path / "state.db", age=5)
    write_pipeline("""\
        version: 1
        name: shop
        environments:
          production:
            target: {type: command, instances: [web-1], deploy: "true"}
        stages:
          - name: release
            environment: production
            steps:
              - deploy: {version: "1.1.0", strategy: rolling, health: false}
        """)

    result = shipline_cli("run", "--log-format", "json", "--state", str(tmp_path / "state.db"),
                          cwd=tmp_path)
    [entry] = [json.loads(line) for line in result.stderr.splitlines()]

    assert result.exit_code == ExitCode.LOCKED
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "shipline"
    assert entry["message"].startswith(
        "shipline: error: environment 'production' is locked by ")


def test_lock_missing_store_creates_nothing(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "no-such-dir" / "state.db"

    for action in ("status", "release"):
        result = shipline_cli("lock", action, "production", "--state", str(state),
                              cwd=tmp_path)

        assert result.exit_code == ExitCode.OK, result.stderr
        assert result.stdout == (f"environment 'production' is not locked: there is no "
                                 f"state store at {state}\n")
    assert list(tmp_path.iterdir()) == []
