from __future__ import annotations

from helpers.scanreports import read_handwritten, summary


def test_grype_severities_and_missing_one() -> None:
    found_format, findings = read_handwritten("grype-current.json")

    assert found_format == "grype"
    assert summary(findings) == [
        ("CVE-2023-5678", "low", "Negligible"),
        ("GHSA-jfh8-c2jp-5v3q", "critical", "Critical"),
        ("CVE-2024-0001", "unknown", ""),
    ]


def test_grype_related_ids_are_aliases() -> None:
    _, findings = read_handwritten("grype-current.json")

    assert [f.aliases for f in findings] == [(), ("CVE-2021-44228",), ()]


def test_grype_fix_and_location() -> None:
    _, findings = read_handwritten("grype-current.json")

    assert [(f.fix_available, f.fixed_in) for f in findings] == [
        (False, ""), (True, "2.15.0"), (False, ""),
    ]
    assert [f.location for f in findings] == [
        "/var/lib/dpkg/status.d/libssl3", "/app/lib/log4j-core-2.14.1.jar", "",
    ]


def test_grype_null_matches_is_empty() -> None:
    found_format, findings = read_handwritten("grype-no-matches.json")

    assert found_format == "grype"
    assert findings == []
