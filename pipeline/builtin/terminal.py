"""Terminal progress: one line per stage and step as it happens, then a summary.

Colour is used when standard output is a terminal and ``NO_COLOR`` is not set
(https://no-color.org). ``-q`` prints only failures and the summary; ``-v`` adds each
step's details.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, TextIO

from pipeline import hookimpl
from pipeline.durations import format_duration
from pipeline.exitcodes import ExitCode
from pipeline.report import Outcome

if TYPE_CHECKING:
    import pluggy

    from pipeline.config import Config
    from pipeline.plan import Stage
    from pipeline.report import StepReport
    from pipeline.runner import RunResult, StageResult

_COLOURS = {
    Outcome.PASSED: "32",
    Outcome.SKIPPED: "33",
    Outcome.BLOCKED: "33",
    Outcome.LOCKED: "33",
}
_RED = "31"

#: Detail lines printed under a failed step without -v, such as a table's first rows.
_DETAIL_LINES = 40

logger = logging.getLogger("shipline")

EXIT_MEANINGS = {
    ExitCode.OK: "every stage passed or was skipped by its condition",
    ExitCode.FAILED: "a step or a required notification failed; changes were rolled back",
    ExitCode.INVALID: "invalid pipeline or command line",
    ExitCode.BLOCKED: "blocked before the environment was changed",
    ExitCode.ROLLBACK_FAILED: "a rollback failed: a person must look",
    ExitCode.LOCKED: "another run holds the environment's lock",
    ExitCode.INTERNAL_ERROR: "internal error in shipline or a plugin",
    ExitCode.INTERRUPTED: "interrupted",
}


#: Class attribute of a CI reporter that prints each stage's line as the title of a
#: collapsible group, on the terminal's output stream. The terminal then leaves the
#: line out, so that it does not appear twice.
PRINTS_STAGE_TITLES = "prints_stage_titles"


class TerminalReporter:
    def __init__(self, out: TextIO, verbosity: int, colour: bool,
                 plugins: pluggy.PluginManager | None = None) -> None:
        self.out = out
        self.verbosity = verbosity
        self.colour = colour
        #: The registered plugins, searched at each stage for one that titles stages.
        self.plugins = plugins
        #: True between a stage's start and finish; steps of a skipped stage arrive
        #: outside it and are summed up by one "stage X: skipped" line instead.
        self.in_stage = False
        self.closed = False

    def paint(self, text: str, code: str | None) -> str:
        if not self.colour or code is None:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    def write(self, line: str) -> None:
        """Print a line; a closed output (``shipline run | head``) silences the reporter.

        Output is never worth stopping a deploy or its rollback for, so the error is
        logged once and the run goes on.
        """
        if self.closed:
            return
        try:
            print(line, file=self.out, flush=True)
        except (BrokenPipeError, ValueError, OSError) as exc:
            self.closed = True
            logger.warning("terminal output stopped: %s; the run goes on", exc)

    @hookimpl
    def shipline_stage_start(self, stage: Stage) -> None:
        self.in_stage = True
        if self.verbosity < 0 or self._stage_titled_elsewhere():
            return
        where = f" -> {stage.environment}" if stage.environment else ""
        self.write(self.paint(f"stage {stage.name}{where}", "1"))

    def _stage_titled_elsewhere(self) -> bool:
        if self.plugins is None:
            return False
        return any(getattr(plugin, PRINTS_STAGE_TITLES, False)
                   for plugin in self.plugins.get_plugins())

    @hookimpl
    def shipline_step_report(self, report: StepReport) -> None:
        failed = report.outcome.is_failure
        if self.verbosity < 0 and not failed:
            return
        if not self.in_stage and self.verbosity <= 0:
            return
        label = report.outcome.value.upper().replace("_", " ")
        code = _RED if failed else _COLOURS.get(report.outcome)
        name = f"rollback: {report.name}" if report.rollback else report.name
        line = f"  {self.paint(f'{label:<8}', code)} {name}"
        if report.outcome is not Outcome.SKIPPED:
            line += f" ({format_duration(report.duration)})"
        message_lines = report.message.splitlines()
        if message_lines:
            line += f": {message_lines[0]}"
        self.write(line)
        # A message of several lines, such as one line per failed check, continues
        # at the indent of the details, so that every line stays under its step.
        for more in message_lines[1:]:
            self.write(f"      {more}")
        if report.details and (failed or self.verbosity > 0):
            details = report.details.splitlines()
            printed = details if self.verbosity > 0 else details[:_DETAIL_LINES]
            for detail in printed:
                self.write(f"      {detail}")
            if len(printed) < len(details):
                self.write(f"      ... {len(details) - len(printed)} more lines: -v prints "
                           "them all, and the JUnit report has them")

    @hookimpl
    def shipline_step_progress(self, message: str) -> None:
        if self.verbosity >= 0:
            self.write(f"      ... {message}")

    @hookimpl
    def shipline_stage_finish(self, stage: Stage, result: StageResult) -> None:
        self.in_stage = False
        if result.skipped_reason is not None and self.verbosity >= 0:
            self.write(self.paint(f"stage {stage.name}: skipped ({result.skipped_reason})",
                                  "33"))

    @hookimpl
    def shipline_run_finish(self, result: RunResult) -> None:
        for warning in result.warnings:
            self.write(self.paint(f"warning: {warning}", "33"))
        counts: dict[str, int] = {}
        for stage in result.stages:
            counts[stage.outcome.value] = counts.get(stage.outcome.value, 0) + 1
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        code = result.exit_code
        colour = "32" if code == ExitCode.OK else _RED
        self.write(self.paint(
            f"{result.plan.name}: {len(result.stages)} stage(s): {summary} in "
            f"{format_duration(result.duration)}; exit {int(code)} ({EXIT_MEANINGS[code]})",
            colour,
        ))


def use_colour(out: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(out, "isatty", lambda: False)())


@hookimpl
def shipline_configure(config: Config) -> None:
    if config.option("command") not in ("run", "rollback"):
        return
    verbosity = int(config.option("verbose", 0)) - int(config.option("quiet", 0))
    # `--events -` owns standard output, so progress goes to standard error instead.
    out = config.stderr if config.option("events") == "-" else config.stdout
    reporter = TerminalReporter(out, verbosity, use_colour(out), config.pluginmanager)
    config.pluginmanager.register(reporter, name="terminalreporter")


@hookimpl
def shipline_unconfigure(config: Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        config.pluginmanager.unregister(reporter)


