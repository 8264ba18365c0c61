"""``--junitxml PATH``: write the run as JUnit XML when it finishes.

Stages become ``<testsuite>`` elements and steps (rollbacks included) ``<testcase>``
elements; see :mod:`pipeline.junit` for the format and its limits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import hookimpl
from pipeline.reportpath import check_report_path

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.runner import RunResult

logger = logging.getLogger("shipline")


class JUnitReporter:
    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.config = config

    @hookimpl
    def shipline_run_finish(self, result: RunResult) -> None:
        from pipeline.junit import SuiteRecord, write_junit

        suites = [
            SuiteRecord(stage.stage.name, stage.reports, stage.skipped_reason)
            for stage in result.stages
        ]
        try:
            write_junit(self.path, result.plan.name, suites, mask=self.config.masker.mask,
                        warnings=result.warnings)
        except OSError as exc:
            # The run has happened; losing the report must not turn it into a crash.
            logger.error("could not write the JUnit report %s: %s", self.path, exc)
            return
        logger.info("wrote JUnit report %s", self.path)


@hookimpl
def shipline_configure(config: Config) -> None:
    path = config.option("junitxml")
    if path:
        check_report_path(Path(path), "--junitxml")
        config.pluginmanager.register(JUnitReporter(Path(path), config), name="junitreporter")
