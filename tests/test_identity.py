"""pipeline.identity: the ref, actor, event and fork status of a run, from CI variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.identity import read_identity

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "GITHUB_EVENT_NAME": "push"}
GITLAB = {"GITLAB_CI": "true", "GITLAB_USER_LOGIN": "jdoe", "CI_PIPELINE_SOURCE": "push"}


def pull_request_event(tmp_path: Path, head: Any, base: str = "acme/shop") -> dict[str, str]:
    """Write a pull_request event payload, shaped as GitHub's webhook documentation shows."""
    payload = {
        "action": "opened",
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"ref": "feature", "repo": head},
            "base": {"ref": "main", "repo": {"full_name": base, "fork": False}},
        },
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return {**GITHUB, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path),
            "GITHUB_REF": "refs/pull/7/merge"}


def test_identity_outside_ci_is_unknown() -> None:
    identity = read_identity({"GITHUB_ACTOR": "octocat", "CI_COMMIT_BRANCH": "main"})

    assert identity.system is None
    assert identity.actor is None
    assert identity.ref_name is None
    assert identity.from_fork is None


def test_identity_github_branch() -> None:
    identity = read_identity({**GITHUB, "GITHUB_REF": "refs/heads/release/1.4",
                              "GITHUB_REF_PROTECTED": "true"})

    assert identity.system == "github"
    assert identity.ref_type == "branch"
    assert identity.ref_name == "release/1.4"
    assert identity.actor == "octocat"
    assert identity.ref_protected is True
    assert identity.event == "push"
    assert identity.from_fork is False


def test_identity_github_tag_unprotected() -> None:
    identity = read_identity({**GITHUB, "GITHUB_REF": "refs/tags/v1.4.0",
                              "GITHUB_REF_PROTECTED": "false"})

    assert identity.ref_type == "tag"
    assert identity.ref_name == "v1.4.0"
    assert identity.ref_protected is False


def test_identity_github_pull_request_ref_is_other(tmp_path: Path) -> None:
    env = pull_request_event(tmp_path, {"full_name": "acme/shop", "fork": False})

    identity = read_identity(env)

    assert identity.ref_type == "other"
    assert identity.ref_name == "refs/pull/7/merge"
    assert identity.from_fork is False


def test_identity_github_pull_request_from_fork(tmp_path: Path) -> None:
    env = pull_request_event(tmp_path, {"full_name": "mallory/shop", "fork": True})

    assert read_identity(env).from_fork is True


def test_identity_github_fork_base_same_repo(tmp_path: Path) -> None:
    # The base repository is itself a fork, so the head repository's flag is true,
    # but the pull request comes from a branch of the same repository.
    env = pull_request_event(tmp_path, {"full_name": "me/shop", "fork": True}, base="me/shop")

    assert read_identity(env).from_fork is False


def test_identity_github_deleted_fork_counts_as_fork(tmp_path: Path) -> None:
    env = pull_request_event(tmp_path, None)

    assert read_identity(env).from_fork is True


def test_identity_github_fork_flag_without_names(tmp_path: Path) -> None:
    env = pull_request_event(tmp_path, {"fork": True}, base="acme/shop")

    assert read_identity(env).from_fork is True


def test_identity_github_event_file_missing(tmp_path: Path) -> None:
    env = {**GITHUB, "GITHUB_EVENT_NAME": "pull_request_target",
           "GITHUB_EVENT_PATH": str(tmp_path / "absent.json")}

    identity = read_identity(env)

    assert identity.from_fork is None
    assert identity.fork_problem == (
        f"cannot read the event file {tmp_path / 'absent.json'}: No such file or directory")


def test_identity_github_event_file_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text("{not json", encoding="utf-8")
    env = {**GITHUB, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(path)}

    identity = read_identity(env)

    assert identity.from_fork is None
    assert identity.fork_problem is not None
    assert identity.fork_problem.startswith(f"the event file {path} is not valid JSON: ")


def test_identity_github_event_path_unset() -> None:
    identity = read_identity({**GITHUB, "GITHUB_EVENT_NAME": "pull_request"})

    assert identity.from_fork is None
    assert identity.fork_problem == "GITHUB_EVENT_PATH is not set"


def test_identity_github_wins_over_gitlab() -> None:
    assert read_identity({**GITLAB, **GITHUB}).system == "github"


def test_identity_gitlab_branch() -> None:
    identity = read_identity({**GITLAB, "CI_COMMIT_BRANCH": "main",
                              "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_REF_PROTECTED": "true"})

    assert identity.system == "gitlab"
    assert identity.ref_type == "branch"
    assert identity.ref_name == "main"
    assert identity.actor == "jdoe"
    assert identity.ref_protected is True
    assert identity.from_fork is False


def test_identity_gitlab_tag() -> None:
    identity = read_identity({**GITLAB, "CI_COMMIT_TAG": "v2.0", "CI_COMMIT_REF_NAME": "v2.0"})

    assert identity.ref_type == "tag"
    assert identity.ref_name == "v2.0"


def test_identity_gitlab_merge_request_from_fork() -> None:
    identity = read_identity({
        **GITLAB, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_REF_NAME": "feature",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99", "CI_MERGE_REQUEST_PROJECT_ID": "12",
    })

    assert identity.ref_type == "other"
    assert identity.ref_name == "feature"
    assert identity.event == "merge_request_event"
    assert identity.from_fork is True


def test_identity_gitlab_merge_request_same_project() -> None:
    identity = read_identity({
        **GITLAB, "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "12", "CI_MERGE_REQUEST_PROJECT_ID": "12",
    })

    assert identity.from_fork is False


def test_identity_gitlab_merge_request_without_project_ids() -> None:
    identity = read_identity({**GITLAB, "CI_PIPELINE_SOURCE": "merge_request_event"})

    assert identity.from_fork is None
