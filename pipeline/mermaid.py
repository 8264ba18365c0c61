"""Mermaid charts of a run for the GitHub step summary: a timeline and canary weights.

GitHub renders a fenced ``mermaid`` block in Markdown as a chart. Labels are reduced to
characters that cannot end a gantt task name or a chart title (``:``, ``;``, ``#``,
``"``, ``%`` and line breaks become spaces). Each chart is left out, and the caller
writes a note instead, when it would have more than :data:`MAX_TASKS` tasks or
:data:`MAX_POINTS` points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.report import Outcome

if TYPE_CHECKING:
    from pipeline.report import StepReport
    from pipeline.runner import RunResult

# NOTE: both limits are estimates of what stays readable in a rendered chart, not
# limits that GitHub documents.
#: Maximum number of steps in the timeline chart.
MAX_TASKS = 200
#: Maximum number of weight changes in one canary chart.
MAX_POINTS = 100
#: Maximum length in characters of a label.
MAX_LABEL = 60

_UNSAFE = re.compile(r"[:;#\"%\r\n\t`]+")


@dataclass(frozen=True)
class Chart:
    """A fenced Mermaid block, or a one-line note saying why the chart was left out."""

    text: str
    drawn: bool


def label(text: str, fallback: str) -> str:
    """Return ``text`` reduced to a safe one-line label, or ``fallback`` when empty."""
    cleaned = " ".join(_UNSAFE.sub(" ", text).split())[:MAX_LABEL].strip()
    return cleaned or fallback


def timeline(result: RunResult, mask: Callable[[str], str]) -> Chart | None:
    """Draw a gantt chart of every step and rollback that ran, grouped by stage.

    ``mask`` hides secrets in stage and step names. Returns None when no step has a
    known start time. A failed step is drawn as ``crit`` (red), a passed one as
    ``done``. Times are wall-clock milliseconds.
    """
    sections: list[tuple[str, list[str]]] = []
    count = 0
    for stage in result.stages:
        tasks = [_task(report, mask) for report in stage.reports if _has_time(report)]
        if tasks:
            sections.append((label(mask(stage.stage.name), "stage"), tasks))
            count += len(tasks)
    if not sections:
        return None
    if count > MAX_TASKS:
        return Chart(f"_The timeline of {count} steps is left out: a chart shows at most "
                     f"{MAX_TASKS}._", drawn=False)

    lines = ["```mermaid", "gantt", "    title Timeline", "    dateFormat x",
             "    axisFormat %H:%M:%S"]
    for name, tasks in sections:
        lines.append(f"    section {name}")
        lines.extend(f"    {task}" for task in tasks)
    lines.append("```")
    return Chart("\n".join(lines), drawn=True)


def _has_time(report: StepReport) -> bool:
    return bool(report.outcome is not Outcome.SKIPPED and math.isfinite(report.started_at)
                and report.started_at > 0)


def _task(report: StepReport, mask: Callable[[str], str]) -> str:
    name = label(mask(report.name), "step")
    if report.rollback:
        name = f"rollback {name}"
    start = int(report.started_at * 1000)
    duration = report.duration if math.isfinite(report.duration) else 0.0
    end = start + max(int(duration * 1000), 1)
    tag = "crit" if report.outcome.is_failure else "done"
    return f"{name} :{tag}, {start}, {end}"


def canary_weights(result: RunResult, mask: Callable[[str], str]) -> list[Chart]:
    """Draw one line chart of traffic weight over time per deploy step that recorded one.

    ``mask`` hides secrets in the title.
    The points are the ``weights`` timeline of the step's report data: each entry's
    ``time`` (wall-clock seconds) and ``weight`` (percent), rollbacks included.
    """
    charts = []
    for stage in result.stages:
        for report in stage.reports:
            points = _points(report.data.get("weights")) if not report.rollback else []
            if points:
                title = f"Canary weight of {report.name} in stage {stage.stage.name}"
                charts.append(_weight_chart(label(mask(title), "Canary weight"), points))
    return charts


def _points(timeline: object) -> list[tuple[float, float]]:
    if not isinstance(timeline, Sequence):
        return []
    points = []
    for entry in timeline:
        if not isinstance(entry, dict):
            continue
        time, weight = entry.get("time"), entry.get("weight")
        if isinstance(time, (int, float)) and isinstance(weight, (int, float)):
            points.append((float(time), float(weight)))
    return points


def _weight_chart(title: str, points: Sequence[tuple[float, float]]) -> Chart:
    if len(points) > MAX_POINTS:
        return Chart(f"_{title}: {len(points)} weight changes are left out: a chart shows "
                     f"at most {MAX_POINTS}._", drawn=False)

    start = points[0][0]
    seconds = ", ".join(f'"+{_elapsed(time - start)}"' for time, _ in points)
    weights = ", ".join(f"{weight:g}" for _, weight in points)
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "time since the first change" [{seconds}]',
        '    y-axis "weight (%)" 0 --> 100',
        f"    line [{weights}]",
        "```",
    ]
    return Chart("\n".join(lines), drawn=True)


def _elapsed(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "0s"
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"
