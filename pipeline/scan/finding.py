"""The normalized finding that every report format is read into, and its severity."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Severity(enum.IntEnum):
    """A normalized severity; a larger value is more severe.

    ``UNKNOWN`` is for findings whose report gives no usable severity. It sorts lowest,
    but it is not "harmless": a ``fail_on`` threshold never counts it, and
    ``max_count: {unknown: 0}`` blocks on it.
    """

    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lowercase name used in pipeline files and reports, such as ``high``."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Severity:
        """Return the severity named ``label`` (``critical`` ... ``unknown``).

        Raises KeyError for any other text.
        """
        return cls[label.upper()]


#: Severities from most to least severe, the order of counts in messages.
SEVERITIES_DESCENDING = tuple(sorted(Severity, reverse=True))

#: The score that stands for a severity in SARIF ``security-severity`` when a finding
#: has no score of its own: the lowest score of the CVSS v3 band.
BAND_FLOOR_SCORES: Mapping[Severity, float] = {
    Severity.CRITICAL: 9.0,
    Severity.HIGH: 7.0,
    Severity.MEDIUM: 4.0,
    Severity.LOW: 0.1,
}


def band_score(score: float) -> Severity:
    """Map a CVSS-like score from 0.0 to 10.0 onto the CVSS v3 qualitative bands.

    9.0 and above is critical, 7.0 high, 4.0 medium, anything else from 0.0 low: CVSS
    calls 0.0 "None", which is a rating given on purpose, so it counts as low, the same
    as the ``none`` rating of CycloneDX. A negative, NaN or infinite score is unknown.
    """
    if not math.isfinite(score) or score < 0:
        return Severity.UNKNOWN
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW


#: Severity words of the supported formats, lowercased. Grype's ``Negligible`` and the
#: ``info`` and ``none`` ratings of CycloneDX are low; GitHub advisories say ``moderate``.
_WORDS: Mapping[str, Severity] = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.LOW,
    "info": Severity.LOW,
    "none": Severity.LOW,
    "unknown": Severity.UNKNOWN,
}


def severity_from_word(word: str) -> Severity:
    """Map a severity word of any supported format, in any case, onto a severity.

    An empty or unrecognized word is unknown rather than an error: reports from newer
    scanner versions may add words, and an unknown severity still shows in the report
    and can block through ``max_count``.
    """
    return _WORDS.get(word.strip().lower(), Severity.UNKNOWN)


@dataclass(frozen=True)
class Finding:
    """One vulnerability (or rule violation) in one package or file, from one report.

    ``id`` is the advisory or rule id (``CVE-2021-44228``, ``py/empty-except``).
    ``location`` is where the scanner found it: an image, a lockfile, a package path or
    a source file, as the report names it; ``line`` is set only for source files.
    ``score`` is the CVSS-like score behind ``severity`` when the report gave or implied
    one. ``fix_available`` is true only when the report names a fix.
    """

    id: str
    severity: Severity
    #: The file the finding was read from, as given in the step.
    report: str
    #: The severity text as the report wrote it, for messages ("Negligible", "error").
    raw_severity: str = ""
    package: str = ""
    version: str = ""
    location: str = ""
    line: int | None = None
    fix_available: bool = False
    #: The fixed version or fix description, when the report gives one.
    fixed_in: str = ""
    title: str = ""
    aliases: tuple[str, ...] = ()
    score: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str, int | None]:
        """The identity used to drop duplicates across reports: id, package, version and
        location (with the line)."""
        return (self.id, self.package, self.version, self.location, self.line)

    @property
    def ids(self) -> tuple[str, ...]:
        """The id followed by its aliases, for matching ``ignore`` entries."""
        return (self.id, *self.aliases)

    def describe(self) -> str:
        """Return one line for reports: severity, id, package and version, location, fix."""
        parts = [f"{self.severity.label}", self.id]
        if self.package:
            parts.append(f"{self.package} {self.version}".rstrip())
        place = self.location
        if place and self.line is not None:
            place = f"{place}:{self.line}"
        if place:
            parts.append(f"in {place}")
        if self.fixed_in:
            parts.append(f"(fixed in {self.fixed_in})")
        elif not self.fix_available:
            parts.append("(no fix)")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """Return the finding as JSON-compatible data, the form kept in step reports."""
        return {
            "id": self.id, "severity": self.severity.label, "report": self.report,
            "raw_severity": self.raw_severity, "package": self.package,
            "version": self.version, "location": self.location, "line": self.line,
            "fix_available": self.fix_available, "fixed_in": self.fixed_in,
            "title": self.title, "aliases": list(self.aliases), "score": self.score,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding from :meth:`to_json` output. Raises KeyError or ValueError
        for data that did not come from there."""
        return cls(
            id=str(data["id"]), severity=Severity.from_label(str(data["severity"])),
            report=str(data["report"]), raw_severity=str(data.get("raw_severity", "")),
            package=str(data.get("package", "")), version=str(data.get("version", "")),
            location=str(data.get("location", "")), line=data.get("line"),
            fix_available=bool(data.get("fix_available")),
            fixed_in=str(data.get("fixed_in", "")), title=str(data.get("title", "")),
            aliases=tuple(data.get("aliases", ())), score=data.get("score"),
        )
