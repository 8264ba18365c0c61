from __future__ import annotations

import logging

import pytest

from helpers.scanreports import read_handwritten, summary


def test_osv_max_severity_banded() -> None:
    found_format, findings = read_handwritten("osv-max-severity.json")

    assert found_format == "osv-scanner"
    assert summary(findings) == [
        ("GHSA-h5c8-rqwp-cp95", "medium", "max_severity 5.4"),
        ("OSV-2024-7", "unknown", ""),
    ]


def test_osv_group_aliases_and_fix() -> None:
    _, findings = read_handwritten("osv-max-severity.json")
    jinja = findings[0]

    assert jinja.aliases == ("PYSEC-2024-1", "CVE-2024-22195")
    assert (jinja.package, jinja.version, jinja.location) == (
        "jinja2", "3.1.2", "/src/app/requirements.txt",
    )
    assert (jinja.fix_available, jinja.fixed_in) == (True, "3.1.3")
    assert (findings[1].package, findings[1].version) == ("", "9f2c3d1")


def test_osv_vectors_highest_score_wins(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipline"):
        _, findings = read_handwritten("osv-vectors.json")

    assert summary(findings) == [
        ("GHSA-aaaa-bbbb-cccc", "critical", "CVSS 9.3"),
        ("GHSA-dddd-eeee-ffff", "unknown", ""),
    ]
    assert caplog.messages == [
        "osv-vectors.json: results[0].packages[0].vulnerabilities[1].severity[0]: CVSS "
        "vector 'CVSS:3.1/AV:X/broken' is not valid; it was left out of the severity",
    ]
