"""Findings per severity of real scanner output, counted the way docs/scanning.md says.

The reports are unedited test fixtures of public projects (see
tests/data/scan/real/SOURCES.md for each file's origin and license).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipeline.scan.detect import read_report
from pipeline.scan.finding import SEVERITIES_DESCENDING
from pipeline.scan.policy import drop_duplicates

REAL = Path(__file__).resolve().parents[1] / "data" / "scan" / "real"

# file, format, counts as critical / high / medium / low / unknown
EXPECTED = [
    ("trivy/juice-shop-v12.10.2-image.json", "trivy", (28, 100, 48, 6, 0)),
    ("trivy/gomod-unknown-severity.json", "trivy", (0, 0, 1, 0, 4)),
    ("grype/image-many-vulns-grype-0.7.json", "grype", (5, 24, 155, 133, 10)),
    ("grype/busybox-epss-grype-0.94.json", "grype", (1, 10, 2, 2, 0)),
    ("sarif/codeql-2.5.4-default-levels.json", "sarif", (0, 11, 4, 57, 0)),
    ("sarif/semgrep-nosemgrep-suppressed.json", "sarif", (0, 1, 0, 0, 0)),
    ("osv-scanner/multi-lockfile-v1-no-max-severity.json", "osv-scanner", (5, 20, 11, 0, 1)),
    ("osv-scanner/malicious-package-no-severity.json", "osv-scanner", (0, 0, 0, 0, 1)),
    ("cyclonedx/trivy-0.48.1-multi-vendor-ratings.json", "cyclonedx", (0, 4, 4, 2, 0)),
    ("cyclonedx/grype-0.41.0-log4j-in-triage.json", "cyclonedx", (4, 1, 3, 0, 0)),
]


def severity_counts(name: str) -> tuple[str, tuple[int, ...]]:
    found_format, findings = read_report(REAL / name, name)
    counts = Counter(finding.severity for finding in findings)
    return found_format, tuple(counts[severity] for severity in SEVERITIES_DESCENDING)


@pytest.mark.parametrize(("name", "expected_format", "expected"), EXPECTED,
                         ids=[row[0] for row in EXPECTED])
def test_real_report_counts(name: str, expected_format: str, expected: tuple[int, ...]) -> None:
    found_format, counts = severity_counts(name)

    assert found_format == expected_format
    assert counts == expected


def test_real_report_trivy_repeats_differ_by_path() -> None:
    _, findings = read_report(REAL / "trivy/juice-shop-v12.10.2-image.json", "juice-shop")
    by_target = Counter((f.id, f.package, f.version) for f in findings)

    unique, dropped = drop_duplicates(findings)

    assert sum(count - 1 for count in by_target.values()) == 32
    assert dropped == 0
    assert len(unique) == 182


def test_real_report_grype_negligible_is_low() -> None:
    _, findings = read_report(REAL / "grype/image-many-vulns-grype-0.7.json", "grype")
    raw = Counter(finding.raw_severity for finding in findings)
    negligible = [f for f in findings if f.raw_severity == "Negligible"]

    assert raw == {"Critical": 5, "High": 24, "Medium": 155, "Low": 27, "Negligible": 106,
                   "Unknown": 10}
    assert {f.severity.label for f in negligible} == {"low"}


def test_real_report_grype_old_schema_has_no_fix() -> None:
    _, findings = read_report(REAL / "grype/image-many-vulns-grype-0.7.json", "grype")

    assert not any(finding.fix_available for finding in findings)


def test_real_report_semgrep_suppressed_result_left_out() -> None:
    _, findings = read_report(REAL / "sarif/semgrep-nosemgrep-suppressed.json", "semgrep")

    assert [(f.id, f.location, f.line) for f in findings] == [
        ("rules.regex.detected-aws-account-id", "targets/basic/regex-nosemgrep.txt", 3),
    ]


def test_real_report_osv_git_source_uses_commit() -> None:
    _, findings = read_report(REAL / "osv-scanner/multi-lockfile-v1-no-max-severity.json",
                              "osv")
    git = [f for f in findings if f.id == "CVE-2023-50094"]

    assert [(f.package, f.version) for f in git] == [
        ("", "f5f3c22f3ed5a6804a2a8d9ee9fa43044cfa24a6"),
    ]


def test_real_report_osv_unknown_is_django_group() -> None:
    _, findings = read_report(REAL / "osv-scanner/multi-lockfile-v1-no-max-severity.json",
                              "osv")
    unknown = [f for f in findings if f.severity.label == "unknown"]

    assert [(f.id, f.package) for f in unknown] == [("GHSA-xxj9-f6rv-m3x4", "django")]


def test_real_report_cyclonedx_in_triage_counts() -> None:
    _, findings = read_report(REAL / "cyclonedx/grype-0.41.0-log4j-in-triage.json", "bom")

    assert len(findings) == 8
    assert findings[0].id == "CVE-2021-44228"
    assert findings[0].severity.label == "critical"
