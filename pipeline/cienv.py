"""The actor and the web page of the CI job that runs shipline, read from CI variables.

Supported: GitHub Actions (``GITHUB_ACTOR``; the run page built from
``GITHUB_SERVER_URL``, ``GITHUB_REPOSITORY`` and ``GITHUB_RUN_ID``) and GitLab CI
(``GITLAB_USER_LOGIN``, ``CI_JOB_URL``). Anywhere else both are unknown (None). The
variable names are those that GitHub's "Variables reference" and GitLab's "Predefined
CI/CD variables reference" document.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit


@dataclass(frozen=True)
class CiJob:
    """The CI system, the person or bot that started the job, and the job's web page."""

    #: ``github``, ``gitlab`` or None when no supported CI is detected.
    system: str | None = None
    actor: str | None = None
    job_url: str | None = None


def detect(environ: Mapping[str, str] | None = None) -> CiJob:
    """Read ``environ`` (default ``os.environ``) and describe the CI job running shipline.

    A URL variable that is not an http(s) URL is ignored, so a message never links to
    something else. GitHub wins when the variables of both systems are set.
    """
    env = os.environ if environ is None else environ
    github = _github(env)
    if github is not None:
        return github
    gitlab = _gitlab(env)
    if gitlab is not None:
        return gitlab
    return CiJob()


def _github(env: Mapping[str, str]) -> CiJob | None:
    server = _web_url(env.get("GITHUB_SERVER_URL", ""))
    repository = env.get("GITHUB_REPOSITORY", "").strip()
    run_id = env.get("GITHUB_RUN_ID", "").strip()
    actor = env.get("GITHUB_ACTOR", "").strip() or None
    if not (server and repository and run_id) and actor is None:
        return None

    job_url = None
    if server and repository and run_id.isdigit():
        job_url = f"{server.rstrip('/')}/{quote(repository)}/actions/runs/{run_id}"
    return CiJob("github", actor, job_url)


def _gitlab(env: Mapping[str, str]) -> CiJob | None:
    job_url = _web_url(env.get("CI_JOB_URL", ""))
    actor = env.get("GITLAB_USER_LOGIN", "").strip() or None
    if job_url is None and actor is None:
        return None
    return CiJob("gitlab", actor, job_url)


def _web_url(value: str) -> str | None:
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return value
