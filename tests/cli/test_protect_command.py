"""Protect rules through ``shipline run`` and ``shipline validate``."""

from __future__ import annotations

import pytest

from helpers import stepplugin
from pipeline.exitcodes import ExitCode

PIPELINE = """\
    version: 1
    name: shop
    groups:
      release: [alice]
    environments:
      staging: {target: {type: none}}
      production:
        target: {type: none}
        protect: {branches: [main], groups: [release]}
    stages:
      - name: staging
        environment: staging
        steps:
          - deploy: {strategy: record, version: "2.0"}
      - name: production
        environment: production
        steps:
          - deploy: {strategy: record, version: "2.0"}
    """

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push"}


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


def deploys() -> list[tuple[str, object]]:
    return [event for event in stepplugin.EVENTS if event[0] == "deploy"]


def test_run_denied_changes_nothing(shipline_cli, write_pipeline):
    path = write_pipeline(PIPELINE)
    env = {**GITHUB, "GITHUB_REF": "refs/heads/feature", "GITHUB_ACTOR": "mallory"}

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path), env=env)

    assert result.exit_code == ExitCode.BLOCKED
    assert deploys() == []
    assert result.stderr == (
        "shipline: error: the protect rules deny this run (2 denial(s)):\n"
        "  deploying to environment 'production' is denied by its protect rule 'branches': "
        "branch 'feature' is not allowed (allowed branches: main)\n"
        "  deploying to environment 'production' is denied by its protect rule 'groups': "
        "user 'mallory' is not allowed (allowed: group 'release')\n"
    )


def test_run_allowed_deploys(shipline_cli, write_pipeline):
    path = write_pipeline(PIPELINE)
    env = {**GITHUB, "GITHUB_REF": "refs/heads/main", "GITHUB_ACTOR": "alice"}

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path), env=env)

    assert result.exit_code == ExitCode.OK
    assert deploys() == [("deploy", "2.0"), ("deploy", "2.0")]


def test_run_outside_ci_denied(shipline_cli, write_pipeline):
    path = write_pipeline(PIPELINE)

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.BLOCKED
    assert "it needs GITHUB_ACTOR under GitHub Actions, or GITLAB_USER_LOGIN under GitLab CI" \
        in result.stderr
    assert deploys() == []


def test_validate_unknown_group(shipline_cli, write_pipeline):
    path = write_pipeline(PIPELINE.replace("groups: [release]}", "groups: [releese]}"))

    result = shipline_cli("validate", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:9:42: environments.production.protect.groups[0]: unknown group 'releese' "
        "(did you mean 'release'?)\n"
    )


def test_validate_protect_unknown_key(shipline_cli, write_pipeline):
    path = write_pipeline(PIPELINE.replace("groups: [release]}", "users: [alice]}"))

    result = shipline_cli("validate", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert "environments.production.protect: unknown key 'users'" in result.stderr


def test_validate_group_without_groups_key(shipline_cli, write_pipeline):
    text = PIPELINE.replace("    groups:\n      release: [alice]\n", "")
    path = write_pipeline(text)

    result = shipline_cli("validate", "-p", "helpers.stepplugin", str(path))

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"{path}:7:42: environments.production.protect.groups[0]: unknown group 'release' "
        "(define it under 'groups:')\n"
    )


def test_run_without_rules_reads_no_event_file(shipline_cli, write_pipeline, tmp_path):
    rules = "        protect: {branches: [main], groups: [release]}\n"
    path = write_pipeline(PIPELINE.replace(rules, ""))
    env = {**GITHUB, "GITHUB_EVENT_NAME": "pull_request",
           "GITHUB_EVENT_PATH": str(tmp_path / "absent.json")}

    result = shipline_cli("run", "-p", "helpers.stepplugin", str(path), env=env)

    assert result.exit_code == ExitCode.OK
    assert result.stderr == ""
