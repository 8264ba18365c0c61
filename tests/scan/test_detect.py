"""Format detection and the errors for reports that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.scan import reader
from pipeline.scan.detect import detect_format, read_report
from pipeline.scan.reader import ReportError


def write(tmp_path: Path, text: str | bytes, name: str = "report.json") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_error(path: Path, expected: str | None = None) -> str:
    with pytest.raises(ReportError) as caught:
        read_report(path, path.name, expected)
    return str(caught.value)


@pytest.mark.parametrize(("data", "expected"), [
    ({"version": "2.1.0", "runs": []}, "sarif"),
    ({"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": []}, "sarif"),
    ({"bomFormat": "CycloneDX", "specVersion": "1.6"}, "cyclonedx"),
    ({"matches": []}, "grype"),
    ({"matches": None, "descriptor": {"name": "grype"}}, "grype"),
    ({"results": []}, "osv-scanner"),
    ({"SchemaVersion": 2, "ArtifactName": "x"}, "trivy"),
    ({"Results": None}, "trivy"),
    ([{"Target": "x", "Vulnerabilities": None}], "trivy"),
    ([], None),
    ({"runs": []}, None),
    ({"name": "something else"}, None),
    ("text", None),
])
def test_detect_format_from_keys(data: object, expected: str | None) -> None:
    assert detect_format(data) == expected


def test_detect_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "matches": [\n    {"vulnerability": }\n')

    assert read_error(path) == (
        "report.json:3:23: not valid JSON: Expecting value"
    )


def test_detect_truncated_json(tmp_path: Path) -> None:
    path = write(tmp_path, '{"SchemaVersion": 2, "Results": [')

    assert read_error(path) == (
        "report.json:1:34: not valid JSON: Expecting value; the report ends early, so "
        "the scanner may not have finished writing it"
    )


def test_detect_unterminated_string(tmp_path: Path) -> None:
    path = write(tmp_path, '{"matches": [\n  {"vulnerability": {"id": "CVE-2021-4')

    assert read_error(path) == (
        "report.json:2:28: not valid JSON: Unterminated string starting at line 2 "
        "column 28; the report ends early, so the scanner may not have finished writing it"
    )


def test_detect_invalid_control_character(tmp_path: Path) -> None:
    path = write(tmp_path, '{"matches": "a\tb"}\n')

    assert read_error(path) == (
        "report.json:1:15: not valid JSON: Invalid control character at line 1 column 15"
    )


def test_detect_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path, '{"issues": []}')

    assert read_error(path) == (
        "report.json: unknown report format: expected one of Trivy JSON, Grype JSON, "
        "SARIF, OSV-Scanner JSON, CycloneDX (check that the scanner wrote JSON or SARIF)"
    )


def test_detect_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "  \n")

    assert read_error(path) == (
        "report.json: the report is empty; check that the scanner wrote it"
    )


def test_detect_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"matches": ["\xff"]}')

    assert read_error(path) == "report.json: not a JSON report: byte 14 is not valid UTF-8"


def test_detect_missing_file(tmp_path: Path) -> None:
    assert read_error(tmp_path / "absent.json") == "absent.json: report file not found"


def test_detect_format_mismatch(tmp_path: Path) -> None:
    path = write(tmp_path, '{"matches": []}')

    assert read_error(path, "trivy") == (
        "report.json: expected a Trivy JSON report, found Grype JSON; use 'uses: grype' "
        "or 'uses: auto' for this file"
    )


@pytest.mark.parametrize(("text", "message"), [
    ('{"SchemaVersion": 2, "Results": "none"}',
     "report.json: Results: expected a list, found a string"),
    ('{"SchemaVersion": 2, "Results": [{"Target": "x", "Vulnerabilities": [{"PkgName": "a"}]}]}',
     "report.json: Results[0].Vulnerabilities[0]: VulnerabilityID is missing"),
    ('{"SchemaVersion": 2, "Results": [{"Target": ["x"]}]}',
     "report.json: Results[0].Target: expected a string, found a list"),
    ('{"matches": [{"vulnerability": {"id": "CVE-1", "severity": 3}, "artifact": 7}]}',
     "report.json: matches[0].artifact: expected an object, found a number"),
    ('{"version": "2.1.0", "runs": [{"results": [{"ruleId": "A", "locations": [{'
     '"physicalLocation": {"region": {"startLine": "ten"}}}]}]}]}',
     'report.json: runs[0].results[0].locations[0].physicalLocation.region.startLine: '
     'expected a number, found "ten"'),
    ('{"results": [{"packages": [{"groups": [{"ids": []}]}]}]}',
     "report.json: results[0].packages[0].groups[0]: ids is missing or empty"),
    ('{"bomFormat": "CycloneDX", "vulnerabilities": [{"ratings": []}]}',
     "report.json: vulnerabilities[0]: id is missing"),
])
def test_detect_malformed_report(tmp_path: Path, text: str, message: str) -> None:
    assert read_error(write(tmp_path, text)) == message



def test_detect_report_over_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MAX_REPORT_BYTES", 10_000_000)
    path = tmp_path / "huge.json"
    with path.open("wb") as stream:
        stream.truncate(12_000_000)

    assert read_error(path) == (
        "huge.json: the report is 12 MB, larger than the 10 MB shipline reads; split the "
        "scan or limit what the scanner reports (for example by severity)"
    )


def test_detect_nested_too_deeply(tmp_path: Path) -> None:
    path = write(tmp_path, "[" * 200_000 + "]" * 200_000)

    assert read_error(path) == "report.json: not a usable JSON report: nested too deeply"
