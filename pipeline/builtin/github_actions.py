"""GitHub Actions output, active when the ``GITHUB_ACTIONS`` variable is ``true``.

- ``::add-mask::`` for every secret value that the masker holds, when the run starts
  and, for secrets learned later, before the next line this plugin writes.
- Workflow commands are turned off with ``::stop-commands::`` while the run prints its
  own lines, so a step message or captured output that starts with ``::`` is shown as
  text instead of acting as a command. They are turned back on around each line of
  this plugin.
- A ``::group::`` per stage, so that the log folds each stage.
- ``::error`` annotations pointing at the pipeline file for each diagnostic of an
  invalid pipeline and for each failed step or rollback, and ``::warning``
  annotations for failed notifications. At most :data:`MAX_ANNOTATIONS` of each type
  are written, because the runner keeps no more per step.
- Outputs (:mod:`pipeline.cioutputs`) appended to the ``GITHUB_OUTPUT`` file, and the
  summary of :mod:`pipeline.stepsummary` appended to ``GITHUB_STEP_SUMMARY``.

File paths in annotations are relative to ``GITHUB_WORKSPACE`` (the repository root
on the runner), which GitHub needs to show the annotation on the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline import hookimpl
from pipeline.cioutputs import invalid_outputs, run_outputs
from pipeline.diagnostics import format_path
from pipeline.reportpath import check_report_path
from pipeline.workflowcommands import command, mask_values, output_entry

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.diagnostics import Diagnostic, Mark
    from pipeline.plan import Stage
    from pipeline.report import StepReport
    from pipeline.runner import RunResult, StageResult

logger = logging.getLogger("shipline")

#: Annotations of one type (error, warning) that one step can show.
MAX_ANNOTATIONS = 10
#: Maximum length in characters of an annotation message.
MAX_MESSAGE = 1000


def enabled(environ: Mapping[str, str]) -> bool:
    """Tell whether shipline runs in a GitHub Actions job (``GITHUB_ACTIONS=true``)."""
    return environ.get("GITHUB_ACTIONS", "").strip().lower() == "true"


class GitHubActionsReporter:
    """Writes workflow commands, outputs and the step summary of one command."""

    #: The ``::group::`` title is the stage line, so the terminal reporter omits its own.
    prints_stage_titles = True

    def __init__(self, config: Config, out: TextIO, environ: Mapping[str, str]) -> None:
        self.config = config
        self.out = out
        self.workspace = environ.get("GITHUB_WORKSPACE", "")
        self.output_file = environ.get("GITHUB_OUTPUT", "")
        self.summary_file = environ.get("GITHUB_STEP_SUMMARY", "")
        self.masked: set[str] = set()
        self.counts: dict[str, int] = {}
        self.left_out: dict[str, int] = {}
        #: The token that turns commands back on while they are stopped, else None.
        self.stop_token: str | None = None
        self.group_open = False
        self.closed = False

    # -- writing ------------------------------------------------------------------------

    def emit(self, lines: Sequence[str]) -> None:
        """Write workflow command lines, after any new mask and with commands turned on."""
        masks = self._new_masks()
        if not masks and not lines:
            return
        batch = masks + list(lines)
        if self.stop_token is not None:
            batch = [f"::{self.stop_token}::", *batch, command("stop-commands", self.stop_token)]
        self._write(batch)

    def _new_masks(self) -> list[str]:
        lines: list[str] = []
        for secret in sorted(self.config.masker.secrets - self.masked):
            self.masked.add(secret)
            lines.extend(command("add-mask", value) for value in mask_values(secret))
        return lines

    def _write(self, lines: Sequence[str]) -> None:
        if self.closed:
            return
        try:
            for line in lines:
                print(line, file=self.out)
            self.out.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            self.closed = True
            logger.warning("GitHub Actions output stopped: %s; the run goes on", exc)

    def annotation(self, kind: str, message: str, mark: Mark | None = None,
                   title: str = "") -> str | None:
        """Format an annotation, or return None once ``kind`` reached its limit."""
        # Imported here: pipeline.junit imports xml.sax.saxutils, which imports
        # urllib.request and so ssl, and `shipline validate` must start fast.
        from pipeline.junit import clean_line

        count = self.counts.get(kind, 0)
        if count >= MAX_ANNOTATIONS:
            self.left_out[kind] = self.left_out.get(kind, 0) + 1
            return None
        self.counts[kind] = count + 1

        properties = {"title": clean_line(title, 200, mask=self.config.masker.mask)}
        if mark is not None:
            properties["file"] = self.relative_file(mark.file)
            properties["line"] = str(mark.line)
            properties["col"] = str(mark.column)
        text = clean_line(message, MAX_MESSAGE, mask=self.config.masker.mask)
        return command(kind, text, properties)

    def relative_file(self, file: str) -> str:
        """Return ``file`` relative to the workspace, or as given when outside it."""
        if not self.workspace:
            return file
        path = Path(self.config.invocation_dir, file).absolute()
        try:
            return path.relative_to(Path(self.workspace).absolute()).as_posix()
        except ValueError:
            return file

    # -- hooks --------------------------------------------------------------------------

    @hookimpl
    def shipline_invalid_pipeline(self, diagnostics: Sequence[Diagnostic]) -> None:
        lines = []
        for diagnostic in diagnostics:
            message = diagnostic.message
            if diagnostic.path:
                message = f"{format_path(diagnostic.path)}: {message}"
            if diagnostic.hint:
                message += f" ({diagnostic.hint})"
            line = self.annotation("error", message, diagnostic.mark, "invalid pipeline")
            if line is not None:
                lines.append(line)
        self.emit(lines)
        self._report_left_out()
        self.write_outputs(invalid_outputs(self.config))

    @hookimpl
    def shipline_run_start(self) -> None:
        import secrets

        self.emit([])
        token = f"shipline-{secrets.token_hex(16)}"
        self._write([command("stop-commands", token)])
        self.stop_token = token

    @hookimpl(tryfirst=True)
    def shipline_stage_start(self, stage: Stage) -> None:
        where = f" -> {stage.environment}" if stage.environment else ""
        self.emit([command("group", f"stage {stage.name}{where}")])
        self.group_open = True

    @hookimpl(trylast=True)
    def shipline_step_report(self, report: StepReport, context: RunContext) -> None:
        if not report.outcome.is_failure:
            return
        stage = context.stage.name if context.stage else "?"
        kind = "rollback" if report.rollback else report.kind
        title = f"{kind} '{report.name}' in stage '{stage}': {report.outcome.value}"
        line = self.annotation("error", report.message or report.outcome.value, report.mark,
                               title)
        self.emit([line] if line is not None else [])

    @hookimpl(trylast=True)
    def shipline_stage_finish(self, result: StageResult) -> None:
        if self.group_open:
            self.group_open = False
            self.emit([command("endgroup")])

    @hookimpl(trylast=True)
    def shipline_run_finish(self, result: RunResult, context: RunContext) -> None:
        lines = []
        for warning in result.warnings:
            line = self.annotation("warning", warning, title="notification failed")
            if line is not None:
                lines.append(line)
        token, self.stop_token = self.stop_token, None
        self._write([f"::{token}::"] if token else [])
        self.emit(lines)
        self._report_left_out()

        outputs = run_outputs(result, context)
        self.write_outputs(outputs)
        self.write_summary(result, outputs)

    def _report_left_out(self) -> None:
        for kind, count in sorted(self.left_out.items()):
            logger.warning("%d more %s annotation(s) left out: GitHub shows at most %d per "
                           "step; the log above has them all", count, kind, MAX_ANNOTATIONS)
        self.left_out.clear()

    # -- files --------------------------------------------------------------------------

    def write_outputs(self, outputs: Mapping[str, str]) -> None:
        """Append ``outputs`` to the ``GITHUB_OUTPUT`` file; log what cannot be written."""
        if not self.output_file:
            logger.info("GITHUB_OUTPUT is not set: step outputs are not written")
            return
        entries = []
        for name, value in outputs.items():
            try:
                entries.append(output_entry(name, value))
            except ValueError as exc:
                logger.error("step output left out: %s", exc)
        self._append(self.output_file, "GITHUB_OUTPUT", "".join(entries))

    def write_summary(self, result: RunResult, outputs: dict[str, str]) -> None:
        """Append the run's summary to ``GITHUB_STEP_SUMMARY`` within GitHub's size limit."""
        from pipeline.stepsummary import MAX_SUMMARY_BYTES, render_summary

        if not self.summary_file:
            logger.info("GITHUB_STEP_SUMMARY is not set: no step summary is written")
            return
        try:
            used = os.path.getsize(self.summary_file)
        except OSError:
            used = 0
        text = render_summary(result, outputs, mask=self.config.masker.mask,
                              budget=MAX_SUMMARY_BYTES - used,
                              junit_report=bool(self.config.option("junitxml")))
        if not text:
            logger.warning("step summary left out: %s already contains %d bytes of GitHub's "
                           "limit of %d", self.summary_file, used, MAX_SUMMARY_BYTES)
            return
        self._append(self.summary_file, "GITHUB_STEP_SUMMARY", text)

    @staticmethod
    def _append(path: str, variable: str, text: str) -> None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        except OSError as exc:
            # The run has happened; a file the runner gave us that cannot be written
            # must not turn it into a crash.
            logger.error("could not write %s (%s): %s", variable, path, exc)


@hookimpl
def shipline_configure(config: Config) -> None:
    if not enabled(os.environ):
        return
    if config.option("command") == "run":
        # Checked before the run, because the files are written only after it.
        for variable in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
            if os.environ.get(variable):
                check_report_path(Path(os.environ[variable]), f"the {variable} file")
    # `--events -` owns standard output, so commands go to standard error with the
    # terminal progress. The runner reads commands from both streams.
    out = config.stderr if config.option("events") == "-" else config.stdout
    reporter = GitHubActionsReporter(config, out, os.environ)
    config.pluginmanager.register(reporter, name="githubactionsreporter")


@hookimpl
def shipline_unconfigure(config: Config) -> None:
    reporter = config.pluginmanager.get_plugin("githubactionsreporter")
    if reporter is not None:
        config.pluginmanager.unregister(reporter)
