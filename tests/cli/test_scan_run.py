"""``shipline run`` with scan steps: blocking before any deploy, JUnit and ``--sarif``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
from junitparser import Failure, JUnitXml

from helpers import stepplugin
from helpers.scanreports import HANDWRITTEN, REAL
from pipeline.exitcodes import ExitCode

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"

PIPELINE = """\
version: 1
name: shop
environments:
  prod: {target: {type: none}}
stages:
  - name: scan
    steps:
      - name: image scan
        scan:
          uses: auto
          report: [trivy.json, grype.json]
          fail_on: FAIL_ON
          ignore:
            - {id: CVE-2021-44228, reason: log4j is not on the class path}
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0"}
"""


def setup(tmp_path: Path, write_pipeline, fail_on: str) -> None:
    stepplugin.EVENTS.clear()
    shutil.copy(HANDWRITTEN / "trivy-schema2.json", tmp_path / "trivy.json")
    shutil.copy(HANDWRITTEN / "grype-current.json", tmp_path / "grype.json")
    write_pipeline(PIPELINE.replace("FAIL_ON", fail_on))


def run(shipline_cli, tmp_path: Path, *options: str):
    return shipline_cli("run", "-p", "helpers.stepplugin", *options, cwd=tmp_path)


def deploys() -> list[object]:
    return [event for event in stepplugin.EVENTS if event[0] == "deploy"]


def test_scan_run_blocks_before_deploy(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")

    result = run(shipline_cli, tmp_path)

    assert result.exit_code == ExitCode.BLOCKED
    assert "BLOCKED  image scan" in result.stdout
    assert "2 findings over the threshold: 1 critical, 1 high" in result.stdout
    assert "stage ship: skipped (needs 'scan', which failed)" in result.stdout
    assert deploys() == []


def test_scan_run_passes_then_deploys(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "none")

    result = run(shipline_cli, tmp_path, "--sarif", "out/scan.sarif")
    log = json.loads((tmp_path / "out" / "scan.sarif").read_text(encoding="utf-8"))

    assert result.exit_code == ExitCode.OK
    assert deploys() == [("deploy", "2.0")]
    assert log["runs"][0]["results"] == []


def test_scan_run_junit_lists_findings(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")

    run(shipline_cli, tmp_path, "--junitxml", "report.xml")
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(tmp_path / "report.xml"))}
    case = next(iter(suites["scan"]))
    failure = case.result[0]

    assert case.name == "image scan"
    assert isinstance(failure, Failure)
    assert failure.message == "2 findings over the threshold: 1 critical, 1 high"
    assert failure.text.splitlines()[-3:] == [
        "findings over the threshold:",
        "  critical CVE-2023-45853 zlib1g 1:1.2.13.dfsg-1 in registry.example/shop:1.4.2 "
        "(debian 12.5) (no fix)",
        "  high GHSA-952p-6rrq-rcjv micromatch 4.0.5 in "
        "app/node_modules/micromatch/package.json (fixed in 4.0.8)",
    ]
    assert "ignored CVE-2021-44228 (1 finding): log4j is not on the class path" in failure.text


def test_scan_run_sarif_valid(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "low")

    result = run(shipline_cli, tmp_path, "--sarif", "scan.sarif")
    log = json.loads((tmp_path / "scan.sarif").read_text(encoding="utf-8"))
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))

    assert result.exit_code == ExitCode.BLOCKED
    jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(log)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == [
        "CVE-2023-45853", "GHSA-952p-6rrq-rcjv", "CVE-2023-5678", "CVE-2024-2511",
    ]
    assert {r["properties"]["step"] for r in log["runs"][0]["results"]} == {"scan/1"}


def test_scan_run_malformed_report_blocks(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "critical")
    (tmp_path / "grype.json").write_text('{"matches": [\n  {"vulnerability": {}\n', "utf-8")

    result = run(shipline_cli, tmp_path)

    assert result.exit_code == ExitCode.BLOCKED
    assert "image scan (" in result.stdout
    assert "grype.json:3:1: not valid JSON: Expecting ',' delimiter" in result.stdout
    assert deploys() == []


def test_scan_run_sarif_written_when_blocked_by_error(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "critical")
    (tmp_path / "trivy.json").unlink()

    result = run(shipline_cli, tmp_path, "--sarif", "scan.sarif")

    assert result.exit_code == ExitCode.BLOCKED
    assert json.loads((tmp_path / "scan.sarif").read_text("utf-8"))["runs"][0]["results"] == []


def test_scan_run_sarif_path_is_folder(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")
    (tmp_path / "out").mkdir()

    result = run(shipline_cli, tmp_path, "--sarif", "out")

    assert result.exit_code == ExitCode.INVALID
    assert "--sarif out: is a directory; give a file name" in result.stderr
    assert deploys() == []


def test_scan_validate_ignore_without_reason(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")
    text = (tmp_path / "shipline.yml").read_text("utf-8")
    write_pipeline(text.replace(", reason: log4j is not on the class path", ""))

    result = shipline_cli("validate", "-p", "helpers.stepplugin", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert ("shipline.yml:14:15: stages[0].steps[0].scan.ignore[0]: missing required key "
            "'reason'") in result.stderr


def test_scan_validate_ignore_blank_reason(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")
    text = (tmp_path / "shipline.yml").read_text("utf-8")
    for reason in ('"   "', "''", '"\\t"'):
        write_pipeline(text.replace("log4j is not on the class path", reason))

        result = shipline_cli("validate", "-p", "helpers.stepplugin", cwd=tmp_path)

        assert result.exit_code == ExitCode.INVALID, reason
        assert result.stderr.count("\n") == 1, result.stderr
        assert ("shipline.yml:14:44: stages[0].steps[0].scan.ignore[0].reason: must not be "
                "empty or only whitespace") in result.stderr


def test_scan_validate_ignore_blank_id(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")
    text = (tmp_path / "shipline.yml").read_text("utf-8")
    write_pipeline(text.replace("id: CVE-2021-44228", "id: ' '"))

    result = shipline_cli("validate", "-p", "helpers.stepplugin", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert ("shipline.yml:14:20: stages[0].steps[0].scan.ignore[0].id: must not be "
            "empty or only whitespace") in result.stderr


def test_scan_validate_invalid_expiry(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "high")
    text = (tmp_path / "shipline.yml").read_text("utf-8")
    write_pipeline(text.replace("class path}", "class path, expires: 2026-13-01}"))

    result = shipline_cli("validate", "-p", "helpers.stepplugin", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert ("shipline.yml:14:85: stages[0].steps[0].scan.ignore[0].expires: '2026-13-01' is "
            "not a valid date; write it as YYYY-MM-DD") in result.stderr


def test_scan_validate_unknown_fail_on(shipline_cli, write_pipeline, tmp_path):
    setup(tmp_path, write_pipeline, "severe")

    result = shipline_cli("validate", "-p", "helpers.stepplugin", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert "stages[0].steps[0].scan.fail_on" in result.stderr


def test_scan_run_real_report_counts_in_junit(shipline_cli, write_pipeline, tmp_path):
    stepplugin.EVENTS.clear()
    shutil.copy(REAL / "grype/image-many-vulns-grype-0.7.json", tmp_path / "grype.json")
    write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: scan
            steps:
              - scan: {uses: grype, report: grype.json, fail_on: critical}
        """)

    result = shipline_cli("run", "--junitxml", "report.xml", cwd=tmp_path)
    case = next(iter(next(iter(JUnitXml.fromfile(str(tmp_path / "report.xml"))))))

    assert result.exit_code == ExitCode.BLOCKED
    assert case.result[0].message == "5 findings over the threshold: 5 critical"
    assert "counted: 5 critical, 24 high, 155 medium, 133 low, 10 unknown" in case.result[0].text


def test_scan_run_sarif_masks_secrets(shipline_cli, write_pipeline, tmp_path):
    stepplugin.EVENTS.clear()
    report = json.loads((HANDWRITTEN / "trivy-schema2.json").read_text("utf-8"))
    report["Results"][0]["Vulnerabilities"][1]["Title"] = "zlib overflow, key s3cr3t-value-42"
    (tmp_path / "trivy.json").write_text(json.dumps(report), "utf-8")
    write_pipeline("""\
        version: 1
        name: shop
        secrets: [REGISTRY_TOKEN]
        stages:
          - name: scan
            steps:
              - scan: {uses: trivy, report: trivy.json, fail_on: critical}
        """)

    result = shipline_cli("run", "--sarif", "scan.sarif", "--junitxml", "report.xml",
                          cwd=tmp_path, env={"REGISTRY_TOKEN": "s3cr3t-value-42"})
    sarif = (tmp_path / "scan.sarif").read_text("utf-8")

    assert result.exit_code == ExitCode.BLOCKED
    assert "s3cr3t-value-42" not in sarif
    assert "zlib overflow, key ***" in sarif
    assert "s3cr3t-value-42" not in (tmp_path / "report.xml").read_text("utf-8")


def test_scan_run_after_deploy_fails(shipline_cli, write_pipeline, tmp_path):
    stepplugin.EVENTS.clear()
    shutil.copy(HANDWRITTEN / "trivy-schema2.json", tmp_path / "trivy.json")
    write_pipeline("""\
        version: 1
        name: shop
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {strategy: record, version: "2.0"}
              - scan: {uses: trivy, report: trivy.json}
        """)

    result = run(shipline_cli, tmp_path)

    assert result.exit_code == ExitCode.FAILED
    assert "FAILED   scan trivy" in result.stdout
    assert stepplugin.EVENTS[-2:] == [("deploy", "2.0"), ("rollback", "2.0")]
