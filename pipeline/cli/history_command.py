"""``shipline history ENV``: the deployments of an environment, newest first."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from pipeline.builtin.statehistory import BREAK_GLASS
from pipeline.cli.stateoptions import (
    add_file_option,
    add_state_option,
    format_moment,
    missing_store,
    state_location,
)
from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode
from pipeline.instancetable import format_table

if TYPE_CHECKING:
    from pipeline.state import Deployment, JournalEntry

#: Deployments shown when ``--limit`` is not given.
DEFAULT_LIMIT = 20


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history", parents=parents, help="list the deployments of an environment",
        description="List the deployments of ENV recorded in the state store, newest first: "
        "version, previous version, strategy, outcome, who started it and from which CI job.",
    )
    parser.add_argument("environment", metavar="ENV", help="environment name")
    parser.add_argument("--limit", metavar="N", type=int, default=DEFAULT_LIMIT,
                        help=f"show at most N deployments (default {DEFAULT_LIMIT})")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")
    parser.add_argument("--journal", action="store_true",
                        help="also list each deployment's journal: the changes it recorded "
                        "before making them, and whether each one finished")
    add_file_option(parser)
    add_state_option(parser)
    return parser


def main(config: Config) -> ExitCode:
    options = config.options
    if options.limit < 1:
        raise UsageError(f"--limit: {options.limit} is not valid: use 1 or more")

    from pipeline.state import open_store

    location = state_location(config, options.environment)
    missing = missing_store(location)
    deployments: list[Deployment] = []
    journals: dict[str, list[JournalEntry]] = {}
    if missing is None:
        with open_store(location, config.clock) as store:
            deployments = store.history(options.environment, limit=options.limit)
            journals = {d.id: store.journal(d.id) for d in deployments}
    overrides = {d.id: break_glass(journals[d.id]) for d in deployments}

    if options.format == "json":
        data = [{**deployment_data(d), "break_glass": overrides[d.id]} for d in deployments]
        if options.journal:
            for item in data:
                item["journal"] = [journal_data(entry) for entry in journals[item["id"]]]
        print(json.dumps(data, indent=2), file=config.stdout)
    elif not deployments:
        print(f"no deployments of environment '{options.environment}' are recorded"
              + (f": {missing}" if missing else ""), file=config.stdout)
    else:
        print(history_table(deployments, overrides), file=config.stdout)
        if options.journal:
            for deployment in deployments:
                print(f"\njournal of deployment {deployment.id}:", file=config.stdout)
                print(_indent(journal_table(journals[deployment.id])), file=config.stdout)
    return ExitCode.OK


def journal_table(journal: list[JournalEntry]) -> str:
    """Return one row per journal entry: seq, time, step, operation, instances, version,
    whether it finished and its details; ``-`` marks an empty value."""
    if not journal:
        return "no entries"
    rows = [
        [str(entry.seq), format_moment(entry.time), entry.step, entry.operation,
         _instances_text(entry.instances), entry.version or "-",
         "yes" if entry.done else "no", _details_text(entry.details)]
        for entry in journal
    ]
    headers = ["seq", "time", "step", "operation", "instances", "version", "done", "details"]
    return format_table(headers, rows)


def journal_data(entry: JournalEntry) -> dict[str, Any]:
    """Return a journal entry as JSON data; the time is ISO 8601 in UTC."""
    return {
        "seq": entry.seq,
        "time": entry.time.isoformat(),
        "stage": entry.stage,
        "step": entry.step,
        "operation": entry.operation,
        "instances": list(entry.instances),
        "version": entry.version,
        "done": entry.done,
        "details": dict(entry.details),
    }


#: Instance names given in a journal row before the rest are counted.
_NAMED_INSTANCES = 3


def _instances_text(instances: tuple[str, ...]) -> str:
    if not instances:
        return "-"
    named = ", ".join(instances[:_NAMED_INSTANCES])
    hidden = len(instances) - _NAMED_INSTANCES
    return f"{named} and {hidden} more" if hidden > 0 else named


def _details_text(details: Any) -> str:
    if not details:
        return "-"
    return " ".join(f"{key}={'-' if value is None else value}"
                    for key, value in sorted(details.items()))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def break_glass(journal: list[JournalEntry]) -> dict[str, Any] | None:
    """Return the ``--break-glass`` override of a deployment (reason and freeze windows)
    from its journal, or None when it deployed outside any freeze window."""
    for entry in journal:
        if entry.operation == BREAK_GLASS:
            return {"reason": entry.details.get("reason"),
                    "windows": _windows(entry.details.get("windows"))}
    return None


def _windows(stored: Any) -> list[dict[str, Any]]:
    """Read the freeze windows of a break-glass journal entry as ``{name, start, end}``.

    Entries are JSON text. Stores written before that hold the names joined with
    ``; ``, which become windows whose ``start`` and ``end`` are unknown (null).
    """
    if not isinstance(stored, str) or not stored:
        return []
    try:
        windows = json.loads(stored)
    except json.JSONDecodeError:
        return [{"name": name, "start": None, "end": None} for name in stored.split("; ")]
    if not isinstance(windows, list):
        return []
    return [window for window in windows if isinstance(window, dict)]


def outcome_text(deployment: Deployment) -> str:
    return deployment.outcome.value if deployment.outcome is not None else "unfinished"


def history_table(
    deployments: list[Deployment], overrides: dict[str, dict[str, Any] | None] | None = None
) -> str:
    """Return one row per deployment: start time, id, versions, strategy, outcome, actor
    and CI job; ``-`` marks an unknown value. A deployment in ``overrides`` that ran
    with ``--break-glass`` gets ``(break glass)`` after its outcome."""
    overrides = overrides or {}
    rows = [
        [format_moment(d.started), d.id, d.version, d.previous_version or "-", d.strategy,
         outcome_text(d) + (" (break glass)" if overrides.get(d.id) else ""),
         d.actor or "-", d.job_url or "-"]
        for d in deployments
    ]
    headers = ["started", "id", "version", "previous", "strategy", "outcome", "actor", "job"]
    return format_table(headers, rows)


def deployment_data(deployment: Deployment) -> dict[str, Any]:
    """Return the deployment as JSON data; times are ISO 8601 in UTC, unknowns null."""
    return {
        "id": deployment.id,
        "pipeline": deployment.pipeline,
        "environment": deployment.environment,
        "version": deployment.version,
        "previous_version": deployment.previous_version,
        "strategy": deployment.strategy,
        "actor": deployment.actor,
        "job_url": deployment.job_url,
        "commit": deployment.commit,
        "started": deployment.started.isoformat(),
        "finished": deployment.finished.isoformat() if deployment.finished else None,
        "outcome": deployment.outcome.value if deployment.outcome is not None else None,
    }
