"""``shipline lock status|release ENV``: show or remove an environment's lock.

``release`` removes a lock whose lease has expired. A lock whose lease still runs
belongs to a run that is alive or died less than a lease ago. So removing it needs
``--force --reason TEXT``, and the store records who forced it and why.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pipeline.cienv import detect
from pipeline.cli.stateoptions import (
    add_file_option,
    add_state_option,
    missing_store,
    state_location,
)
from pipeline.config import Config
from pipeline.errors import ShiplineError, UsageError
from pipeline.exitcodes import ExitCode

if TYPE_CHECKING:
    from datetime import datetime

    from pipeline.state import StateStore


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lock", parents=parents, help="show or release an environment's lock",
        description="Show who holds the lock of ENV, or release it.",
    )
    parser.add_argument("action", choices=("status", "release"),
                        help="'status' shows the lock; 'release' removes an expired one, or "
                        "a live one with --force")
    parser.add_argument("environment", metavar="ENV", help="environment name")
    parser.add_argument("--force", action="store_true",
                        help="with 'release': remove the lock even though its lease has not "
                        "expired; needs --reason")
    parser.add_argument("--reason", metavar="TEXT",
                        help="with --force: why, recorded in the state store with who did it")
    add_file_option(parser)
    add_state_option(parser)
    return parser


def main(config: Config) -> ExitCode:
    # Imported here, because every subcommand's module is imported at start-up.
    from pipeline.state import open_store
    from pipeline.state.records import utc_from_timestamp

    options = config.options
    if options.action == "status" and (options.force or options.reason):
        raise UsageError("--force and --reason are options of 'lock release'")
    if options.force and not (options.reason or "").strip():
        raise UsageError("lock release --force needs --reason TEXT, which is recorded with "
                         "who released the lock")

    location = state_location(config, options.environment)
    missing = missing_store(location)
    if missing is not None:
        print(f"environment '{options.environment}' is not locked: {missing}",
              file=config.stdout)
        return ExitCode.OK

    if options.action == "status":
        with open_store(location, config.clock) as store:
            now = utc_from_timestamp(config.clock.time())
            print(describe_lock(store, options.environment, now), file=config.stdout)
        return ExitCode.OK

    with open_store(location, config.clock) as store:
        message = release(store, options.environment, utc_from_timestamp(config.clock.time()),
                          force=options.force, reason=options.reason)
    print(message, file=config.stdout)
    return ExitCode.OK


def describe_lock(store: StateStore, environment: str, now: datetime) -> str:
    """Return one line about the lock of ``environment``: held, expired, or none."""
    from pipeline.state.errors import format_time

    lock = store.lock_status(environment)
    if lock is None:
        return f"environment '{environment}' is not locked"
    if lock.expired(now):
        return (f"environment '{environment}': the lock of {lock.owner} expired at "
                f"{format_time(lock.expires)}; the next run takes it over")
    return (f"environment '{environment}' is locked by {lock.owner} since "
            f"{format_time(lock.acquired)} (last heartbeat {format_time(lock.heartbeat)}, "
            f"lease expires {format_time(lock.expires)} unless renewed)")


def release(store: StateStore, environment: str, now: datetime, *, force: bool,
            reason: str | None) -> str:
    """Remove the lock of ``environment`` and return what was done.

    Raises a LOCKED error (exit 5) for a live lock without ``force``.
    """
    from pipeline.state import default_owner
    from pipeline.state.errors import format_time

    lock = store.lock_status(environment)
    if lock is None:
        return f"environment '{environment}' is not locked: nothing to release"

    me = default_owner(detect())
    if not lock.expired(now) and not force:
        raise _StillHeld(
            f"environment '{environment}' is locked by {lock.owner} since "
            f"{format_time(lock.acquired)} and its lease expires "
            f"{format_time(lock.expires)}: if that run is gone, use "
            f"'shipline lock release {environment} --force --reason TEXT'"
        )

    why = reason.strip() if force and reason else "its lease had expired"
    removed = store.force_release_lock(environment, me, why)
    if removed is None:
        return f"environment '{environment}' is not locked: nothing to release"
    return (f"released the lock of environment '{environment}' held by {removed.owner} since "
            f"{format_time(removed.acquired)} (recorded: released by {me}: {why})")


class _StillHeld(ShiplineError):
    exit_code = ExitCode.LOCKED
