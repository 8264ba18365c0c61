"""Step reports: the outcome, timings, message and details of running a step."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.diagnostics import Mark
from pipeline.exitcodes import ExitCode


class Outcome(str, enum.Enum):
    """The result of one step, one rollback or one stage."""

    PASSED = "passed"
    FAILED = "failed"
    #: A scan, gate or policy stopped the run before the environment changed.
    BLOCKED = "blocked"
    #: Not run: a condition, a failed dependency or an earlier failure in the stage.
    SKIPPED = "skipped"
    #: A plugin raised an exception; the step counts as failed and the run exits 70.
    ERROR = "error"
    #: A rollback did not restore the previous state.
    ROLLBACK_FAILED = "rollback_failed"
    #: Stopped by SIGINT or SIGTERM.
    INTERRUPTED = "interrupted"
    #: Another run holds the environment's lock.
    LOCKED = "locked"

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT_CODES[self]

    @property
    def is_failure(self) -> bool:
        return self not in (Outcome.PASSED, Outcome.SKIPPED)


_EXIT_CODES = {
    Outcome.PASSED: ExitCode.OK,
    Outcome.SKIPPED: ExitCode.OK,
    Outcome.FAILED: ExitCode.FAILED,
    Outcome.BLOCKED: ExitCode.BLOCKED,
    Outcome.ERROR: ExitCode.INTERNAL_ERROR,
    Outcome.ROLLBACK_FAILED: ExitCode.ROLLBACK_FAILED,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
    Outcome.LOCKED: ExitCode.LOCKED,
}


@dataclass
class StepReport:
    """The result of one step (or of one rollback, with ``rollback=True``).

    ``message`` is one short line; ``details`` is free text for the report body;
    ``output`` is captured command output. Runners mask secrets in all three before
    anything is printed or written. ``duration`` is in seconds.
    """

    step_id: str
    name: str
    kind: str
    outcome: Outcome
    message: str = ""
    details: str = ""
    output: str = ""
    duration: float = 0.0
    started_at: float = 0.0
    plugin: str | None = None
    mark: Mark | None = None
    rollback: bool = False
    #: Structured results for JSON output (measurements, instance states, findings).
    data: Mapping[str, Any] = field(default_factory=dict)
