"""GitLab CI output: collapsible log sections per stage and the ``--dotenv`` report.

Sections are written when the ``GITLAB_CI`` variable is ``true``. Each stage that runs
gets a section, collapsed by default, in the format of GitLab's "Custom collapsible
sections" (CI/CD job logs documentation)::

    ESC[0Ksection_start:UNIX_TIME:NAME[collapsed=true]\\rESC[0KHEADER
    ...
    ESC[0Ksection_end:UNIX_TIME:NAME\\rESC[0K

A section name may contain only ASCII letters, digits, ``_``, ``.`` and ``-``, so
other characters of a stage name become ``_``, and a number keeps the names of two
stages apart. A stage that fails also gets one line after its section, so that the
failure shows without opening it.

``--dotenv PATH`` (any CI, or none) writes the run's outputs as a dotenv report for
``artifacts:reports:dotenv``; :mod:`pipeline.dotenv` describes the rules.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline import hookimpl
from pipeline.cioutputs import invalid_outputs, run_outputs
from pipeline.reportpath import check_report_path

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Stage
    from pipeline.runner import RunResult, StageResult

logger = logging.getLogger("shipline")

_NOT_SECTION_CHARACTER = re.compile(r"[^A-Za-z0-9_.-]")


def enabled(environ: Mapping[str, str]) -> bool:
    """Tell whether shipline runs in a GitLab CI job (``GITLAB_CI=true``)."""
    return environ.get("GITLAB_CI", "").strip().lower() == "true"


def section_name(number: int, stage: str) -> str:
    """Return the section name of the ``number``-th stage, such as ``shipline_2_deploy``."""
    return f"shipline_{number}_{_NOT_SECTION_CHARACTER.sub('_', stage)}"


def section_start(name: str, timestamp: int, header: str) -> str:
    """Format the line that opens collapsed section ``name`` with ``header`` as its title."""
    return f"\x1b[0Ksection_start:{timestamp}:{name}[collapsed=true]\r\x1b[0K{header}"


def section_end(name: str, timestamp: int) -> str:
    """Format the line that closes section ``name``."""
    return f"\x1b[0Ksection_end:{timestamp}:{name}\r\x1b[0K"


class GitLabSections:
    """Writes a collapsible section around each stage that runs."""

    #: The section header is the stage line, so the terminal reporter omits its own.
    prints_stage_titles = True

    def __init__(self, config: Config, out: TextIO) -> None:
        self.config = config
        self.out = out
        self.number = 0
        self.open: str | None = None
        self.closed = False

    def write(self, line: str) -> None:
        if self.closed:
            return
        try:
            print(line, file=self.out, flush=True)
        except (BrokenPipeError, ValueError, OSError) as exc:
            self.closed = True
            logger.warning("GitLab section output stopped: %s; the run goes on", exc)

    def now(self) -> int:
        return int(self.config.clock.time())

    @hookimpl(tryfirst=True)
    def shipline_stage_start(self, stage: Stage) -> None:
        self.number += 1
        self.open = section_name(self.number, stage.name)
        where = f" -> {stage.environment}" if stage.environment else ""
        self.write(section_start(self.open, self.now(), f"stage {stage.name}{where}"))

    @hookimpl(trylast=True)
    def shipline_stage_finish(self, stage: Stage, result: StageResult) -> None:
        if self.open is None:
            return
        self.write(section_end(self.open, self.now()))
        self.open = None
        if result.outcome.is_failure:
            from pipeline.junit import clean_line

            failed = [r for r in result.reports if r.outcome.is_failure]
            detail = f": {failed[0].name}: {failed[0].message}" if failed else ""
            self.write(clean_line(f"stage {stage.name}: {result.outcome.value}{detail}"))


class DotenvReporter:
    """Writes the run's outputs to ``--dotenv PATH`` when the command ends."""

    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.config = config

    @hookimpl
    def shipline_invalid_pipeline(self) -> None:
        self.write(invalid_outputs(self.config))

    @hookimpl
    def shipline_run_finish(self, result: RunResult, context: RunContext) -> None:
        self.write(run_outputs(result, context))

    def write(self, outputs: Mapping[str, str]) -> None:
        """Write the dotenv report; log each output left out and a file that cannot be written."""
        from pipeline.dotenv import render_dotenv

        report = render_dotenv(outputs)
        for problem in report.problems:
            logger.error("%s", problem)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(report.text, encoding="utf-8", newline="\n")
        except OSError as exc:
            # The run has happened; losing the report must not turn it into a crash.
            logger.error("could not write the dotenv report %s: %s", self.path, exc)
            return
        logger.info("wrote dotenv report %s", self.path)


@hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dotenv", metavar="PATH",
        help="write the run's outputs (SHIPLINE_EXIT_CODE, SHIPLINE_OUTCOME, "
        "SHIPLINE_DEPLOYED_VERSION...) to PATH as a dotenv file for GitLab's "
        "artifacts:reports:dotenv",
    )


@hookimpl
def shipline_configure(config: Config) -> None:
    path = config.option("dotenv")
    if path:
        check_report_path(Path(path), "--dotenv")
        config.pluginmanager.register(DotenvReporter(Path(path), config),
                                      name="dotenvreporter")
    if config.option("command") == "run" and enabled(os.environ):
        out = config.stderr if config.option("events") == "-" else config.stdout
        config.pluginmanager.register(GitLabSections(config, out), name="gitlabsections")


@hookimpl
def shipline_unconfigure(config: Config) -> None:
    for name in ("dotenvreporter", "gitlabsections"):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
