"""pipeline.protect: protect rules against the facts of a run."""

from __future__ import annotations

from pipeline.identity import OUTSIDE_CI_SOURCES, RunIdentity, read_identity
from pipeline.protect import AccessDenied, Denial, check_environment

GROUPS = {"release": ("alice", "Bob")}


def github(**env: str) -> RunIdentity:
    base = {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice", "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/heads/main", "GITHUB_REF_PROTECTED": "true"}
    return read_identity({**base, **env})


def reasons(protect: dict[str, object], identity: RunIdentity) -> list[str]:
    return [str(denial) for denial in check_environment("production", protect, GROUPS, identity)]


def test_protect_empty_allows() -> None:
    assert reasons({}, RunIdentity(sources=OUTSIDE_CI_SOURCES)) == []


def test_protect_all_rules_allow() -> None:
    protect = {"branches": ["main"], "actors": ["carol"], "groups": ["release"],
               "protected_ref": True, "deny_events": ["fork", "schedule"]}

    assert reasons(protect, github()) == []


def test_protect_branch_glob_denies() -> None:
    assert reasons({"branches": ["main", "release/*"]}, github(GITHUB_REF="refs/heads/dev")) == [
        "deploying to environment 'production' is denied by its protect rule 'branches': "
        "branch 'dev' is not allowed (allowed branches: main, release/*)"
    ]


def test_protect_branch_glob_allows() -> None:
    assert reasons({"branches": ["release/*"]}, github(GITHUB_REF="refs/heads/release/2")) == []


def test_protect_tag_without_tags_rule_denies() -> None:
    assert reasons({"branches": ["main"]}, github(GITHUB_REF="refs/tags/v1")) == [
        "deploying to environment 'production' is denied by its protect rule 'branches': "
        "tag 'v1' is not allowed (allowed branches: main)"
    ]


def test_protect_tags_rule() -> None:
    protect = {"branches": ["main"], "tags": ["v*"]}

    assert reasons(protect, github(GITHUB_REF="refs/tags/v1")) == []
    assert reasons(protect, github(GITHUB_REF="refs/tags/nightly")) == [
        "deploying to environment 'production' is denied by its protect rule 'tags': "
        "tag 'nightly' is not allowed (allowed branches: main; tags: v*)"
    ]


def test_protect_pull_request_ref_denies() -> None:
    assert reasons({"tags": ["v*"]}, github(GITHUB_REF="refs/pull/7/merge")) == [
        "deploying to environment 'production' is denied by its protect rule 'tags': the ref "
        "'refs/pull/7/merge' is neither a branch nor a tag (allowed tags: v*)"
    ]


def test_protect_outside_ci_names_variables() -> None:
    identity = read_identity({})

    assert reasons({"branches": ["main"]}, identity) == [
        "deploying to environment 'production' is denied by its protect rule 'branches': "
        "the run's branch or tag is unknown; it needs GITHUB_REF under GitHub Actions, or "
        "CI_COMMIT_BRANCH or CI_COMMIT_TAG under GitLab CI, and this run is outside a "
        "supported CI (neither GITHUB_ACTIONS nor GITLAB_CI is 'true')"
    ]


def test_protect_gitlab_missing_actor_names_variable() -> None:
    identity = read_identity({"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "main"})

    assert reasons({"actors": ["alice"]}, identity) == [
        "deploying to environment 'production' is denied by its protect rule 'actors': the "
        "user who started the run is unknown; it needs GITLAB_USER_LOGIN, which this CI job "
        "does not set"
    ]


def test_protect_actor_not_listed() -> None:
    protect = {"actors": ["carol"], "groups": ["release"]}

    assert reasons(protect, github(GITHUB_ACTOR="mallory")) == [
        "deploying to environment 'production' is denied by its protect rule 'actors and "
        "groups': user 'mallory' is not allowed (allowed: 'carol', group 'release')"
    ]


def test_protect_group_member_case_insensitive() -> None:
    assert reasons({"groups": ["release"]}, github(GITHUB_ACTOR="bob")) == []
    assert reasons({"actors": ["Carol"]}, github(GITHUB_ACTOR="CAROL")) == []


def test_protect_protected_ref_false_denies() -> None:
    assert reasons({"protected_ref": True}, github(GITHUB_REF_PROTECTED="false")) == [
        "deploying to environment 'production' is denied by its protect rule 'protected_ref': "
        "the ref 'main' is not protected"
    ]


def test_protect_protected_ref_unknown_denies() -> None:
    identity = read_identity({"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "main"})

    assert reasons({"protected_ref": True}, identity) == [
        "deploying to environment 'production' is denied by its protect rule 'protected_ref': "
        "whether the ref is protected is unknown; it needs CI_COMMIT_REF_PROTECTED, which this "
        "CI job does not set"
    ]


def test_protect_denied_event() -> None:
    assert reasons({"deny_events": ["schedule"]}, github(GITHUB_EVENT_NAME="schedule")) == [
        "deploying to environment 'production' is denied by its protect rule 'deny_events': "
        "runs triggered by the event 'schedule' may not deploy"
    ]


def test_protect_fork_merge_request_denied() -> None:
    identity = read_identity({
        "GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99", "CI_MERGE_REQUEST_PROJECT_ID": "12",
    })

    assert reasons({"deny_events": ["fork"]}, identity) == [
        "deploying to environment 'production' is denied by its protect rule 'deny_events': "
        "runs for a pull or merge request from a fork may not deploy"
    ]


def test_protect_fork_unknown_event_file_denied() -> None:
    identity = github(GITHUB_EVENT_NAME="pull_request")

    assert reasons({"deny_events": ["fork"]}, identity) == [
        "deploying to environment 'production' is denied by its protect rule 'deny_events': "
        "cannot tell whether the run is for a pull or merge request from a fork: "
        "GITHUB_EVENT_PATH is not set"
    ]


def test_protect_several_rules_deny_together() -> None:
    identity = github(GITHUB_REF="refs/heads/dev", GITHUB_ACTOR="mallory")

    denials = check_environment("production", {"branches": ["main"], "actors": ["alice"]},
                                GROUPS, identity)

    assert [denial.rule for denial in denials] == ["branches", "actors"]


def test_access_denied_message_lists_denials() -> None:
    error = AccessDenied([Denial("prod", "branches", "no"), Denial("prod", "actors", "nope")])

    assert str(error) == (
        "the protect rules deny this run (2 denial(s)):\n"
        "  deploying to environment 'prod' is denied by its protect rule 'branches': no\n"
        "  deploying to environment 'prod' is denied by its protect rule 'actors': nope"
    )
    assert error.exit_code == 3
