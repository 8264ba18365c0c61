"""Thresholds, per-severity limits, only_fixed, ignore lists and duplicates."""

from __future__ import annotations

import datetime

import pytest

from pipeline.scan.finding import Finding, Severity
from pipeline.scan.policy import InvalidExpiry, ScanPolicy, drop_duplicates, evaluate

TODAY = datetime.date(2026, 6, 1)


def finding(finding_id: str, severity: Severity, **fields: object) -> Finding:
    return Finding(id=finding_id, severity=severity, report="r.json", **fields)


FINDINGS = [
    finding("CVE-1", Severity.CRITICAL, package="a", fix_available=True),
    finding("CVE-2", Severity.HIGH, package="b"),
    finding("CVE-3", Severity.MEDIUM, package="c", fix_available=True),
    finding("CVE-4", Severity.MEDIUM, package="d"),
    finding("CVE-5", Severity.LOW, package="e"),
    finding("MAL-6", Severity.UNKNOWN, package="f"),
]


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


def policy(**options: object) -> ScanPolicy:
    return ScanPolicy.from_options(options)


def test_policy_default_threshold_is_high() -> None:
    verdict = evaluate(FINDINGS, policy(), TODAY)

    assert verdict.over == [Severity.CRITICAL, Severity.HIGH]
    assert ids(verdict.blocking) == ["CVE-1", "CVE-2"]


def test_policy_fail_on_low_leaves_unknown_out() -> None:
    verdict = evaluate(FINDINGS, policy(fail_on="low"), TODAY)

    assert ids(verdict.blocking) == ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5"]
    assert verdict.counts[Severity.UNKNOWN] == 1


def test_policy_max_count_unknown_blocks() -> None:
    verdict = evaluate(FINDINGS, policy(fail_on="none", max_count={"unknown": 0}), TODAY)

    assert verdict.over == [Severity.UNKNOWN]
    assert ids(verdict.blocking) == ["MAL-6"]


def test_policy_max_count_replaces_threshold_limit() -> None:
    passing = evaluate(FINDINGS, policy(fail_on="medium", max_count={"medium": 2,
                                                                     "critical": 1,
                                                                     "high": 1}), TODAY)
    failing = evaluate(FINDINGS, policy(fail_on="medium", max_count={"medium": 1,
                                                                     "critical": 1,
                                                                     "high": 1}), TODAY)

    assert passing.blocked is False
    assert failing.over == [Severity.MEDIUM]
    assert ids(failing.blocking) == ["CVE-3", "CVE-4"]


def test_policy_max_count_below_threshold() -> None:
    verdict = evaluate(FINDINGS, policy(fail_on="critical", max_count={"low": 0}), TODAY)

    assert verdict.over == [Severity.CRITICAL, Severity.LOW]


def test_policy_only_fixed_drops_unfixed() -> None:
    verdict = evaluate(FINDINGS, policy(fail_on="low", only_fixed=True), TODAY)

    assert ids(verdict.counted) == ["CVE-1", "CVE-3"]
    assert verdict.unfixed == 4


def test_policy_ignore_by_id_and_alias() -> None:
    findings = [finding("GHSA-x", Severity.CRITICAL, aliases=("CVE-2021-44228",)),
                finding("CVE-2", Severity.HIGH)]
    entries = [{"id": "cve-2021-44228", "reason": "not reachable"},
               {"id": "CVE-2", "reason": "accepted risk", "expires": "2026-06-01"}]

    verdict = evaluate(findings, policy(ignore=entries), TODAY)

    assert verdict.blocked is False
    assert [(f.id, e.reason) for f, e in verdict.ignored] == [
        ("GHSA-x", "not reachable"), ("CVE-2", "accepted risk"),
    ]
    assert verdict.expired == []


def test_policy_expired_ignore_counts_again() -> None:
    entries = [{"id": "CVE-2", "reason": "accepted risk", "expires": "2026-05-31"}]

    verdict = evaluate(FINDINGS, policy(ignore=entries), TODAY)

    assert ids(verdict.blocking) == ["CVE-1", "CVE-2"]
    assert verdict.ignored == []
    assert [(e.id, e.expires) for e in verdict.expired] == [
        ("CVE-2", datetime.date(2026, 5, 31)),
    ]


def test_policy_invalid_expiry_date() -> None:
    with pytest.raises(InvalidExpiry) as caught:
        policy(ignore=[{"id": "a", "reason": "b"}, {"id": "c", "reason": "d",
                                                    "expires": "2026-02-30"}])

    assert caught.value.index == 1
    assert str(caught.value) == "'2026-02-30' is not a valid date; write it as YYYY-MM-DD"


def test_policy_duplicates_dropped_across_reports() -> None:
    first = finding("CVE-1", Severity.HIGH, package="a", version="1", location="x")
    again = Finding(id="CVE-1", severity=Severity.CRITICAL, report="other.json",
                    package="a", version="1", location="x")
    elsewhere = finding("CVE-1", Severity.HIGH, package="a", version="1", location="y")

    unique, dropped = drop_duplicates([first, again, elsewhere])

    assert dropped == 1
    assert [(f.report, f.severity, f.location) for f in unique] == [
        ("other.json", Severity.CRITICAL, "x"), ("r.json", Severity.HIGH, "y"),
    ]


def test_policy_describe() -> None:
    described = policy(fail_on="none", max_count={"low": 3, "critical": 0},
                       only_fixed=True).describe()

    assert described == "fail_on none; max_count critical 0, low 3; only_fixed"
