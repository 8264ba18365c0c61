"""``shipline rollback ENV``: deploy an earlier version again through the environment's target.

The rollback is a run of one stage: the first deploy step of the pipeline that
deploys to ENV, with the version replaced. So the strategy's batches, pauses, health
checks and analyses apply, and a rollback that fails is itself rolled back. ``--fast``
replaces the step with a rolling deploy of every serving instance at once, with its
health check but without pauses, checks or analyses. Locks, recovery and exit codes
are those of ``shipline run``, and the store records the rollback besides the
deployment it makes.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

from pipeline.cli.stateoptions import (
    add_file_option,
    add_state_option,
    deploy_version_only,
    load_for_state,
)
from pipeline.config import Config
from pipeline.durations import duration_option
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode
from pipeline.plan import freeze

if TYPE_CHECKING:
    from pipeline.plan import Plan, Stage, Step
    from pipeline.state import StateStore


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rollback", parents=parents, help="deploy the previous version of an environment again",
        description="Deploy the version before the current one (or --to VERSION) to ENV "
        "with the strategy of the pipeline's deploy step for ENV. Exit codes as for 'run'.",
    )
    parser.add_argument("environment", metavar="ENV", help="environment name")
    parser.add_argument("--to", metavar="VERSION",
                        help="version to deploy (default: the newest successful version "
                        "before the current one)")
    parser.add_argument("--fast", action="store_true",
                        help="for emergencies: update every serving instance at once, "
                        "without pauses, checks or analyses")
    parser.add_argument("--force", action="store_true",
                        help="deploy a --to version that the state store does not record "
                        "in this environment (by default that is an error, to catch a typo)")
    parser.add_argument("--reason", metavar="TEXT", default="shipline rollback",
                        help="why, recorded in the state store (default: 'shipline rollback')")
    parser.add_argument("--lock-wait", metavar="DURATION", type=duration_option, default=0.0,
                        help="how long to wait for another run to release the environment's "
                        "lock (default 0s: exit 5 at once)")
    add_file_option(parser)
    add_state_option(parser)
    return parser


def main(config: Config) -> ExitCode:
    from pipeline.cli.run_command import execute
    from pipeline.state import open_store
    from pipeline.staterun import RollbackRequest, locate

    options = config.options
    wait = float(options.lock_wait)
    plan = load_for_state(config, deploy_version_only).plan
    environment = options.environment
    stage, step = deploy_step_for(plan, environment)

    location = locate(plan.file.parent, dict(plan.state), config)
    with open_store(location, config.clock) as store:
        current, version = versions_for(store, environment, options.to)
        if options.to is not None and not options.force:
            check_known_version(store, environment, version)

    step = rollback_step(step, version, current, fast=options.fast)
    rollback_plan = dataclasses.replace(
        plan, stages=(dataclasses.replace(stage, steps=(step,), needs=()),))
    request = RollbackRequest(environment, version, current, options.reason, options.fast)
    return execute(rollback_plan, config, wait=wait, resume=False, rollback=request)


def deploy_step_for(plan: Plan, environment: str) -> tuple[Stage, Step]:
    """Return the first stage that deploys to ``environment`` and its deploy step.

    Raises UsageError when the environment is not defined or no stage deploys to it.
    """
    if environment not in plan.environments:
        defined = ", ".join(sorted(plan.environments)) or "none"
        raise UsageError(f"environment '{environment}' is not defined in {plan.file} "
                         f"(defined: {defined})")
    for stage in plan.stages:
        if stage.environment != environment:
            continue
        for step in stage.steps:
            if step.kind == "deploy":
                return stage, step
    raise UsageError(f"no stage of {plan.file} deploys to environment '{environment}', so "
                     f"there is no strategy to roll back with")


def versions_for(store: StateStore, environment: str, to: str | None) -> tuple[str | None, str]:
    """Return the current version (of the newest successful deployment) and the version
    to roll back to: ``to``, or the newest successful version before the current one.

    Raises UsageError when ``to`` is not given and no such version is recorded.
    """
    current = store.last_successful_version(environment)
    if to is not None:
        if not to.strip():
            raise UsageError("--to: the version is empty")
        return current, to

    # NOTE: a rollback is recorded as a successful deployment too, so right after a
    # rollback from 1.2.0 to 1.1.0 the version "before the current one" is 1.2.0 again.
    for version in _successful(store, environment):
        if version != current:
            return current, version
    raise UsageError(
        f"the state store records no successful version of environment '{environment}' "
        f"before {current or 'the current one'}: give the version with --to VERSION"
    )


def check_known_version(store: StateStore, environment: str, version: str) -> None:
    """Raise UsageError unless ``version`` ran in ``environment`` as the state store
    records it: as a successful deployment, or as the version before a deployment."""
    from pipeline.state import DeploymentOutcome

    recent = store.history(environment, limit=_SEARCH_LIMIT)
    known = {d.version for d in recent if d.outcome is DeploymentOutcome.SUCCEEDED}
    known.update(d.previous_version for d in recent if d.previous_version)
    if version in known:
        return
    raise UsageError(
        f"--to: the state store records no deployment of version '{version}' to "
        f"environment '{environment}' (among the newest {_SEARCH_LIMIT} deployments): "
        f"check the version, or add --force to deploy it anyway"
    )


#: Deployments read to find the version before the current one.
_SEARCH_LIMIT = 1000


def _successful(store: StateStore, environment: str) -> list[str]:
    from pipeline.state import DeploymentOutcome

    # NOTE: only the newest _SEARCH_LIMIT deployments are searched; an older version
    # needs --to.
    return [d.version for d in store.history(environment, limit=_SEARCH_LIMIT)
            if d.outcome is DeploymentOutcome.SUCCEEDED]


def rollback_step(step: Step, version: str, current: str | None, *, fast: bool) -> Step:
    """Return ``step`` deploying ``version``; with ``fast``, a rolling deploy of every
    serving instance at once that keeps only the step's health settings."""
    options: dict[str, Any] = {"version": version}
    if current is not None:
        options["previous_version"] = current
    if fast:
        options["batch"] = "100%"
        if "health" in step.options:
            options["health"] = step.options["health"]
        return dataclasses.replace(step, type="rolling", plugin="rolling",
                                   options=freeze(options),
                                   name=f"fast rollback to {version}")
    merged = {**step.options, **options}
    return dataclasses.replace(step, options=freeze(merged), name=f"rollback to {version}")
