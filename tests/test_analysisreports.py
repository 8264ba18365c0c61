"""Tests that every analysis measurement reaches the reports: the JSON event log
(``--events``) and the JUnit report's system-out, for passed and failed steps."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from junitparser import JUnitXml

from pipeline.exitcodes import ExitCode

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schemas" / "events.schema.json"
VALIDATOR = Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")),
                                 format_checker=Draft202012Validator.FORMAT_CHECKER)

PIPELINE = """\
    version: 1
    name: shop
    analyses:
      latency:
        provider: command
        command: [python3, -c, "print({values})"]
        success: result.all(sample, sample < 300)
        count: 2
        interval: 1s
        on_failure: {on_failure}
        on_inconclusive: abort
    stages:
      - name: check
        steps:
          - gate: {{uses: analysis, analysis: latency}}
"""


def run(shipline_cli: Any, folder: Path, values: str, on_failure: str = "abort") -> Any:
    text = textwrap.dedent(PIPELINE).format(values=values, on_failure=on_failure)
    (folder / "shipline.yml").write_text(text, encoding="utf-8")
    return shipline_cli("run", "--events", "events.jsonl", "--junitxml", "report.xml",
                        cwd=folder)


def events(folder: Path, kind: str) -> list[dict[str, Any]]:
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    found = [json.loads(line) for line in lines]
    for event in found:
        VALIDATOR.validate(event)
    return [event for event in found if event["event"] == kind]


def system_out(folder: Path) -> str:
    case = next(iter(next(iter(JUnitXml.fromfile(str(folder / "report.xml"))))))
    return str(case.system_out)


def test_reports_list_values_and_verdicts(shipline_cli, tmp_path):
    result = run(shipline_cli, tmp_path, "[120, 180]")

    measurements = events(tmp_path, "measurement")
    assert result.exit_code == ExitCode.OK
    assert [m["values"] for m in measurements] == [{"result": [120, 180]}] * 2
    assert [m["verdict"] for m in measurements] == ["successful", "successful"]
    assert events(tmp_path, "analysis")[0]["action"] == "continue"
    lines = system_out(tmp_path).splitlines()
    assert lines[0] == "--- analysis 'latency': successful: 2 measurements taken: 2 successful"
    assert lines[1].endswith(
        " successful: success condition 'result.all(sample, sample < 300)' is true "
        "(result=[120,180])"
    )
    assert len(lines) == 3


def test_reports_list_policy_of_failed_analysis(shipline_cli, tmp_path):
    result = run(shipline_cli, tmp_path, "[120, 380]", on_failure="pass")

    analysis = events(tmp_path, "analysis")[0]
    assert result.exit_code == ExitCode.OK
    assert analysis["verdict"] == "failed"
    assert analysis["action"] == "pass"
    assert analysis["action_message"] == "on_failure is pass: going on"
    assert system_out(tmp_path).splitlines()[-1] == "policy: on_failure is pass: going on"


def test_reports_no_data_is_null(shipline_cli, tmp_path):
    run(shipline_cli, tmp_path, "float('nan')")

    assert events(tmp_path, "measurement")[0]["values"] == {"result": None}
