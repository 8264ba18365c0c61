"""The ``github`` notifier: a GitHub deployment and its statuses, through the REST API.

The first notification of a run for an environment creates a deployment
(``POST /repos/{owner}/{repo}/deployments`` with ``auto_merge: false`` and
``required_contexts: []``, so GitHub neither merges branches nor waits for commit
checks). That notification and every later one of the run post a deployment status
(``POST /repos/{owner}/{repo}/deployments/{id}/statuses``) whose ``log_url`` is the CI
job. The deployment id is kept per run, pipeline, repository and environment.

Events become the states that GitHub documents for deployment statuses:

========================================================  =============
event                                                     state
========================================================  =============
``started``, a notify step                                ``in_progress``
``paused`` (waiting for approval)                         ``queued``
``stage_succeeded``, ``succeeded``                        ``success``
``stage_failed``, ``failed``, ``analysis_failed``,        ``failure``
``blocked``, ``rolled_back``
``rollback_failed``                                       ``error``
========================================================  =============

A rollback is a ``failure``, not ``inactive``: the deployment of this ref failed, and
GitHub shows ``inactive`` as a deployment that was replaced or (when transient)
destroyed, which would hide that failure. ``rollback_failed`` is an ``error`` because
the environment is in an unknown state and a person must look. A notify step may set
``state`` to any documented state, ``inactive`` and ``pending`` included.

Options: ``token`` (required; ``${GITHUB_TOKEN}`` in GitHub Actions, with the
``deployments: write`` permission), ``repository`` (default ``GITHUB_REPOSITORY``),
``ref`` (default ``GITHUB_SHA``, else ``GITHUB_REF``), ``environment`` (default the
stage's environment, required for run events such as ``started``), ``environment_url``,
``production_environment``, ``transient_environment``, ``api_url`` (default
``https://api.github.com``; GitHub Enterprise Server uses ``https://HOST/api/v3``),
``state``, and the HTTP options of :mod:`pipeline.delivery`.
"""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline import __version__, hookimpl
from pipeline.builtin.notifyfacts import MESSAGE_PROPERTY, notifier_uses, summarize, truncate
from pipeline.delivery import HTTP_OPTIONS_PROPERTIES, HttpOptions, HttpResult, send_json
from pipeline.diagnostics import Diagnostic
from pipeline.notification import Delivery, Notification
from pipeline.notifications import RUN_EVENTS
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Plan

#: The ``uses`` value of this notifier.
NOTIFIER_TYPE = "github"

DEFAULT_API_URL = "https://api.github.com"
#: The REST API version these requests follow (sent as ``X-GitHub-Api-Version``).
API_VERSION = "2022-11-28"
#: GitHub's documented maximum length of a deployment status description.
MAX_STATUS_DESCRIPTION = 140

#: The deployment status states that GitHub documents.
STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")

#: State per event; see the module docstring for the reasons. ``step`` is a notify step.
EVENT_STATES = {
    "started": "in_progress",
    "step": "in_progress",
    "paused": "queued",
    "stage_succeeded": "success",
    "succeeded": "success",
    "stage_failed": "failure",
    "failed": "failure",
    "analysis_failed": "failure",
    "blocked": "failure",
    "rolled_back": "failure",
    "rollback_failed": "error",
}

#: Run (the ``id()`` of its context), pipeline, API URL, repository and environment.
DeploymentKey = tuple[int, str, str, str, str]

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

OPTIONS_SCHEMA: dict[str, Any] = {
    "properties": {
        "token": {
            "title": "Token",
            "description": "A GitHub token allowed to write deployments, usually "
            "${GITHUB_TOKEN} with the deployments: write permission. It is sent only in "
            "the Authorization header and masked everywhere.",
            "type": "string",
            "minLength": 1,
        },
        "repository": {
            "title": "Repository",
            "description": "The repository as owner/name; default: the GITHUB_REPOSITORY "
            "variable.",
            "type": "string",
            "pattern": "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        },
        "ref": {
            "title": "Ref",
            "description": "The commit SHA, branch or tag that is deployed; default: the "
            "GITHUB_SHA variable, else GITHUB_REF.",
            "type": "string",
            "minLength": 1,
        },
        "environment": {
            "title": "Environment",
            "description": "The GitHub environment name; default: the environment of the "
            "stage. Required for run events (started, succeeded, failed), which belong "
            "to no stage.",
            "type": "string",
            "minLength": 1,
        },
        "environment_url": {
            "title": "Environment URL",
            "description": "The URL where the deployed environment can be visited, shown "
            "on GitHub with each status.",
            "type": "string",
            "pattern": "^(https?://|\\$\\{)",
        },
        "production_environment": {
            "title": "Production environment",
            "description": "Whether end users use this environment; default: true for an "
            "environment named production, as on GitHub.",
            "type": "boolean",
        },
        "transient_environment": {
            "title": "Transient environment",
            "description": "Whether the environment goes away later (a preview or review "
            "app); GitHub then shows an inactive deployment as destroyed.",
            "type": "boolean",
            "default": False,
        },
        "api_url": {
            "title": "API URL",
            "description": "Base URL of the GitHub REST API; for GitHub Enterprise Server "
            "use https://HOST/api/v3.",
            "type": "string",
            "pattern": "^(https?://|\\$\\{)",
            "default": DEFAULT_API_URL,
        },
        "state": {
            "title": "State",
            "description": "The deployment status to post, instead of the state that the "
            "event maps to. Meant for notify steps.",
            "enum": list(STATES),
        },
        "message": MESSAGE_PROPERTY,
        **HTTP_OPTIONS_PROPERTIES,
    },
    "required": ["token"],
}


class ConfigurationError(ValueError):
    """Options that cannot address a deployment. The message names the option to set."""


@dataclass(frozen=True)
class Target:
    """The API, repository, ref, environment and token that one notification posts to."""

    api_url: str
    repository: str
    token: str
    ref: str
    environment: str
    environment_url: str | None
    production: bool
    transient: bool

    @property
    def deployments_url(self) -> str:
        owner, name = self.repository.split("/", 1)
        return f"{self.api_url}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/deployments"

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"shipline/{__version__}",
        }


class DeploymentIds:
    """Deployment ids created during runs, with a lock per deployment; thread-safe.

    Keys start with the ``id()`` of the run's context. When a context is
    garbage-collected, its run is marked finished, and the next call to :meth:`key`
    drops the run's entries before a new context can reuse that ``id()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[DeploymentKey, int] = {}
        self._locks: dict[DeploymentKey, threading.Lock] = {}
        self._runs: set[int] = set()
        # Filled by weakref callbacks without the lock: the garbage collector may run them
        # in any thread, even one that holds the lock, and list.append is atomic.
        self._finished: list[int] = []

    def key(self, context: RunContext, pipeline: str, target: Target) -> DeploymentKey:
        """Return the key of ``target``'s deployment in the run of ``context``."""
        run = id(context)
        with self._lock:
            self._drop_finished_runs()
            if run not in self._runs:
                self._runs.add(run)
                weakref.finalize(context, self._finished.append, run)
        return (run, pipeline, target.api_url, target.repository, target.environment)

    def lock(self, key: DeploymentKey) -> threading.Lock:
        """Return the lock that serialises creating and posting to one deployment."""
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: DeploymentKey) -> int | None:
        with self._lock:
            return self._ids.get(key)

    def set(self, key: DeploymentKey, deployment_id: int) -> None:
        with self._lock:
            self._ids[key] = deployment_id

    def _drop_finished_runs(self) -> None:
        """Forget the runs whose context is gone. Needs the lock."""
        while self._finished:
            run = self._finished.pop()
            self._runs.discard(run)
            for table in (self._ids, self._locks):
                for key in [key for key in table if key[0] == run]:
                    del table[key]


#: The deployments of every run in this process.
DEPLOYMENT_IDS = DeploymentIds()


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="notify", type=NOTIFIER_TYPE, schema=OPTIONS_SCHEMA,
        description="Create a GitHub deployment for the environment and post its "
        "statuses as the run goes on.",
    )]


@hookimpl
def shipline_check_plan(plan: Plan) -> list[Diagnostic]:
    """Reject a subscription to run events without ``environment``: those events belong
    to no stage, so the deployment would have no environment to be made in."""
    found = []
    for path, options in notifier_uses(plan, NOTIFIER_TYPE):
        run_events = sorted(set(options.get("on", ())) & RUN_EVENTS)
        if run_events and not options.get("environment"):
            found.append(Diagnostic(
                f"run events ({', '.join(run_events)}) belong to no environment: set the "
                "'environment' option of this notification", None, path,
            ))
    return found


@hookimpl
def shipline_notify(notification: Notification, context: RunContext) -> Delivery | None:
    if notification.uses != NOTIFIER_TYPE:
        return None

    token = str(notification.options.get("token") or "")
    if token:
        context.masker.add(token)

    try:
        target = resolve_target(notification, os.environ)
    except ConfigurationError as error:
        return Delivery(NOTIFIER_TYPE, False, context.masker.mask(str(error)))

    state = str(notification.options.get("state") or EVENT_STATES.get(notification.event, ""))
    if not state:
        return Delivery(NOTIFIER_TYPE, True, f"event {notification.event} has no "
                        "deployment state; nothing posted")

    options = HttpOptions.from_options(notification.options)
    key = DEPLOYMENT_IDS.key(context, notification.pipeline, target)
    with DEPLOYMENT_IDS.lock(key):
        return _post(notification, context, target, state, key=key, options=options)


def resolve_target(notification: Notification, environ: Mapping[str, str]) -> Target:
    """Read the target from the options, falling back to GitHub Actions' variables.

    Raises :class:`ConfigurationError` naming the option to set when the token,
    repository, ref or environment is missing or invalid.
    """
    options = notification.options
    token = str(options.get("token") or "")
    if not token:
        raise ConfigurationError("option token is missing: set it to ${GITHUB_TOKEN} or "
                                 "another token allowed to write deployments")

    repository = str(options.get("repository") or environ.get("GITHUB_REPOSITORY") or "")
    if not _REPOSITORY.match(repository):
        described = f"'{repository}'" if repository else "not set"
        raise ConfigurationError(f"repository is {described}: set the repository option to "
                                 "owner/name")

    ref = str(options.get("ref") or environ.get("GITHUB_SHA") or environ.get("GITHUB_REF")
              or "")
    if not ref:
        raise ConfigurationError("no ref to deploy: set the ref option, or run in GitHub "
                                 "Actions, where GITHUB_SHA is set")

    environment = str(options.get("environment") or notification.environment or "")
    if not environment:
        raise ConfigurationError(f"event {notification.event} belongs to no environment: "
                                 "set the environment option of this notification")

    production = options.get("production_environment")
    return Target(
        api_url=str(options.get("api_url") or DEFAULT_API_URL).rstrip("/"),
        repository=repository, token=token, ref=ref, environment=environment,
        environment_url=str(options["environment_url"]) if options.get("environment_url")
        else None,
        production=environment == "production" if production is None else bool(production),
        transient=bool(options.get("transient_environment", False)),
    )


def _post(notification: Notification, context: RunContext, target: Target, state: str, *,
          key: DeploymentKey, options: HttpOptions) -> Delivery:
    """Create the deployment if this run has none yet for ``key``, then post ``state``."""
    mask = context.masker.mask
    deployment_id = DEPLOYMENT_IDS.get(key)
    if deployment_id is None:
        deployment_id, problem = _create_deployment(notification, target, options, mask)
        if deployment_id is None:
            return Delivery(NOTIFIER_TYPE, False, mask(
                f"creating a deployment of {target.ref} to {target.environment} in "
                f"{target.repository} failed: {problem}"))
        DEPLOYMENT_IDS.set(key, deployment_id)

    result = send_json("POST", f"{target.deployments_url}/{deployment_id}/statuses",
                       status_payload(notification, target, state, mask),
                       headers=target.headers, options=options, masker=mask)
    where = f"deployment {deployment_id} ({target.environment}) in {target.repository}"
    if not result.ok:
        return Delivery(NOTIFIER_TYPE, False, mask(
            f"posting status {state} to {where} failed: {result.message}"))
    return Delivery(NOTIFIER_TYPE, True, mask(f"status {state} posted to {where}"))


def _create_deployment(notification: Notification, target: Target, options: HttpOptions,
                       mask: Callable[[str], str]) -> tuple[int | None, str]:
    """Create the deployment; return its id, or None and why not."""
    result = send_json("POST", target.deployments_url,
                       deployment_payload(notification, target, mask),
                       headers=target.headers, options=options, masker=mask)
    if not result.ok:
        return None, result.message

    deployment_id = _deployment_id(result)
    if deployment_id is None:
        # GitHub responds 202 with only a message when it merged the default branch into
        # the ref instead of creating the deployment. auto_merge is false, so any other
        # response without an id is unexpected too.
        return None, f"HTTP {result.status} without a deployment id: {_api_message(result)}"
    return deployment_id, ""


def deployment_payload(notification: Notification, target: Target,
                       mask: Callable[[str], str]) -> dict[str, Any]:
    """Build the body of the create-deployment request."""
    version = notification.version or ""
    description = f"{notification.pipeline} {version}".strip()
    return {
        "ref": target.ref,
        "task": "deploy",
        "auto_merge": False,
        "required_contexts": [],
        "environment": target.environment,
        "description": mask(description),
        "transient_environment": target.transient,
        "production_environment": target.production,
        "payload": {"pipeline": mask(notification.pipeline), "version": mask(version)},
    }


def status_payload(notification: Notification, target: Target, state: str,
                   mask: Callable[[str], str]) -> dict[str, Any]:
    """Build the body of a create-deployment-status request."""
    summary = summarize(notification, mask)
    description = summary.headline
    if notification.event == "step" and summary.message.strip():
        description = summary.message.strip()
    payload: dict[str, Any] = {
        "state": state,
        "description": truncate(" ".join(description.split()), MAX_STATUS_DESCRIPTION),
    }
    if summary.job_url:
        payload["log_url"] = summary.job_url
    if target.environment_url:
        payload["environment_url"] = mask(target.environment_url)
    return payload


def _deployment_id(result: HttpResult) -> int | None:
    try:
        body = json.loads(result.body)
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _api_message(result: HttpResult) -> str:
    """Return the ``message`` field of a GitHub response, or the start of its body."""
    try:
        body = json.loads(result.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return " ".join(result.body.split())[:200] or "(empty body)"
