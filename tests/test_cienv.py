"""pipeline.cienv: the CI actor and job URL from GitHub's and GitLab's variables."""

from __future__ import annotations

import pytest

from pipeline.cienv import CiJob, detect

GITHUB = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/shop",
    "GITHUB_RUN_ID": "1234567890",
    "GITHUB_ACTOR": "octocat",
}
GITLAB = {
    "CI_JOB_URL": "https://gitlab.example.com/acme/shop/-/jobs/42",
    "GITLAB_USER_LOGIN": "jdoe",
}


def test_detect_github() -> None:
    assert detect(GITHUB) == CiJob(
        "github", "octocat", "https://github.com/acme/shop/actions/runs/1234567890")


def test_detect_github_enterprise_trailing_slash() -> None:
    job = detect({**GITHUB, "GITHUB_SERVER_URL": "https://git.example.com/"})

    assert job.job_url == "https://git.example.com/acme/shop/actions/runs/1234567890"


def test_detect_gitlab() -> None:
    assert detect(GITLAB) == CiJob(
        "gitlab", "jdoe", "https://gitlab.example.com/acme/shop/-/jobs/42")


def test_detect_github_wins_over_gitlab() -> None:
    assert detect({**GITLAB, **GITHUB}).system == "github"


def test_detect_no_ci() -> None:
    assert detect({"HOME": "/root"}) == CiJob()


def test_detect_actor_without_url() -> None:
    assert detect({"GITHUB_ACTOR": "octocat"}) == CiJob("github", "octocat", None)


@pytest.mark.parametrize("server", ["javascript:alert(1)", "file:///etc", "github.com", ""])
def test_detect_github_rejects_non_web_server(server: str) -> None:
    job = detect({**GITHUB, "GITHUB_SERVER_URL": server})

    assert job == CiJob("github", "octocat", None)


def test_detect_github_rejects_non_numeric_run_id() -> None:
    job = detect({**GITHUB, "GITHUB_RUN_ID": "12/../../settings"})

    assert job.job_url is None


def test_detect_gitlab_rejects_non_web_url() -> None:
    job = detect({**GITLAB, "CI_JOB_URL": "javascript:alert(1)"})

    assert job == CiJob("gitlab", "jdoe", None)


def test_detect_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITHUB_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in GITLAB.items():
        monkeypatch.setenv(name, value)

    assert detect().actor == "jdoe"
