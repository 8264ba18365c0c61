"""Process exit codes, and how the outcomes of a run map onto them."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """The exit status of shipline, which tells the CI runner what happened."""

    #: Every stage passed or was skipped by its condition.
    OK = 0
    #: A step failed and every change it made was rolled back.
    FAILED = 1
    #: Invalid pipeline or command line; nothing was changed.
    INVALID = 2
    #: A scan, gate or policy blocked the run before it changed the environment.
    BLOCKED = 3
    #: A rollback failed or is incomplete: a person must look.
    ROLLBACK_FAILED = 4
    #: Another run holds the environment's lock.
    LOCKED = 5
    #: A bug in shipline or in a plugin.
    INTERNAL_ERROR = 70
    #: SIGINT or SIGTERM from the CI runner, after the in-flight change was rolled back.
    INTERRUPTED = 130


# Most severe first: when several codes apply to one run, the earliest in this list wins.
_SEVERITY = (
    ExitCode.ROLLBACK_FAILED,
    ExitCode.INTERNAL_ERROR,
    ExitCode.INTERRUPTED,
    ExitCode.FAILED,
    ExitCode.LOCKED,
    ExitCode.BLOCKED,
    ExitCode.INVALID,
    ExitCode.OK,
)


def most_severe(codes: Iterable[ExitCode]) -> ExitCode:
    """Return the code that wins when several apply; ``OK`` for none."""
    present = set(codes)
    for code in _SEVERITY:
        if code in present:
            return code
    return ExitCode.OK
