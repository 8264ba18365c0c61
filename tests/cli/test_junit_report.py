"""``run --junitxml``: the report of a real run, checked against the Jenkins XSD and
read back with junitparser."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped
from lxml import etree

from helpers import stepplugin
from pipeline.exitcodes import ExitCode

XSD = Path(__file__).resolve().parents[1] / "data" / "jenkins-junit-10.xsd"

PIPELINE = """\
version: 1
name: shop
environments:
  prod: {target: {type: none}}
stages:
  - name: checks
    steps:
      - name: smoke
        gate: {uses: echo, output: "caf\\u00e9 \\u65e5\\u672c\\r\\nline two \\e[31mred\\e[0m \\a"}
      - name: smoke
        gate: {uses: pass}
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0"}
      - name: verify
        gate: {uses: fail}
      - name: never
        gate: {uses: pass}
  - name: broken
    when: always
    steps:
      - name: explode
        gate: {uses: raise}
  - name: after
    needs: [ship]
    steps:
      - gate: {uses: pass}
"""


def run_report(shipline_cli, write_pipeline, tmp_path: Path) -> tuple[int, Path]:
    stepplugin.EVENTS.clear()
    write_pipeline(PIPELINE)
    result = shipline_cli("run", "-p", "helpers.stepplugin", "--junitxml", "out/report.xml",
                          cwd=tmp_path)
    return result.exit_code, tmp_path / "out" / "report.xml"


def test_junit_report_valid_against_xsd(shipline_cli, write_pipeline, tmp_path):
    exit_code, path = run_report(shipline_cli, write_pipeline, tmp_path)
    root = etree.parse(str(path)).getroot()
    for case in root.iter("testcase"):
        del case.attrib["file"]
        del case.attrib["line"]
    schema = etree.XMLSchema(etree.parse(str(XSD)))

    assert exit_code == ExitCode.INTERNAL_ERROR
    assert schema.validate(root), schema.error_log


def test_junit_report_counts_match_junitparser(shipline_cli, write_pipeline, tmp_path):
    _, path = run_report(shipline_cli, write_pipeline, tmp_path)
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(path))}

    def kinds(name: str) -> list[str]:
        found = []
        for case in suites[name]:
            result = case.result[0] if case.result else None
            kind = "passed"
            if isinstance(result, Failure):
                kind = "failure"
            elif isinstance(result, Error):
                kind = "error"
            elif isinstance(result, Skipped):
                kind = "skipped"
            found.append(f"{case.name}: {kind}")
        return found

    assert kinds("checks") == ["smoke: passed", "smoke (2): passed"]
    assert kinds("ship") == [
        "deploy 2.0 (record): passed",
        "verify: failure",
        "never: skipped",
        "rollback: deploy 2.0 (record): passed",
    ]
    assert kinds("broken") == ["explode: error"]
    assert kinds("after") == ["gate pass: skipped"]
    assert (suites["ship"].tests, suites["ship"].failures, suites["ship"].skipped) == (4, 1, 1)
    assert suites["broken"].errors == 1


def test_junit_report_case_attributes(shipline_cli, write_pipeline, tmp_path):
    _, path = run_report(shipline_cli, write_pipeline, tmp_path)
    root = etree.parse(str(path)).getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}

    assert cases["verify"].get("classname") == "shop.ship"
    assert cases["verify"].get("file") == "shipline.yml"
    assert cases["verify"].get("line") == "16"
    assert cases["verify"].find("failure").get("message") == "failed"
    assert cases["never"].find("skipped").get("message") == "step 'verify' failed"
    assert cases["gate pass"].find("skipped").get("message") == "needs 'ship', which failed"


def test_junit_report_text_cleaned(shipline_cli, write_pipeline, tmp_path):
    _, path = run_report(shipline_cli, write_pipeline, tmp_path)
    raw = path.read_bytes()
    root = etree.parse(str(path)).getroot()
    smoke = next(c for c in root.iter("testcase") if c.get("name") == "smoke")

    assert b"&#13;" in raw
    assert b"\x1b" not in raw
    assert b"\x07" not in raw
    assert smoke.find("system-out").text == "café 日本\r\nline two red "
