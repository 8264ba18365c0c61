"""The options of a scan step that decide which findings block the run.

A finding is counted unless it is a duplicate, has no fix while ``only_fixed`` is set,
or matches an ``ignore`` entry that has not expired. Each severity then has a limit:
``max_count`` for that severity when given, else 0 for severities at or above
``fail_on`` and no limit below it. A severity whose count exceeds its limit blocks,
and all its counted findings are "over the threshold". ``unknown`` is below every
``fail_on`` threshold, so only ``max_count: {unknown: N}`` limits it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.scan.finding import SEVERITIES_DESCENDING, Finding, Severity

#: ``fail_on`` when a step does not set it.
DEFAULT_FAIL_ON = "high"

#: The ``fail_on`` value that sets no threshold, so only ``max_count`` limits apply.
NO_THRESHOLD = "none"


class InvalidExpiry(ValueError):
    """An ``expires`` value of the form YYYY-MM-DD that is not a real date."""

    def __init__(self, index: int, value: object) -> None:
        super().__init__(f"'{value}' is not a valid date; write it as YYYY-MM-DD")
        #: The position of the entry in the ``ignore`` list.
        self.index = index


@dataclass(frozen=True)
class IgnoreEntry:
    """One entry of a scan step's ``ignore`` list."""

    #: Matched against a finding's id and aliases, ignoring case.
    id: str
    reason: str
    #: The last day (UTC) on which the entry ignores; ``None`` for no end.
    expires: datetime.date | None = None

    def expired(self, today: datetime.date) -> bool:
        return self.expires is not None and today > self.expires

    def matches(self, finding: Finding) -> bool:
        expected = self.id.casefold()
        return any(name.casefold() == expected for name in finding.ids)


@dataclass(frozen=True)
class ScanPolicy:
    """The threshold, limits and ignore list of one scan step."""

    #: ``None`` when ``fail_on: none``.
    fail_on: Severity | None = Severity.HIGH
    max_count: Mapping[Severity, int] = field(default_factory=dict)
    only_fixed: bool = False
    ignore: tuple[IgnoreEntry, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ScanPolicy:
        """Build the policy from step options that passed the step's JSON Schema.

        Raises :class:`InvalidExpiry` for an ``expires`` value that is not a real date
        (the schema checks only its form).
        """
        fail_on = str(options.get("fail_on", DEFAULT_FAIL_ON))
        limits = options.get("max_count") or {}
        return cls(
            fail_on=None if fail_on == NO_THRESHOLD else Severity.from_label(fail_on),
            max_count={Severity.from_label(k): int(v) for k, v in limits.items()},
            only_fixed=bool(options.get("only_fixed", False)),
            ignore=tuple(_ignore_entry(i, e) for i, e in enumerate(options.get("ignore") or ())),
        )

    def limit(self, severity: Severity) -> int | None:
        """Return how many findings of ``severity`` may be counted without blocking;
        ``None`` for no limit."""
        if severity in self.max_count:
            return self.max_count[severity]
        if self.fail_on is None or severity is Severity.UNKNOWN:
            return None
        return 0 if severity >= self.fail_on else None

    def describe(self) -> str:
        """Return the threshold in the words of the pipeline file, for reports."""
        parts = [f"fail_on {self.fail_on.label if self.fail_on else NO_THRESHOLD}"]
        if self.max_count:
            limits = ", ".join(f"{s.label} {self.max_count[s]}" for s in SEVERITIES_DESCENDING
                               if s in self.max_count)
            parts.append(f"max_count {limits}")
        if self.only_fixed:
            parts.append("only_fixed")
        return "; ".join(parts)


def _ignore_entry(index: int, entry: Mapping[str, Any]) -> IgnoreEntry:
    expires = entry.get("expires")
    date = None
    if expires is not None:
        try:
            date = datetime.date.fromisoformat(str(expires))
        except ValueError:
            raise InvalidExpiry(index, expires) from None
    return IgnoreEntry(str(entry["id"]), str(entry["reason"]), date)


@dataclass
class Verdict:
    """The result of applying a policy to the findings of one step."""

    #: Findings after duplicates, unfixed (with ``only_fixed``) and ignored ones left out.
    counted: list[Finding]
    #: Counted findings of the severities over their limit, most severe first.
    blocking: list[Finding]
    counts: dict[Severity, int]
    #: Severities whose count exceeds their limit, most severe first.
    over: list[Severity]
    duplicates: int = 0
    unfixed: int = 0
    ignored: list[tuple[Finding, IgnoreEntry]] = field(default_factory=list)
    #: Expired entries of the ignore list: they no longer ignore anything.
    expired: list[IgnoreEntry] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.over)


def drop_duplicates(findings: Iterable[Finding]) -> tuple[list[Finding], int]:
    """Return the findings without repeats of a :attr:`Finding.key`, and the number dropped.

    The first of the repeats is kept, unless a later one is more severe: that one then
    takes the first one's place, so two scanners that disagree count as the worse one.
    """
    unique: dict[tuple[str, str, str, str, int | None], Finding] = {}
    dropped = 0
    for finding in findings:
        earlier = unique.get(finding.key)
        if earlier is None:
            unique[finding.key] = finding
            continue
        dropped += 1
        if finding.severity > earlier.severity:
            unique[finding.key] = finding
    return list(unique.values()), dropped


def evaluate(findings: Sequence[Finding], policy: ScanPolicy, today: datetime.date) -> Verdict:
    """Apply ``policy`` to the findings of every report of a step, as of ``today`` (UTC)."""
    unique, duplicates = drop_duplicates(findings)

    fixed = [f for f in unique if f.fix_available or not policy.only_fixed]
    active = [entry for entry in policy.ignore if not entry.expired(today)]
    counted: list[Finding] = []
    ignored: list[tuple[Finding, IgnoreEntry]] = []
    for finding in fixed:
        entry = next((e for e in active if e.matches(finding)), None)
        if entry is None:
            counted.append(finding)
        else:
            ignored.append((finding, entry))

    counts = {severity: 0 for severity in SEVERITIES_DESCENDING}
    for finding in counted:
        counts[finding.severity] += 1
    over = [s for s in SEVERITIES_DESCENDING
            if (limit := policy.limit(s)) is not None and counts[s] > limit]
    blocking = sorted((f for f in counted if f.severity in over), key=_report_order)

    return Verdict(
        counted=counted, blocking=blocking, counts=counts, over=over,
        duplicates=duplicates, unfixed=len(unique) - len(fixed), ignored=ignored,
        expired=[entry for entry in policy.ignore if entry.expired(today)],
    )


def _report_order(finding: Finding) -> tuple[int, str, str, str, str]:
    return (-finding.severity, finding.id, finding.package, finding.version, finding.location)
