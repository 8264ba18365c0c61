"""The message and details of a scan step's report, as JUnit and the terminal show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.scan.finding import SEVERITIES_DESCENDING, Severity
from pipeline.scan.policy import ScanPolicy, Verdict

#: Findings listed in the details; more are counted in one last line. JUnit reports cut
#: long texts anyway, and the SARIF file (``--sarif``) has every finding.
MAX_LISTED = 200


@dataclass(frozen=True)
class ReadReport:
    """One report file that a step read."""

    #: The path as the step's ``report`` option matched it.
    name: str
    #: The format title, such as "Trivy JSON".
    format: str
    findings: int


def message(verdict: Verdict, policy: ScanPolicy) -> str:
    """Return the one-line result, such as "3 findings over the threshold: 1 critical,
    2 high"."""
    if not verdict.blocked:
        total = _count(len(verdict.counted), "finding")
        return f"{total}, none over the threshold ({policy.describe()})"

    parts = []
    for severity in verdict.over:
        limit = policy.limit(severity)
        text = f"{verdict.counts[severity]} {severity.label}"
        parts.append(f"{text} (max {limit})" if limit else text)
    total = _count(len(verdict.blocking), "finding")
    return f"{total} over the threshold: {', '.join(parts)}"


def details(reports: Sequence[ReadReport], verdict: Verdict, policy: ScanPolicy) -> str:
    """Return the report body: what was read, the counts, what was left out and why,
    warnings about expired ignore entries, and the findings over the threshold."""
    lines = [
        "reports: " + ", ".join(f"{r.name} ({r.format}, {_count(r.findings, 'finding')})"
                                for r in reports),
        f"threshold: {policy.describe()}",
        f"counted: {format_counts(verdict.counts)}",
    ]
    left_out = _left_out(verdict)
    if left_out:
        lines.append(f"left out: {left_out}")
    lines.extend(_ignore_lines(verdict))
    for entry in verdict.expired:
        lines.append(
            f"warning: the ignore entry for {entry.id} expired on {entry.expires} and no "
            f"longer ignores it (reason was: {entry.reason})"
        )
    if verdict.blocking:
        lines.append("findings over the threshold:")
        lines.extend(f"  {finding.describe()}" for finding in verdict.blocking[:MAX_LISTED])
        if len(verdict.blocking) > MAX_LISTED:
            lines.append(f"  ... and {len(verdict.blocking) - MAX_LISTED} more")
    return "\n".join(lines)


def format_counts(counts: dict[Severity, int]) -> str:
    """Return counts most severe first, such as "1 critical, 0 high, ...", all five."""
    return ", ".join(f"{counts.get(s, 0)} {s.label}" for s in SEVERITIES_DESCENDING)


def _ignore_lines(verdict: Verdict) -> list[str]:
    """Return one line per ignore entry that matched, so the report shows each reason."""
    matched: dict[int, int] = {}
    entries = {}
    for _, entry in verdict.ignored:
        matched[id(entry)] = matched.get(id(entry), 0) + 1
        entries[id(entry)] = entry
    lines = []
    for key, count in matched.items():
        entry = entries[key]
        until = f" until {entry.expires}" if entry.expires else ""
        lines.append(f"ignored {entry.id}{until} ({_count(count, 'finding')}): {entry.reason}")
    return lines


def _left_out(verdict: Verdict) -> str:
    parts = []
    if verdict.duplicates:
        parts.append(f"{verdict.duplicates} duplicates")
    if verdict.unfixed:
        parts.append(f"{verdict.unfixed} without a fix (only_fixed)")
    if verdict.ignored:
        parts.append(f"{len(verdict.ignored)} ignored")
    return ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
