"""Running a scan step: read the reports it names, apply its policy, report the verdict.

:mod:`pipeline.builtin.scan` imports this module when a scan step runs, so that a
start that runs no scan does not import the report readers.
"""

from __future__ import annotations

import datetime
import glob
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.report import Outcome, StepReport
from pipeline.scan.detect import read_report
from pipeline.scan.finding import Finding
from pipeline.scan.formats import ANY_FORMAT, FORMAT_TITLES
from pipeline.scan.policy import ScanPolicy, evaluate
from pipeline.scan.reader import ReportError
from pipeline.scan.summary import ReadReport, details, message

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.plan import Step

logger = logging.getLogger("shipline")


def run_scan_step(step: Step, context: RunContext) -> StepReport:
    """Read the step's reports and return its report: FAILED when the policy blocks.

    Raises ReportError for a report that is missing, malformed or of another format.
    """
    policy = ScanPolicy.from_options(step.options)
    expected = None if step.type == ANY_FORMAT else step.type
    findings, reports = read_reports(report_patterns(step), context.plan.file.parent, expected)

    today = datetime.datetime.fromtimestamp(context.clock.time(), tz=datetime.timezone.utc).date()
    verdict = evaluate(findings, policy, today)
    for entry in verdict.expired:
        logger.warning("step %s: the ignore entry for %s expired on %s; its findings count "
                       "again", step.id, entry.id, entry.expires)

    logger.info("step %s: %d findings counted, %d over the threshold", step.id,
                len(verdict.counted), len(verdict.blocking))
    return StepReport(
        step.id, step.name, step.kind,
        Outcome.FAILED if verdict.blocked else Outcome.PASSED,
        message=message(verdict, policy),
        details=details(reports, verdict, policy),
        data={
            "counts": {severity.label: count for severity, count in verdict.counts.items()},
            "blocking_findings": [finding.to_json() for finding in verdict.blocking],
        },
    )


def report_patterns(step: Step) -> list[str]:
    value = step.options["report"]
    return [value] if isinstance(value, str) else [str(item) for item in value]


def read_reports(
    patterns: Sequence[str], folder: Path, expected: str | None
) -> tuple[list[Finding], list[ReadReport]]:
    """Read every file the patterns match, in pattern order, then sorted by name.

    A file that several patterns match (a path and a glob, or one path twice) is read
    once, under the name of its first match, so it is listed once in the details.
    Raises ReportError when a pattern matches no file, naming the pattern and the
    folder it was resolved in.
    """
    findings: list[Finding] = []
    reports: list[ReadReport] = []
    seen: set[Path] = set()
    for pattern in patterns:
        for path, display in _matches(pattern, folder):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            found_format, found = read_report(path, display, expected)
            logger.info("read %s report %s: %d findings", found_format, display, len(found))
            findings.extend(found)
            reports.append(ReadReport(display, FORMAT_TITLES[found_format], len(found)))
    return findings, reports


#: Characters that make a ``report`` entry a glob pattern rather than a file name.
_GLOB_CHARACTERS = "*?["


def _matches(pattern: str, folder: Path) -> list[tuple[Path, str]]:
    """Return the files ``pattern`` names, with the name to show for each."""
    full = Path(pattern) if Path(pattern).is_absolute() else folder / pattern
    if not any(character in pattern for character in _GLOB_CHARACTERS):
        if not full.exists():
            raise ReportError(f"{pattern}: report file not found in {folder}; check that the "
                              "scanner ran and wrote it there")
        return [(full, pattern)]

    # root_dir keeps glob characters in the folder's own name from being expanded.
    names = glob.glob(pattern, root_dir=folder, recursive=True)
    files = sorted(path for path in (folder / name for name in names) if path.is_file())
    if not files:
        raise ReportError(f"{pattern}: no report file matches in {folder}; check that the "
                          "scanner ran and wrote it there")
    return [(path, _display(path, folder)) for path in files]


def _display(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
