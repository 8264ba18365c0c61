"""Tests of ``shipline analyze``: analysis templates replayed on recorded data, which is
also how this project tests its own example analyses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.exitcodes import ExitCode

DATA = Path(__file__).resolve().parents[1] / "data" / "analyze"
CONDITION = "success condition 'result < double(args.max_error_rate)'"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for path in DATA.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_analyze_healthy_recording_passes(shipline_cli, folder):
    result = shipline_cli("analyze", "error-rate", "--data", "healthy.csv",
                          "--arg", "service=shop", cwd=folder)

    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout.splitlines() == [
        f"analysis 'error-rate' replayed on {folder / 'healthy.csv'} (4 rows)",
        f"  1. +0s successful: {CONDITION} is true (result=0.001)",
        f"  2. +1m inconclusive: no data for {CONDITION} (result=no data); measuring again "
        "(on_no_data retry 1 of 2)",
        f"  3. +2m successful: {CONDITION} is true (result=0.002)",
        f"  4. +3m successful: {CONDITION} is true (result=0.004)",
        f"  5. +4m successful: {CONDITION} is true (result=0.004)",
        "  verdict: successful: 5 measurements taken: 4 successful",
        "analysis 'error-rate' passed",
    ]


def test_analyze_regression_fails(shipline_cli, folder):
    result = shipline_cli("analyze", "error-rate", "--data", "regression.csv",
                          "--arg", "service=shop", cwd=folder)

    assert result.exit_code == ExitCode.FAILED
    assert result.stdout.splitlines()[-3:] == [
        f"  verdict: failed: 1 measurement failed, more than failure_limit 0; last: "
        f"{CONDITION} is false (result=0.05)",
        "  policy: on_failure is abort",
        "analysis 'error-rate' did not pass",
    ]


def test_analyze_argument_changes_threshold(shipline_cli, folder):
    result = shipline_cli("analyze", "error-rate", "--data", "regression.csv",
                          "--arg", "service=shop", "--arg", "max_error_rate=0.1", cwd=folder)

    assert result.exit_code == ExitCode.OK


def test_analyze_silent_service_runs_out_of_retries(shipline_cli, folder):
    result = shipline_cli("analyze", "error-rate", "--data", "silent.csv",
                          "--arg", "service=shop", cwd=folder)

    lines = result.stdout.splitlines()
    assert result.exit_code == ExitCode.FAILED
    assert lines[4] == (
        f"  4. +3m inconclusive: no data for {CONDITION} (result=no data); still no data "
        "after 2 retries: counted as inconclusive"
    )
    assert lines[6] == (
        "  policy: on_inconclusive is pause: not approved within 1h: create "
        ".shipline/approve-error-rate to approve; default action abort"
    )


def test_analyze_inconclusive_pause_approved_by_file(shipline_cli, folder):
    (folder / ".shipline").mkdir()
    (folder / ".shipline" / "approve-error-rate").touch()

    result = shipline_cli("analyze", "error-rate", "--data", "silent.csv",
                          "--arg", "service=shop", cwd=folder)

    assert result.exit_code == ExitCode.OK
    assert result.stdout.splitlines()[-2] == (
        "  policy: on_inconclusive is pause: approved: .shipline/approve-error-rate exists"
    )


def test_analyze_json_with_timestamps_and_named_metrics(shipline_cli, folder):
    result = shipline_cli("analyze", "latency", "--data", "latency.json", cwd=folder)

    assert result.exit_code == ExitCode.OK
    assert result.stdout.splitlines()[2] == (
        "  2. +30s successful: no data for success condition 'success_rate >= 0.99' "
        "(p95_ms=no data, success_rate=no data); counted as successful (on_no_data: pass)"
    )


def test_analyze_pause_default_pass(shipline_cli, folder):
    result = shipline_cli("analyze", "flaky", "--data", "flaky.json", cwd=folder)

    assert result.exit_code == ExitCode.OK
    assert result.stdout.splitlines()[0] == (
        f"analysis 'flaky' replayed on {folder / 'flaky.json'} (1 row)"
    )
    assert result.stdout.splitlines()[-2] == (
        "  policy: on_inconclusive is pause: not approved within 10m: create approvals/flaky "
        "to approve; default action pass"
    )


def test_analyze_rows_without_times(shipline_cli, folder):
    (folder / "rows.csv").write_text("result\n0.001\n0.002\n0.003\n0.5\n", encoding="utf-8")

    result = shipline_cli("analyze", "error-rate", "--data", "rows.csv",
                          "--arg", "service=shop", cwd=folder)

    assert result.exit_code == ExitCode.FAILED
    assert result.stdout.splitlines()[4] == (
        f"  4. +3m failed: {CONDITION} is false (result=0.5)"
    )


@pytest.mark.parametrize(
    ("arguments", "content", "message"),
    [
        (["error-rat", "--arg", "service=shop"], None,
         "shipline: error: analysis template 'error-rat' is not defined under 'analyses:' "
         "(did you mean 'error-rate'?)"),
        (["error-rate"], None,
         "shipline: error: analysis 'error-rate' needs a value for argument 'service': give "
         "it in the use, for example analysis: {template: error-rate, args: {service: ...}} "
         "(with shipline analyze: --arg NAME=VALUE)"),
        (["error-rate", "--arg", "service"], None,
         "shipline: error: --arg 'service': expected NAME=VALUE"),
        (["error-rate", "--arg", "service=a"], "time,result\n0,high\n",
         "shipline: error: {data}: row 1, column 'result': 'high' is not a number or JSON"),
        (["error-rate", "--arg", "service=a"], "time,result\n1m,0.1\n0,0.2\n",
         "shipline: error: {data}: row 2: time '0' is earlier than the row before; sort the "
         "rows by time"),
        (["error-rate", "--arg", "service=a"], "time,result\nsoon,0.1\n",
         "shipline: error: {data}: row 1: invalid time 'soon': give seconds, a duration "
         "such as 90s, or an ISO 8601 timestamp"),
        (["error-rate", "--arg", "service=a"], "time,result\n",
         "shipline: error: {data}: the recording has no rows"),
        (["error-rate", "--arg", "service=a"], "time,other\n0,0.1\n",
         "shipline: error: {data}: the recording has no value 'result', which condition "
         "'result < double(args.max_error_rate)' reads: add a CSV column or JSON key "
         "'result'; recorded values: other"),
    ],
)
def test_analyze_errors(shipline_cli, folder, arguments, content, message):
    data = folder / "input.csv"
    if content is not None:
        data.write_text(content, encoding="utf-8")

    result = shipline_cli("analyze", *arguments, "--data", "input.csv", cwd=folder)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.splitlines() == [message.replace("{data}", str(data))]


def test_analyze_missing_data_file(shipline_cli, folder):
    result = shipline_cli("analyze", "latency", "--data", "missing.csv", cwd=folder)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == f"shipline: error: {folder / 'missing.csv'}: file not found\n"


def test_analyze_json_output(shipline_cli, folder):
    import json

    result = shipline_cli("analyze", "error-rate", "--data", "regression.csv",
                          "--arg", "service=shop", "--format", "json", cwd=folder)

    document = json.loads(result.stdout)
    assert result.exit_code == ExitCode.FAILED
    assert document["passed"] is False
    assert document["runs"][0]["verdict"] == "failed"
    assert document["runs"][0]["action"] == "abort"
    assert [m["offset"] for m in document["runs"][0]["measurements"]] == [0.0, 60.0, 120.0]
    assert [m["values"] for m in document["runs"][0]["measurements"]] == [
        {"result": 0.001}, {"result": 0.002}, {"result": 0.05},
    ]


FIELDS = """\
version: 1
name: fields
analyses:
  rate:
    provider: probe
    success: result.success_rate >= 0.99
stages:
  - name: check
    steps:
      - gate: {uses: analysis, analysis: rate}
"""


def test_analyze_result_fields_read_columns(shipline_cli, folder):
    (folder / "fields.yml").write_text(FIELDS, encoding="utf-8")
    (folder / "good.csv").write_text("time,success_rate\n0,1.0\n", encoding="utf-8")
    (folder / "bad.csv").write_text("time,rate\n0,1.0\n", encoding="utf-8")

    good = shipline_cli("analyze", "rate", "fields.yml", "--data", "good.csv",
                        cwd=folder)
    bad = shipline_cli("analyze", "rate", "fields.yml", "--data", "bad.csv", cwd=folder)

    assert good.exit_code == ExitCode.OK, good.stderr
    assert bad.exit_code == ExitCode.INVALID
    assert bad.stderr == (
        f"shipline: error: {folder / 'bad.csv'}: the recording has no value 'success_rate', "
        f"which condition 'result.success_rate >= 0.99' reads: add a CSV column or JSON key "
        f"'success_rate'; recorded values: rate\n"
    )
