"""The CI facts of a run (its user, ref and event) read from the CI's variables.

The facts that ``environments.<name>.protect`` rules check come from here. Supported:
GitHub Actions (when ``GITHUB_ACTIONS`` is ``true``) and GitLab CI (when ``GITLAB_CI`` is
``true``), with the variable names of GitHub's "Variables reference" and GitLab's
"Predefined CI/CD variables reference". Outside those, every fact is unknown.

A fact that the CI does not provide is ``None``, never a guess, so a rule that needs it
denies the deploy and can name the variable it is missing (:attr:`RunIdentity.sources`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("shipline")

#: GitHub events whose payload describes a pull request, with ``pull_request.head.repo``.
GITHUB_PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)

#: Event files larger than this many bytes are not read: GitHub's payloads are far smaller.
MAX_EVENT_FILE_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class RunIdentity:
    """The CI facts of one run; ``None`` where the CI did not provide a fact."""

    #: ``github``, ``gitlab``, or ``None`` outside a supported CI.
    system: str | None = None
    #: ``branch``, ``tag``, or ``other`` for refs such as ``refs/pull/12/merge``.
    ref_type: str | None = None
    #: The branch or tag name, or the full ref when ``ref_type`` is ``other``.
    ref_name: str | None = None
    actor: str | None = None
    #: Whether the CI reports the ref as protected.
    ref_protected: bool | None = None
    #: The event as the CI names it: ``GITHUB_EVENT_NAME`` or ``CI_PIPELINE_SOURCE``.
    event: str | None = None
    #: Whether the run is for a pull or merge request from another repository.
    from_fork: bool | None = None
    #: Why ``from_fork`` is unknown in a pull request run, such as an unreadable event file.
    fork_problem: str | None = None
    #: Per fact (``ref``, ``actor``, ``protected``, ``event``, ``fork``): the CI variables
    #: that provide it, for messages about a missing fact.
    sources: Mapping[str, str] = field(default_factory=dict)


#: The variables behind each fact, per CI, for messages.
_GITHUB_SOURCES = {
    "ref": "GITHUB_REF",
    "actor": "GITHUB_ACTOR",
    "protected": "GITHUB_REF_PROTECTED",
    "event": "GITHUB_EVENT_NAME",
    "fork": "GITHUB_EVENT_NAME and the event file at GITHUB_EVENT_PATH",
}
_GITLAB_SOURCES = {
    "ref": "CI_COMMIT_BRANCH or CI_COMMIT_TAG",
    "actor": "GITLAB_USER_LOGIN",
    "protected": "CI_COMMIT_REF_PROTECTED",
    "event": "CI_PIPELINE_SOURCE",
    "fork": "CI_PIPELINE_SOURCE, CI_MERGE_REQUEST_SOURCE_PROJECT_ID and "
    "CI_MERGE_REQUEST_PROJECT_ID",
}
#: Outside CI: both systems' variables, so that a message names what either would need.
OUTSIDE_CI_SOURCES = {
    fact: f"{_GITHUB_SOURCES[fact]} under GitHub Actions, or {_GITLAB_SOURCES[fact]} "
    f"under GitLab CI"
    for fact in _GITHUB_SOURCES
}


def read_identity(environ: Mapping[str, str] | None = None) -> RunIdentity:
    """Read the facts of this run from ``environ`` (default ``os.environ``).

    GitHub wins when both ``GITHUB_ACTIONS`` and ``GITLAB_CI`` are ``true``. Reading the
    GitHub event file may log a warning, and never raises: a problem with it leaves
    ``from_fork`` unknown and sets ``fork_problem``.
    """
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true":
        return _github(env)
    if env.get("GITLAB_CI") == "true":
        return _gitlab(env)
    return RunIdentity(sources=OUTSIDE_CI_SOURCES)


def _github(env: Mapping[str, str]) -> RunIdentity:
    ref_type, ref_name = _github_ref(env)
    event = _value(env, "GITHUB_EVENT_NAME")
    from_fork: bool | None = False
    problem = None
    if event in GITHUB_PULL_REQUEST_EVENTS:
        from_fork, problem = _github_fork(env)
    elif event is None:
        from_fork = None

    return RunIdentity(
        system="github",
        ref_type=ref_type,
        ref_name=ref_name,
        actor=_value(env, "GITHUB_ACTOR"),
        ref_protected=_flag(env, "GITHUB_REF_PROTECTED"),
        event=event,
        from_fork=from_fork,
        fork_problem=problem,
        sources=_GITHUB_SOURCES,
    )


def _github_ref(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Return (type, name) from ``GITHUB_REF``; a pull request ref is of type ``other``."""
    ref = _value(env, "GITHUB_REF")
    if ref is None:
        return None, None
    if ref.startswith("refs/heads/"):
        return "branch", ref.removeprefix("refs/heads/")
    if ref.startswith("refs/tags/"):
        return "tag", ref.removeprefix("refs/tags/")
    return "other", ref


def _github_fork(env: Mapping[str, str]) -> tuple[bool | None, str | None]:
    """Tell from the event file whether the pull request comes from another repository.

    The head and base repositories are compared by full name. The head repository's
    ``fork`` flag alone would also be true for a branch of a repository that is itself
    a fork. A missing head repository (a deleted fork) counts as a fork.
    """
    path_text = _value(env, "GITHUB_EVENT_PATH")
    if path_text is None:
        return None, "GITHUB_EVENT_PATH is not set"

    payload, problem = _read_event_file(Path(path_text))
    if payload is None:
        logger.warning("cannot tell whether the pull request comes from a fork: %s", problem)
        return None, problem

    pull_request = payload.get("pull_request")
    if not isinstance(pull_request, dict):
        return None, f"the event file {path_text} has no 'pull_request' object"

    head_repo = _nested(pull_request, "head", "repo")
    base_repo = _nested(pull_request, "base", "repo")
    if head_repo is None:
        return True, None
    head_name = head_repo.get("full_name")
    base_name = base_repo.get("full_name") if base_repo is not None else None
    if isinstance(head_name, str) and isinstance(base_name, str):
        return head_name != base_name, None
    fork_flag = head_repo.get("fork")
    if isinstance(fork_flag, bool):
        return fork_flag, None
    return None, f"the event file {path_text} names neither the head repository nor its fork flag"


def _read_event_file(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        size = path.stat().st_size
        if size > MAX_EVENT_FILE_BYTES:
            return None, f"the event file {path} is larger than {MAX_EVENT_FILE_BYTES} bytes"
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        return None, f"cannot read the event file {path}: {error.strerror or error}"
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"the event file {path} is not valid JSON: {error}"
    if not isinstance(loaded, dict):
        return None, f"the event file {path} does not contain a JSON object"
    return loaded, ""


def _nested(data: dict[str, Any], *keys: str) -> dict[str, Any] | None:
    value: Any = data
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else None


def _gitlab(env: Mapping[str, str]) -> RunIdentity:
    tag = _value(env, "CI_COMMIT_TAG")
    branch = _value(env, "CI_COMMIT_BRANCH")
    ref_type, ref_name = (None, None)
    if tag is not None:
        ref_type, ref_name = "tag", tag
    elif branch is not None:
        ref_type, ref_name = "branch", branch
    elif _value(env, "CI_COMMIT_REF_NAME") is not None:
        # A merge request pipeline: the ref is the merge request, not a branch.
        ref_type, ref_name = "other", env["CI_COMMIT_REF_NAME"].strip()

    return RunIdentity(
        system="gitlab",
        ref_type=ref_type,
        ref_name=ref_name,
        actor=_value(env, "GITLAB_USER_LOGIN"),
        ref_protected=_flag(env, "CI_COMMIT_REF_PROTECTED"),
        event=_value(env, "CI_PIPELINE_SOURCE"),
        from_fork=_gitlab_fork(env),
        sources=_GITLAB_SOURCES,
    )


def _gitlab_fork(env: Mapping[str, str]) -> bool | None:
    """Compare the merge request's source project with its target project."""
    source = _value(env, "CI_PIPELINE_SOURCE")
    if source is None:
        return None
    if source != "merge_request_event":
        return False
    source_project = _value(env, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
    target_project = _value(env, "CI_MERGE_REQUEST_PROJECT_ID") or _value(env, "CI_PROJECT_ID")
    if source_project is None or target_project is None:
        return None
    return source_project != target_project


def _value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = _value(env, name)
    if value is None:
        return None
    return value.lower() == "true"
