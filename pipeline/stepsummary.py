"""The GitHub Actions step summary of a run: a Markdown table of stages and steps, charts.

GitHub shows the ``GITHUB_STEP_SUMMARY`` file of each step on the run's page and
rejects a file over 1 MiB ("Adding a job summary" in GitHub's workflow commands
documentation). :func:`render_summary` keeps within a byte budget: it first leaves out
the charts, then the table rows that do not fit, and adds a note on what it left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.cioutputs import OUTCOMES
from pipeline.durations import format_duration
from pipeline.junit import clean_line
from pipeline.mermaid import Chart, canary_weights, timeline
from pipeline.report import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipeline.report import StepReport
    from pipeline.runner import RunResult

#: GitHub's size limit of one step's summary file, in bytes.
MAX_SUMMARY_BYTES = 1024 * 1024
#: Maximum length in characters of the message in one table cell.
MAX_CELL = 200

_HEADER = ["| Stage | Step | Outcome | Duration | Message |", "| --- | --- | --- | --- | --- |"]


def render_summary(
    result: RunResult,
    outputs: dict[str, str],
    *,
    mask: Callable[[str], str],
    budget: int = MAX_SUMMARY_BYTES,
    junit_report: bool = False,
) -> str:
    """Render the summary of ``result`` in at most ``budget`` bytes of UTF-8.

    ``outputs`` are the run's CI outputs (see :mod:`pipeline.cioutputs`). ``mask``
    hides secrets in every name and message. ``junit_report`` is true when the run
    writes a JUnit report. The note on left-out rows then points to that report, and
    otherwise suggests ``--junitxml``. Returns an empty string when not even the heading fits.
    """
    heading = _heading(result, outputs, mask)
    rows = _rows(result, mask)
    charts = _charts(result, mask)

    full = _join(heading, rows, [chart.text for chart in charts])
    if _size(full) <= budget:
        return full

    note = "_Charts left out to keep the summary under GitHub's size limit._"
    complete = "the JUnit report has every step" if junit_report else \
        "run with --junitxml PATH for a report of every step"
    for row_count in range(len(rows), -1, -1):
        cut = len(rows) - row_count
        notes = [note]
        if cut:
            notes.append(f"_{cut} more row(s) left out to keep the summary under GitHub's "
                         f"size limit; {complete}._")
        text = _join(heading, rows[:row_count], notes)
        if _size(text) <= budget:
            return text
    return ""


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _join(heading: list[str], rows: list[str], tail: list[str]) -> str:
    parts = ["\n".join(heading), "\n".join([*_HEADER, *rows]), *tail]
    return "\n\n".join(parts) + "\n"


def _heading(result: RunResult, outputs: dict[str, str], mask: Callable[[str], str]) -> list[str]:
    code = result.exit_code
    facts = [f"**{OUTCOMES[code]}** (exit {int(code)}) in {format_duration(result.duration)}"]
    if outputs.get("deployed-version"):
        facts.append(f"deployed version `{_code_text(outputs['deployed-version'])}`")
    if outputs.get("rolled-back") == "true":
        facts.append("rolled back")
    lines = [f"## shipline: {_cell(mask(result.plan.name))}", "", ", ".join(facts)]
    for warning in result.warnings:
        lines.append(f"- warning: {_cell(mask(warning))}")
    return lines


def _rows(result: RunResult, mask: Callable[[str], str]) -> list[str]:
    rows = []
    for stage in result.stages:
        name = _cell(mask(stage.stage.name))
        if stage.skipped_reason is not None and not stage.reports:
            rows.append(f"| {name} | | skipped | | {_cell(mask(stage.skipped_reason))} |")
        rows.extend(_row(name, report, mask) for report in stage.reports)
    return rows


def _row(stage: str, report: StepReport, mask: Callable[[str], str]) -> str:
    step = _cell(mask(report.name or report.step_id))
    if report.rollback:
        step = f"rollback: {step}"
    outcome = report.outcome.value.replace("_", " ")
    if report.outcome.is_failure:
        outcome = f"**{outcome}**"
    duration = "" if report.outcome is Outcome.SKIPPED else format_duration(report.duration)
    return f"| {stage} | {step} | {outcome} | {duration} | {_cell(mask(report.message))} |"


def _charts(result: RunResult, mask: Callable[[str], str]) -> list[Chart]:
    charts = []
    drawn = timeline(result, mask)
    if drawn is not None:
        charts.append(drawn)
    charts.extend(canary_weights(result, mask))
    return charts


def _cell(text: str) -> str:
    """Make ``text`` safe inside a table cell: one line, no HTML, ``|`` escaped."""
    line = clean_line(text, MAX_CELL)
    return (line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|"))


def _code_text(text: str) -> str:
    return clean_line(text, MAX_CELL).replace("`", "'")
