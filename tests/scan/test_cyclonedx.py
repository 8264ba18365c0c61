from __future__ import annotations

from helpers.scanreports import read_handwritten, summary


def test_cyclonedx_ratings_and_dismissed_state() -> None:
    found_format, findings = read_handwritten("cyclonedx-vex.json")

    assert found_format == "cyclonedx"
    assert summary(findings) == [
        ("CVE-2021-23337", "high", "CVSS 7.2"),
        ("CVE-2024-1111", "low", "info"),
        ("CVE-2024-2222", "unknown", ""),
        ("CVE-2024-4444", "high", "high"),
    ]


def test_cyclonedx_affects_resolved_to_components() -> None:
    _, findings = read_handwritten("cyclonedx-vex.json")

    assert [(f.package, f.version) for f in findings] == [
        ("lodash", "4.17.20"),
        ("parent, child", "1.0, 2.0"),
        ("lodash", "4.17.20"),
        ("pkg:npm/unknown-package@1.0.0", ""),
    ]
    assert {f.location for f in findings} == {"shop"}


def test_cyclonedx_fix_from_recommendation_or_unaffected() -> None:
    _, findings = read_handwritten("cyclonedx-vex.json")

    assert [(f.fix_available, f.fixed_in) for f in findings] == [
        (True, ""), (True, "2.1"), (False, ""), (False, ""),
    ]
