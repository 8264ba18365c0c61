"""``--sarif PATH``: write the findings over the threshold of every scan step as SARIF 2.1.0.

The file is written when the run ends, also when a scan blocked it, so a CI job can
upload it to GitHub code scanning or GitLab. A run without scan steps writes a log
with no results. See :mod:`pipeline.scan.sarifout` for the format.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import __version__, hookimpl
from pipeline.reportpath import check_report_path

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.report import StepReport
    from pipeline.runner import RunResult
    from pipeline.scan.sarifout import ScanResult

logger = logging.getLogger("shipline")

REPORTER_NAME = "sarifreporter"


class SarifReporter:
    """Collects the blocking findings of scan steps and writes them when the run ends."""

    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.config = config
        self.results: list[ScanResult] = []

    @hookimpl
    def shipline_step_report(self, report: StepReport) -> None:
        from pipeline.scan.finding import Finding
        from pipeline.scan.sarifout import ScanResult

        if report.kind != "scan" or "blocking_findings" not in report.data:
            return
        findings = [Finding.from_json(item) for item in report.data["blocking_findings"]]
        self.results.append(ScanResult(report.step_id, report.name, findings))

    @hookimpl
    def shipline_run_finish(self, result: RunResult) -> None:
        from pipeline.scan.sarifout import LEFT_OUT_PROPERTY, render_sarif, write_sarif

        log = render_sarif(self.results, version=__version__, mask=self.config.masker.mask)
        try:
            write_sarif(self.path, log)
        except OSError as exc:
            # The run has happened; losing the report must not turn it into a crash.
            logger.error("could not write the SARIF report %s: %s", self.path, exc)
            return
        run = log["runs"][0]
        logger.info("wrote SARIF report %s with %d results", self.path, len(run["results"]))
        left_out = run.get("properties", {}).get(LEFT_OUT_PROPERTY, 0)
        if left_out:
            logger.warning("SARIF report %s: %d less severe findings left out, because GitHub "
                           "code scanning rejects more than %d results", self.path, left_out,
                           len(run["results"]))


@hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sarif", metavar="PATH",
        help="write the findings over the threshold of every scan step to PATH as "
        "SARIF 2.1.0, for GitHub code scanning or GitLab",
    )


@hookimpl
def shipline_configure(config: Config) -> None:
    path = config.option("sarif")
    if path:
        check_report_path(Path(path), "--sarif")
        config.pluginmanager.register(SarifReporter(Path(path), config), name=REPORTER_NAME)


@hookimpl
def shipline_unconfigure(config: Config) -> None:
    reporter = config.pluginmanager.get_plugin(REPORTER_NAME)
    if isinstance(reporter, SarifReporter):
        config.pluginmanager.unregister(reporter)
