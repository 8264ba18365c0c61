"""``shipline status [ENV]``: what runs where now, against what the state store records.

For each environment of the pipeline (or only ENV), it reads every instance's version
from the target and compares the serving instances with the version of the newest
successful deployment. It also shows the environment's lock and any deployment left
unfinished, which the next ``shipline run`` rolls back (or continues with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.cli.lock_command import describe_lock
from pipeline.cli.stateoptions import (
    add_file_option,
    add_state_option,
    check_environment,
    format_moment,
    load_for_state,
    missing_store,
    outside_state_and_environments,
)
from pipeline.config import Config
from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode
from pipeline.instancetable import format_table, show_version

if TYPE_CHECKING:
    from pipeline.plan import Plan
    from pipeline.state import StateStore


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status", parents=parents, help="compare what runs now with the recorded state",
        description="For each environment (or only ENV): the version each instance runs "
        "now, read from the target, against the newest successful deployment in the state "
        "store, and any held lock or unfinished deployment.",
    )
    parser.add_argument("environment", metavar="ENV", nargs="?",
                        help="environment name (default: every environment)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")
    add_file_option(parser)
    add_state_option(parser)
    return parser


@dataclass
class InstanceStatus:
    """One instance: its slot, whether it serves, and the version it runs (None if unknown)."""

    instance: str
    slot: str | None
    serving: bool
    running: str | None


@dataclass
class EnvironmentStatus:
    """The versions running in one environment, and the state store's records of it."""

    environment: str
    recorded_version: str | None
    lock: str
    unfinished: list[str] = field(default_factory=list)
    instances: list[InstanceStatus] = field(default_factory=list)
    #: Why the target could not be read, or None.
    target_error: str | None = None

    @property
    def differing(self) -> list[InstanceStatus]:
        """Serving instances that do not run the recorded version."""
        if self.recorded_version is None:
            return []
        return [i for i in self.instances if i.serving and i.running != self.recorded_version]


def main(config: Config) -> ExitCode:
    from pipeline.state import open_store
    from pipeline.staterun import locate

    plan = load_for_state(config, outside_state_and_environments).plan
    names = _environment_names(plan, config.options.environment)
    location = locate(plan.file.parent, dict(plan.state), config)
    missing = missing_store(location)
    if missing is not None:
        statuses = [_status_without_store(plan, config, name, missing) for name in names]
    else:
        with open_store(location, config.clock) as store:
            statuses = [_status(plan, config, store, name) for name in names]

    if config.options.format == "json":
        print(json.dumps([asdict(status) for status in statuses], indent=2), file=config.stdout)
    else:
        print("\n\n".join(render(status) for status in statuses), file=config.stdout)
    return ExitCode.OK


def _environment_names(plan: Plan, name: str | None) -> list[str]:
    if name is None:
        return sorted(plan.environments)
    check_environment(plan, name)
    return [name]


def _status_without_store(plan: Plan, config: Config, name: str,
                          missing: str) -> EnvironmentStatus:
    """Return the status of ``name`` when the store does not exist: nothing recorded,
    no lock, and what the target reports."""
    status = EnvironmentStatus(name, None, f"environment '{name}' is not locked: {missing}")
    try:
        status.instances = read_instances(plan, config, name)
    except ShiplineError as exc:
        status.target_error = str(exc)
    return status


def _status(plan: Plan, config: Config, store: StateStore, name: str) -> EnvironmentStatus:
    from pipeline.state.records import utc_from_timestamp

    now = utc_from_timestamp(config.clock.time())
    status = EnvironmentStatus(name, store.last_successful_version(name),
                               describe_lock(store, name, now))
    for deployment in store.unfinished_deployments(name):
        by = deployment.job_url or deployment.actor or "a run outside CI"
        status.unfinished.append(
            f"deployment {deployment.id} of {deployment.version}, started "
            f"{format_moment(deployment.started)} by {by}, did not finish: the next run "
            f"rolls it back, or continues it with --resume"
        )
    try:
        status.instances = read_instances(plan, config, name)
    except ShiplineError as exc:
        status.target_error = str(exc)
    return status


def read_instances(plan: Plan, config: Config, name: str) -> list[InstanceStatus]:
    """Read every instance's version from the environment's target.

    With slots and a router, the active slot's instances serve; otherwise all do.
    """
    # NOTE: the local target starts its `stable` version when it is created and stops
    # it at the end, so for a local environment this shows that version, never what a
    # run left behind.
    from pipeline.context import RunContext
    from pipeline.rolloutparallel import MAX_PARALLEL, run_parallel
    from pipeline.slots import resolve_router

    context = RunContext(plan=plan, config=config)
    context.environment = plan.environments[name]
    try:
        target = context.target()
        router = resolve_router(context)
        active = router.active_slot() if router is not None and target.slots() else None
        placed: list[tuple[str, str | None]] = [
            (instance, slot) for slot in target.slots() for instance in target.instances(slot)
        ]
        if not placed:
            placed = [(instance, None) for instance in target.instances()]
        running = run_parallel([instance for instance, _ in placed], target.version,
                               workers=MAX_PARALLEL)
    finally:
        context.close_targets()
    return [
        InstanceStatus(instance, slot, active is None or slot == active, version)
        for (instance, slot), version in zip(placed, running, strict=True)
    ]


def render(status: EnvironmentStatus) -> str:
    """Return the text report of one environment."""
    lines = [f"environment {status.environment}"]
    recorded = status.recorded_version or "no successful deployment recorded"
    lines.append(f"  recorded version: {recorded}")
    lines.append(f"  lock: {status.lock}")
    lines += [f"  unfinished: {text}" for text in status.unfinished]
    if status.target_error is not None:
        lines.append(f"  target: cannot read the instances: {status.target_error}")
        return "\n".join(lines)

    with_slots = any(i.slot for i in status.instances)
    headers = ["instance", *(["slot"] if with_slots else []), "running", "note"]
    rows = []
    for item in status.instances:
        note = _note(status, item)
        slot = [item.slot or "-"] if with_slots else []
        rows.append([item.instance, *slot, show_version(item.running), note])
    table = format_table(headers, rows)
    lines += [f"  {line}" for line in table.splitlines()]
    differing = len(status.differing)
    if differing:
        lines.append(f"  {differing} serving instance(s) do not run the recorded version "
                     f"{status.recorded_version}")
    return "\n".join(lines)


def _note(status: EnvironmentStatus, item: InstanceStatus) -> str:
    if not item.serving:
        return "idle slot"
    if status.recorded_version is None or item.running == status.recorded_version:
        return ""
    return f"differs from the recorded version {status.recorded_version}"
