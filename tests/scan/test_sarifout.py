"""The SARIF log of blocking findings: valid against the OASIS schema, with the fields
GitHub code scanning needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rfc3986_validator import validate_rfc3986

from helpers.scanreports import HANDWRITTEN, REAL
from pipeline.scan.detect import read_report
from pipeline.scan.finding import Finding, Severity
from pipeline.scan.sarifout import ScanResult, render_sarif, security_severity, write_sarif

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


def validate(log: dict[str, Any]) -> None:
    """Validate against the OASIS schema; the format checker checks ``uri`` values
    because rfc3986-validator is installed."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    validator.validate(json.loads(json.dumps(log)))


def all_findings() -> list[Finding]:
    findings = []
    for path in [*sorted(REAL.glob("*/*.json")), *sorted(HANDWRITTEN.glob("*.json"))]:
        findings.extend(read_report(path, path.name)[1])
    return findings


def render(findings: list[Finding], mask: Any = lambda text: text) -> dict[str, Any]:
    return render_sarif([ScanResult("scan/1", "scan images", findings)], version="0.1.0",
                        mask=mask)


def test_sarifout_every_report_validates() -> None:
    log = render(all_findings())

    validate(log)
    assert len(log["runs"][0]["results"]) == len(all_findings())


def test_sarifout_github_required_fields() -> None:
    log = render(all_findings())
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]

    assert log["version"] == "2.1.0"
    assert run["tool"]["driver"]["name"] == "shipline"
    assert len({rule["id"] for rule in rules}) == len(rules)
    for result in run["results"]:
        location = result["locations"][0]["physicalLocation"]
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
        assert validate_rfc3986(location["artifactLocation"]["uri"], rule="URI_reference")
        assert location["region"]["startLine"] >= 1
        assert len(result["partialFingerprints"]["shiplineFinding/v1"]) == 64


def test_sarifout_result_fields() -> None:
    finding = Finding(id="CVE-2021-44228", severity=Severity.CRITICAL, report="bom.json",
                      raw_severity="critical", package="log4j-core", version="2.14.1",
                      location="app lib/log4j:core.jar", fix_available=True,
                      fixed_in="2.15.0", title="Log4Shell", score=10.0)

    result = render([finding])["runs"][0]["results"][0]

    assert result["level"] == "error"
    assert result["message"]["text"] == (
        "critical CVE-2021-44228 log4j-core 2.14.1 in app lib/log4j:core.jar (fixed in "
        "2.15.0): Log4Shell (reported in bom.json, step 'scan images')"
    )
    assert result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "app%20lib/log4j%3Acore.jar"},
        "region": {"startLine": 1},
    }


def test_sarifout_source_line_and_report_fallback() -> None:
    with_line = Finding(id="py/sql", severity=Severity.HIGH, report="codeql.sarif",
                        location="src/db.py", line=42)
    without = Finding(id="CVE-1", severity=Severity.LOW, report="scans/trivy.json")

    results = render([with_line, without])["runs"][0]["results"]

    assert [r["locations"][0]["physicalLocation"] for r in results] == [
        {"artifactLocation": {"uri": "src/db.py"}, "region": {"startLine": 42}},
        {"artifactLocation": {"uri": "scans/trivy.json"}, "region": {"startLine": 1}},
    ]


def test_sarifout_rule_takes_highest_severity() -> None:
    low = Finding(id="CVE-1", severity=Severity.LOW, report="a.json", package="x")
    high = Finding(id="CVE-1", severity=Severity.HIGH, report="b.json", package="y")

    rules = render([low, high])["runs"][0]["tool"]["driver"]["rules"]

    assert len(rules) == 1
    assert rules[0]["properties"]["security-severity"] == "7.0"
    assert rules[0]["defaultConfiguration"] == {"level": "error"}


@pytest.mark.parametrize(("location", "uri"), [
    ("busybox:1.36 (alpine 3.19)", "busybox%3A1.36%20(alpine%203.19)"),
    ("/var/lib/dpkg/status", "/var/lib/dpkg/status"),
    ("file:///src/my app.py", "file:///src/my%20app.py"),
    ("src/a%20b.py", "src/a%20b.py"),
    ("100%.txt", "100%25.txt"),
])
def test_sarifout_location_uri(location: str, uri: str) -> None:
    finding = Finding(id="x", severity=Severity.LOW, report="r", location=location)

    result = render([finding])["runs"][0]["results"][0]

    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri
    assert validate_rfc3986(uri, rule="URI_reference")


@pytest.mark.parametrize(("severity", "score", "expected"), [
    (Severity.CRITICAL, 9.8, 9.8),
    (Severity.HIGH, 9.8, 7.0),
    (Severity.MEDIUM, None, 4.0),
    (Severity.LOW, None, 0.1),
    (Severity.UNKNOWN, None, 0.0),
])
def test_sarifout_security_severity(severity: Severity, score: float | None,
                                    expected: float) -> None:
    finding = Finding(id="x", severity=severity, report="r", score=score)

    assert security_severity(finding) == expected


def test_sarifout_masks_secrets() -> None:
    finding = Finding(id="CVE-1", severity=Severity.HIGH, report="r.json",
                      title="token hunter2-secret leaked")

    text = json.dumps(render([finding], mask=lambda t: t.replace("hunter2-secret", "***")))

    assert "hunter2-secret" not in text
    assert "token *** leaked" in text


def test_sarifout_write_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "out" / "scan.sarif"

    write_sarif(path, render([]))

    assert json.loads(path.read_text(encoding="utf-8"))["runs"][0]["results"] == []
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["scan.sarif"]


def test_sarifout_keeps_most_severe_past_limit() -> None:
    findings = [Finding(id=f"CVE-{n}", severity=severity, report="r.json")
                for n, severity in enumerate([Severity.LOW, Severity.CRITICAL, Severity.MEDIUM,
                                              Severity.HIGH, Severity.LOW])]

    log = render_sarif([ScanResult("scan/1", "scan", findings)], version="0.1.0",
                       max_results=3)
    run = log["runs"][0]

    validate(log)
    assert [r["ruleId"] for r in run["results"]] == ["CVE-1", "CVE-3", "CVE-2"]
    assert run["properties"] == {"shipline-results-left-out": 2}


def test_sarifout_no_left_out_property_under_limit() -> None:
    run = render(all_findings()[:10])["runs"][0]

    assert "properties" not in run
