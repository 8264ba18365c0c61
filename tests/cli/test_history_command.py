"""``shipline history``: deployments read from a store filled with a FakeClock."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import DeploymentOutcome
from pipeline.state.sqlite import SqliteStore


def _fill(path: Path) -> list[str]:
    """Record three deployments of production, a minute apart, and one of staging."""
    clock = FakeClock(start=1_800_000_000.0)
    ids = []
    with SqliteStore(path, clock) as store:
        for version, previous, outcome in (
            ("1.0.0", None, DeploymentOutcome.SUCCEEDED),
            ("1.1.0", "1.0.0", DeploymentOutcome.ROLLED_BACK),
            ("1.2.0", "1.0.0", None),
        ):
            deployment = store.start_deployment(
                pipeline="shop", environment="production", version=version,
                previous_version=previous, strategy="rolling", actor="alice",
                job_url="https://ci.example/jobs/7", commit="abc123")
            ids.append(deployment.id)
            clock.advance(30)
            if outcome is not None:
                store.finish_deployment(deployment.id, outcome)
            clock.advance(30)
        store.start_deployment(pipeline="shop", environment="staging", version="9.9.9",
                               previous_version=None, strategy="canary")
    return ids


def test_history_text_newest_first(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first, second, third = _fill(state)

    result = shipline_cli("history", "production", "--state", str(state), cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.splitlines() == [
        "started              id                                version  previous  strategy"
        "  outcome      actor  job",
        f"2027-01-15 08:02:00  {third}  1.2.0    1.0.0     rolling   unfinished   alice"
        "  https://ci.example/jobs/7",
        f"2027-01-15 08:01:00  {second}  1.1.0    1.0.0     rolling   rolled_back  alice"
        "  https://ci.example/jobs/7",
        f"2027-01-15 08:00:00  {first}  1.0.0    -         rolling   succeeded    alice"
        "  https://ci.example/jobs/7",
    ]


def test_history_limit_and_json(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _, _, third = _fill(state)

    result = shipline_cli("history", "production", "--limit", "1", "--format", "json",
                          "--state", str(state), cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout) == [{
        "id": third,
        "pipeline": "shop",
        "environment": "production",
        "version": "1.2.0",
        "previous_version": "1.0.0",
        "strategy": "rolling",
        "actor": "alice",
        "job_url": "https://ci.example/jobs/7",
        "commit": "abc123",
        "started": "2027-01-15T08:02:00+00:00",
        "finished": None,
        "outcome": None,
        "break_glass": None,
    }]


def _fill_journal(path: Path) -> str:
    """Record one unfinished deployment of production with three journal entries."""
    clock = FakeClock(start=1_800_000_000.0)
    with SqliteStore(path, clock) as store:
        deployment = store.start_deployment(
            pipeline="shop", environment="production", version="1.2.0",
            previous_version="1.1.0", strategy="rolling")
        first = store.append_journal(
            deployment.id, stage="deploy", step="deploy/1", operation="deploy",
            instances=("web-1", "web-2"), version="1.2.0",
            details={"before": "1.1.0", "slot": None})
        store.complete_journal(deployment.id, first.seq)
        clock.advance(5)
        store.append_journal(
            deployment.id, stage="deploy", step="deploy/1", operation="deploy",
            instances=("web-3", "web-4", "web-5", "web-6", "web-7"), version="1.2.0",
            details={"before": "1.1.0"})
        store.append_journal(deployment.id, stage="deploy", step="deploy/1",
                             operation="switch", instances=(), version=None)
    return deployment.id


def test_history_journal_text(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    deployment = _fill_journal(state)

    result = shipline_cli("history", "production", "--journal", "--state", str(state),
                          cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.splitlines()[2:] == [
        "",
        f"journal of deployment {deployment}:",
        "  seq  time                 step      operation  instances"
        "                       version  done  details",
        "  1    2027-01-15 08:00:00  deploy/1  deploy     web-1, web-2"
        "                    1.2.0    yes   before=1.1.0 slot=-",
        "  2    2027-01-15 08:00:05  deploy/1  deploy     web-3, web-4, web-5 and 2 more"
        "  1.2.0    no    before=1.1.0",
        "  3    2027-01-15 08:00:05  deploy/1  switch     -"
        "                               -        no    -",
    ]


def test_history_journal_json(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _fill_journal(state)

    result = shipline_cli("history", "production", "--journal", "--format", "json",
                          "--state", str(state), cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    [deployment] = json.loads(result.stdout)
    assert [entry["seq"] for entry in deployment["journal"]] == [1, 2, 3]
    assert deployment["journal"][0] == {
        "seq": 1, "time": "2027-01-15T08:00:00+00:00", "stage": "deploy",
        "step": "deploy/1", "operation": "deploy", "instances": ["web-1", "web-2"],
        "version": "1.2.0", "done": True, "details": {"before": "1.1.0", "slot": None},
    }
    assert deployment["journal"][2]["done"] is False


def test_history_json_without_journal_option(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _fill_journal(state)

    result = shipline_cli("history", "production", "--format", "json",
                          "--state", str(state), cwd=tmp_path)

    assert "journal" not in json.loads(result.stdout)[0]


def test_history_empty_environment(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _fill(state)

    result = shipline_cli("history", "qa", "--state", str(state), cwd=tmp_path)

    assert result.exit_code == ExitCode.OK
    assert result.stdout == "no deployments of environment 'qa' are recorded\n"


def test_history_invalid_limit(shipline_cli, tmp_path: Path) -> None:
    result = shipline_cli("history", "production", "--limit", "0",
                          "--state", str(tmp_path / "state.db"), cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: --limit: 0 is not valid: use 1 or more\n"


def test_history_state_from_pipeline_file(shipline_cli, tmp_path: Path, write_pipeline) -> None:
    write_pipeline("""\
        version: 1
        name: shop
        state: {path: records/state.db}
        stages:
          - name: check
            steps:
              - gate: {uses: command, command: "true"}
        """)
    (tmp_path / "records").mkdir()
    _fill(tmp_path / "records" / "state.db")

    result = shipline_cli("history", "staging", cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert "9.9.9" in result.stdout
    assert "unfinished" in result.stdout


def test_history_corrupt_store_exits_invalid(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"this is not a database" * 100)

    result = shipline_cli("history", "production", "--state", str(state), cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.startswith("shipline: error: ")
    assert state.read_bytes() == b"this is not a database" * 100


FROZEN = """\
version: 1
name: shop
environments:
  production:
    target:
      type: command
      deploy: "true"
      instances: [web-1]
    freeze:
      - name: always
        start: "2000-01-01T00:00:00Z"
        end: "2100-01-01T00:00:00Z"
stages:
  - name: release
    environment: production
    steps:
      - deploy: {version: "2.0.0", strategy: rolling, health: false}
"""


def test_history_shows_break_glass(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "shipline.yml").write_text(FROZEN, encoding="utf-8")
    state = str(tmp_path / "state.db")

    run = shipline_cli("run", "--break-glass", "fix the checkout outage", "--state", state,
                       cwd=tmp_path)
    table = shipline_cli("history", "production", "--state", state, cwd=tmp_path)
    data = shipline_cli("history", "production", "--format", "json", "--state", state,
                        cwd=tmp_path)

    assert run.exit_code == ExitCode.OK, run.stdout + run.stderr
    assert "succeeded (break glass)" in table.stdout.splitlines()[1]
    assert json.loads(data.stdout)[0]["break_glass"] == {
        "reason": "fix the checkout outage",
        "windows": [{"name": "always", "start": "2000-01-01T00:00:00+00:00",
                     "end": "2100-01-01T00:00:00+00:00"}],
    }


def test_history_no_break_glass_is_null(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "shipline.yml").write_text(FROZEN.replace("2100-", "2001-"), encoding="utf-8")
    state = str(tmp_path / "state.db")

    run = shipline_cli("run", "--state", state, cwd=tmp_path)
    data = shipline_cli("history", "production", "--format", "json", "--state", state,
                        cwd=tmp_path)

    assert run.exit_code == ExitCode.OK, run.stdout + run.stderr
    assert json.loads(data.stdout)[0]["break_glass"] is None


def test_history_freeze_block_is_blocked(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "shipline.yml").write_text(FROZEN, encoding="utf-8")
    state = str(tmp_path / "state.db")

    run = shipline_cli("run", "--state", state, cwd=tmp_path)
    data = shipline_cli("history", "production", "--format", "json", "--state", state,
                        cwd=tmp_path)

    assert run.exit_code == ExitCode.BLOCKED, run.stdout + run.stderr
    assert json.loads(data.stdout)[0]["outcome"] == "blocked"


def test_history_break_glass_names_as_text(shipline_cli, tmp_path: Path) -> None:
    """Stores written before the windows became JSON hold their names as plain text."""
    state = tmp_path / "state.db"
    with SqliteStore(state, FakeClock(start=1_800_000_000.0)) as store:
        deployment = store.start_deployment(
            pipeline="shop", environment="production", version="2.0.0",
            previous_version="1.0.0", strategy="rolling")
        store.append_journal(deployment.id, stage="release", step="release/1",
                             operation="break_glass", instances=[], version=None,
                             details={"reason": "outage", "windows": "night; release freeze"})
        store.finish_deployment(deployment.id, DeploymentOutcome.SUCCEEDED)

    data = shipline_cli("history", "production", "--format", "json", "--state", str(state),
                        cwd=tmp_path)

    assert data.exit_code == ExitCode.OK, data.stderr
    assert json.loads(data.stdout)[0]["break_glass"]["windows"] == [
        {"name": "night", "start": None, "end": None},
        {"name": "release freeze", "start": None, "end": None},
    ]


def test_break_glass_empty_reason_rejected(shipline_cli, tmp_path: Path) -> None:
    (tmp_path / "shipline.yml").write_text(FROZEN, encoding="utf-8")

    run = shipline_cli("run", "--break-glass", "", cwd=tmp_path)

    assert run.exit_code == ExitCode.INVALID
    assert run.stderr == (
        "shipline: error: argument --break-glass: the reason must not be empty: say why the "
        "deploy cannot wait, for example --break-glass \"hotfix for the checkout outage\" "
        "(see 'shipline run --help')\n"
    )


def test_history_missing_store_creates_nothing(shipline_cli, tmp_path: Path) -> None:
    state = tmp_path / "no-such-dir" / "x" / "state.db"

    text = shipline_cli("history", "production", "--state", str(state), cwd=tmp_path)
    data = shipline_cli("history", "production", "--state", str(state), "--format", "json",
                        cwd=tmp_path)

    assert text.exit_code == ExitCode.OK, text.stderr
    assert text.stdout == (f"no deployments of environment 'production' are recorded: "
                           f"there is no state store at {state}\n")
    assert data.exit_code == ExitCode.OK, data.stderr
    assert json.loads(data.stdout) == []
    assert list(tmp_path.iterdir()) == []
