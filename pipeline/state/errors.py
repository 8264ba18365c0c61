"""Errors of the state store, each with the exit code a command ends with."""

from __future__ import annotations

from datetime import datetime

from pipeline.errors import ShiplineError
from pipeline.exitcodes import ExitCode
from pipeline.state.records import Lock


class StateError(ShiplineError):
    """The state store cannot be used as configured: nothing was changed."""

    exit_code = ExitCode.INVALID


class StateCorruptError(StateError):
    """The state database cannot be read: not a database, truncated, or damaged.

    Raised before anything is written, so the file is left as it was for a person to
    inspect or restore.
    """


class StateSchemaError(StateError):
    """The state database has a schema version newer than this shipline understands."""


class StateConnectionError(StateError):
    """The state database cannot be opened or reached (no such directory, server down)."""


class StateBusyError(StateError):
    """Another process kept the state database locked for longer than the busy timeout."""

    exit_code = ExitCode.LOCKED


class RecordNotFound(StateError):
    """A deployment, journal entry or rollback id that the store does not contain."""


def format_time(moment: datetime) -> str:
    """Format an aware datetime for messages, in UTC to the second: ``2027-01-15 08:00:00 UTC``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class LockHeld(ShiplineError):
    """Another run holds the environment's lock and its lease has not expired.

    ``waited`` is the text of the ``--lock-wait`` duration that ran out, or None when
    the run did not wait. The advice at the end of the message depends on it.
    """

    exit_code = ExitCode.LOCKED

    def __init__(self, lock: Lock, waited: str | None = None) -> None:
        self.lock = lock
        release = (f"run 'shipline lock release {lock.environment} --force --reason TEXT' "
                   f"if that run is gone")
        if waited is None:
            advice = f"wait with --lock-wait, or {release}"
        else:
            advice = f"still locked after waiting {waited}: wait longer, or {release}"
        super().__init__(
            f"environment '{lock.environment}' is locked by {lock.owner} since "
            f"{format_time(lock.acquired)} (lease expires {format_time(lock.expires)} "
            f"unless renewed): {advice}"
        )


class LockLost(ShiplineError):
    """A lock this run held was taken over or released by someone else.

    Raised by renew and release when the lock's token no longer matches, which means
    the lease expired before a heartbeat renewed it, or a person forced a release.
    """

    exit_code = ExitCode.LOCKED

    def __init__(self, lock: Lock, current: Lock | None) -> None:
        self.lock = lock
        self.current = current
        holder = "nobody holds it now" if current is None else f"now held by {current.owner}"
        super().__init__(
            f"lost the lock on environment '{lock.environment}' ({holder}): "
            f"stop changing the environment"
        )
