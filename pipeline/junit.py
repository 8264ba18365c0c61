"""JUnit XML report of a run: the pipeline is ``<testsuites>``, a stage is a ``<testsuite>``.

Every step report, rollbacks included, becomes one ``<testcase>`` whose ``file`` and
``line`` point at the step in the pipeline file. GitLab reads ``testcase/@file``
(https://docs.gitlab.com/ci/testing/unit_test_reports/). Jenkins' ``junit-10.xsd``
(jenkinsci/xunit-plugin) does not define ``file`` and ``line``; everything else in the
output is valid against that schema, which is why ``<testsuites>`` carries no
``skipped`` count (the schema has none there; each ``<testsuite>`` has its own).

The XML is written by hand instead of with ElementTree or junit-xml. ElementTree
writes a carriage return in text as a raw byte, which an XML 1.0 parser must read
as a line feed (end-of-line handling). junit-xml 1.9 drops carriage returns and adds
a ``disabled`` attribute that the schema rejects. Here a carriage return is written
as ``&#13;`` so that it survives a round trip, and so are line feeds and tabs inside
attribute values.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

from pipeline.diagnostics import Mark
from pipeline.report import Outcome, StepReport

logger = logging.getLogger("shipline")

#: Maximum length in characters of a one-line attribute value (names, messages).
MESSAGE_LIMIT = 500
#: Default maximum length in characters of a text body (details, captured output).
DEFAULT_MAX_TEXT = 64_000

# CSI sequences (colours, cursor movement), OSC sequences ended by BEL or ST (window
# titles, hyperlinks) and the other two- or three-character escape sequences.
_ANSI_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
)
# Characters outside the XML 1.0 ``Char`` production. C1 controls (U+0080-U+009F) are
# allowed by XML 1.0 and are kept.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_TEXT_ENTITIES = {"\r": "&#13;"}
_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}


def _no_mask(text: str) -> str:
    return text


@dataclass(frozen=True)
class SuiteRecord:
    """The reports of one stage, in run order, as the JUnit reporter receives them."""

    name: str
    #: Step and rollback reports in the order they ran.
    reports: Sequence[StepReport]
    #: Why the whole stage did not run, for example "needs 'build', which failed".
    skipped_reason: str | None = None


@dataclass(frozen=True)
class _Result:
    """The ``<skipped>``, ``<failure>`` or ``<error>`` child of a test case."""

    tag: str
    message: str
    type: str | None
    text: str


@dataclass(frozen=True)
class _Case:
    """One ``<testcase>`` with its texts already cleaned."""

    name: str
    duration: float
    #: The step's position in the pipeline file as (file, line), when known.
    location: tuple[str, int] | None
    result: _Result | None
    output: str


@dataclass(frozen=True)
class _Cleaner:
    """The masking and size limits that every text of one report goes through."""

    mask: Callable[[str], str]
    max_text: int

    def text(self, text: str) -> str:
        return clean_text(text, self.max_text, mask=self.mask)

    def line(self, text: str) -> str:
        return clean_line(text, MESSAGE_LIMIT, mask=self.mask)


class _UniqueNames:
    """Test case names already used in one file.

    GitLab uses only the first of several test cases with the same name and ignores the
    others, so a repeated name gets a `` (2)``, `` (3)`` ... suffix.
    """

    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, name: str) -> str:
        unique = name
        number = 2
        while unique in self._used:
            unique = f"{name} ({number})"
            number += 1

        self._used.add(unique)
        return unique


def clean_text(text: str, limit: int, *, mask: Callable[[str], str] = _no_mask) -> str:
    """Make ``text`` safe for an XML report and return at most ``limit`` characters.

    ``mask`` hides secrets. It runs before the ANSI escape sequences and the characters
    that XML 1.0 forbids are removed, and again afterwards, because a secret split by
    a colour code only appears once the code is gone. So ``mask`` must be idempotent.
    Tabs, line feeds, carriage returns and non-ASCII text are kept. Longer text keeps
    its start and its end, because a failing command usually prints its error last.
    In the middle, a marker gives the number of characters cut.
    An escape sequence is removed whole, as a terminal would consume it: ``ESC`` and
    the next character, such as ``ESC 7``, count as one sequence.
    Raises ValueError if ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")

    text = mask(text)
    text = _ANSI_ESCAPE.sub("", text)
    text = _NOT_XML_CHAR.sub("", text)
    text = mask(text)

    return _truncate(text, limit, "\n... [truncated {count} characters] ...\n", keep_end=True)


def clean_line(
    text: str, limit: int = MESSAGE_LIMIT, *, mask: Callable[[str], str] = _no_mask
) -> str:
    """Clean ``text`` like :func:`clean_text`, then fold it onto one line.

    Every run of whitespace, line breaks included, becomes one space. A longer line
    keeps its start, followed by a marker that gives the number of characters cut.
    Raises ValueError if ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")

    text = clean_text(text, len(text), mask=mask)
    line = " ".join(text.split())

    return _truncate(line, limit, " ... [truncated {count} characters]", keep_end=False)


def _truncate(text: str, limit: int, marker: str, *, keep_end: bool) -> str:
    """Cut ``text`` to at most ``limit`` characters, the marker included.

    The marker is sized for the largest possible count, so the result never exceeds
    ``limit``. When not even the marker fits, the text is cut without one.
    """
    if len(text) <= limit:
        return text

    kept = limit - len(marker.format(count=len(text)))
    if kept <= 0:
        return text[:limit]

    notice = marker.format(count=len(text) - kept)
    if not keep_end:
        return text[:kept] + notice

    head = kept // 2
    return text[:head] + notice + text[len(text) - (kept - head) :]


def render_junit(
    pipeline_name: str,
    suites: Sequence[SuiteRecord],
    *,
    mask: Callable[[str], str] = _no_mask,
    max_text: int = DEFAULT_MAX_TEXT,
    warnings: Sequence[str] = (),
) -> bytes:
    """Render the JUnit XML report of a run as UTF-8 bytes with an XML declaration.

    ``mask`` hides secrets in every name, message and text (see :func:`clean_text`).
    ``max_text`` is the maximum length in characters of each text body: the details of
    a failure and the captured output. ``warnings`` (failed notifications) go into the
    ``<system-err>`` of a last ``<testsuite name="warnings">`` without test cases, so
    they show in the report without counting as failed tests. Raises ValueError if
    ``max_text`` is negative.
    """
    if max_text < 0:
        raise ValueError(f"max_text must be 0 or more, got {max_text}")

    cleaner = _Cleaner(mask, max_text)
    names = _UniqueNames()
    pipeline = cleaner.line(pipeline_name)
    cases_by_suite = [(suite, _suite_cases(suite, cleaner, names)) for suite in suites]

    all_cases = [case for _, cases in cases_by_suite for case in cases]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        _start_tag("testsuites", [("name", pipeline), *_counts(all_cases, total=True)]) + ">",
    ]
    for suite, cases in cases_by_suite:
        lines.extend(_render_suite(pipeline, suite, cases, cleaner))
    if warnings:
        attributes = [("name", "warnings"), *_counts([])]
        lines.append(f"  {_start_tag('testsuite', attributes)}>")
        lines.append("    " + _text_element("system-err", [],
                                            cleaner.text("\n".join(warnings))))
        lines.append("  </testsuite>")
    lines.append("</testsuites>")

    return ("\n".join(lines) + "\n").encode("utf-8")


def write_junit(
    path: Path,
    pipeline_name: str,
    suites: Sequence[SuiteRecord],
    *,
    mask: Callable[[str], str] = _no_mask,
    max_text: int = DEFAULT_MAX_TEXT,
    warnings: Sequence[str] = (),
) -> None:
    """Write the report of :func:`render_junit` to ``path``, replacing it atomically.

    Missing parent directories are created. The report goes to a temporary file in the
    same directory first, so a reader sees either the old file or the whole new one.
    The file gets mode 0644: secrets are masked, and CI jobs upload reports as artifacts.
    Raises OSError when the directory or the file cannot be written, and leaves no
    temporary file behind.
    """
    data = render_junit(pipeline_name, suites, mask=mask, max_text=max_text,
                        warnings=warnings)

    _write_atomic(path, data)
    logger.info("wrote JUnit report %s", path)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )

    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def _suite_cases(suite: SuiteRecord, cleaner: _Cleaner, names: _UniqueNames) -> list[_Case]:
    """Build the test cases of one stage.

    A stage skipped as a whole without any report gets one skipped test case named
    after the stage, so that CI still lists it. Otherwise the skip reason of the stage
    replaces the empty message of a skipped step.
    """
    if suite.skipped_reason is not None and not suite.reports:
        reason = cleaner.line(suite.skipped_reason) or Outcome.SKIPPED.value
        skipped = _Result("skipped", reason, None, "")
        name = names.claim(cleaner.line(suite.name) or "stage")
        return [_Case(name, 0.0, None, skipped, "")]

    return [_report_case(report, suite.skipped_reason, cleaner, names) for report in suite.reports]


def _report_case(
    report: StepReport, skipped_reason: str | None, cleaner: _Cleaner, names: _UniqueNames
) -> _Case:
    name = cleaner.line(report.name) or cleaner.line(report.step_id) or "step"
    if report.rollback:
        name = f"rollback: {name}"

    output = _with_measurements(report)
    if report.rollback and report.outcome is Outcome.PASSED:
        output = _rollback_summary(report) + output
    return _Case(
        name=names.claim(name),
        duration=report.duration,
        location=_location(report.mark, cleaner),
        result=_result(report, skipped_reason, cleaner),
        output=cleaner.text(output),
    )


def _rollback_summary(report: StepReport) -> str:
    """Return what a rollback that passed did (its message and details), for system-out.

    A rollback that failed has them in its failure element; one that passed would
    otherwise leave no trace in the report of what it restored.
    """
    lines = [line for line in (report.message, report.details.rstrip()) if line]
    return "".join(f"{line}\n" for line in lines)


def _with_measurements(report: StepReport) -> str:
    """Return the report's output followed by every analysis measurement it recorded.

    Measurements go to system-out so that a passed step, which has no failure text,
    still lists them; each line gives the time, verdict and message. A ``--break-glass``
    override comes first, for the same reason.
    """
    from pipeline.builtin.eventlog import analyses_in

    lines = _break_glass_lines(report)
    for analysis in analyses_in(report):
        lines.append(f"--- analysis '{analysis.name}': {analysis.verdict}: {analysis.message}")
        for number, measurement in enumerate(analysis.measurements, start=1):
            stamp = datetime.fromtimestamp(measurement.time, timezone.utc)
            lines.append(f"{number}. {stamp:%Y-%m-%dT%H:%M:%SZ} {measurement.verdict}: "
                         f"{measurement.message}")
        if analysis.action_message:
            lines.append(f"policy: {analysis.action_message}")
    if not lines:
        return report.output
    listing = "\n".join(lines) + "\n"
    return f"{report.output.rstrip()}\n{listing}" if report.output.strip() else listing


def _break_glass_lines(report: StepReport) -> list[str]:
    """Describe the ``--break-glass`` override in ``report.data``, if any, in one line."""
    override = report.data.get("break_glass")
    if not isinstance(override, Mapping):
        return []

    windows = [
        f"'{window.get('name')}' ({window.get('start')} to {window.get('end')})"
        for window in override.get("windows", [])
        if isinstance(window, Mapping)
    ]
    noun = "window" if len(windows) == 1 else "windows"
    return [f"break glass: deployed inside freeze {noun} {', '.join(windows)}; "
            f"reason: {override.get('reason')}"]


def _location(mark: Mark | None, cleaner: _Cleaner) -> tuple[str, int] | None:
    if mark is None:
        return None
    return (cleaner.line(mark.file), mark.line)


def _result(report: StepReport, skipped_reason: str | None, cleaner: _Cleaner) -> _Result | None:
    """Map the outcome of a report onto a JUnit result, or None when it passed.

    Every outcome other than passed, skipped and error is a failure, whatever its
    message. An empty message becomes the outcome value, such as "failed".
    """
    outcome = report.outcome
    if outcome is Outcome.PASSED:
        return None

    message = cleaner.line(report.message)
    if outcome is Outcome.SKIPPED:
        reason = message or cleaner.line(skipped_reason or "") or outcome.value
        return _Result("skipped", reason, None, cleaner.text(report.details))

    text = cleaner.text(report.details or report.message)
    if outcome is Outcome.ERROR:
        return _Result("error", message or outcome.value, "error", text)
    return _Result("failure", message or outcome.value, outcome.value, text)


def _render_suite(
    pipeline: str, suite: SuiteRecord, cases: Sequence[_Case], cleaner: _Cleaner
) -> list[str]:
    stage = cleaner.line(suite.name)
    attributes = [("name", stage), *_counts(cases)]
    timestamp = _timestamp(suite.reports, stage)
    if timestamp is not None:
        attributes.append(("timestamp", timestamp))

    classname = f"{pipeline}.{stage}"
    lines = [f"  {_start_tag('testsuite', attributes)}>"]
    for case in cases:
        lines.extend(f"  {line}" for line in _render_case(case, classname))
    lines.append("  </testsuite>")
    return lines


def _render_case(case: _Case, classname: str) -> list[str]:
    attributes = [("name", case.name), ("classname", classname), ("time", _seconds(case.duration))]
    if case.location is not None:
        file, line = case.location
        attributes += [("file", file), ("line", str(line))]

    children = []
    if case.result is not None:
        result_attributes = [("message", case.result.message)]
        if case.result.type is not None:
            result_attributes.append(("type", case.result.type))
        children.append(_text_element(case.result.tag, result_attributes, case.result.text))
    if case.output:
        children.append(_text_element("system-out", [], case.output))

    start = _start_tag("testcase", attributes)
    if not children:
        return [f"  {start}/>"]
    return [f"  {start}>", *(f"    {child}" for child in children), "  </testcase>"]


def _counts(cases: Sequence[_Case], *, total: bool = False) -> list[tuple[str, str]]:
    """Count tests, failures, errors and skips and sum the time, as attributes.

    The ``total`` counts for ``<testsuites>`` leave out ``skipped``, which the Jenkins
    schema does not allow there.
    """
    tags = [case.result.tag for case in cases if case.result is not None]
    counts = [
        ("tests", str(len(cases))),
        ("failures", str(tags.count("failure"))),
        ("errors", str(tags.count("error"))),
    ]
    if not total:
        counts.append(("skipped", str(tags.count("skipped"))))
    counts.append(("time", _seconds(sum(_finite_duration(case.duration) for case in cases))))
    return counts


def _finite_duration(seconds: float) -> float:
    """Return ``seconds``, or 0 when it is negative, infinite or NaN."""
    if not math.isfinite(seconds) or seconds < 0:
        return 0.0
    return seconds


def _seconds(seconds: float) -> str:
    return f"{_finite_duration(seconds):.3f}"


def _timestamp(reports: Sequence[StepReport], stage: str) -> str | None:
    """Return the earliest known step start in ISO 8601 (UTC, whole seconds), or None.

    A ``started_at`` of 0 means unknown. A value that ``datetime`` cannot represent is
    logged with the stage name and treated as unknown.
    """
    starts = [r.started_at for r in reports if math.isfinite(r.started_at) and r.started_at > 0]
    if not starts:
        return None

    try:
        start = datetime.fromtimestamp(min(starts), tz=timezone.utc)
    except (OverflowError, OSError, ValueError) as error:
        logger.warning(
            "stage %r: start time %r left out of the JUnit report: %s", stage, min(starts), error
        )
        return None
    return start.isoformat(timespec="seconds")


def _start_tag(tag: str, attributes: Sequence[tuple[str, str]]) -> str:
    """Return ``<tag name="value" ...`` without the closing ``>``."""
    parts = [tag, *(f'{name}="{escape(value, _ATTRIBUTE_ENTITIES)}"' for name, value in attributes)]
    return "<" + " ".join(parts)


def _text_element(tag: str, attributes: Sequence[tuple[str, str]], text: str) -> str:
    start = _start_tag(tag, attributes)
    if not text:
        return f"{start}/>"
    return f"{start}>{escape(text, _TEXT_ENTITIES)}</{tag}>"
