"""Errors that are not the pipeline's fault: plugin bugs, crashes, --debug."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from pipeline.exitcodes import ExitCode

TESTS = Path(__file__).resolve().parents[1]

PIPELINE = """\
version: 1
name: shop
stages:
  - name: check
    steps:
      - gate: {uses: raise, message: exploded}
"""

CRASHING_PLUGIN = """\
import pipeline


@pipeline.hookimpl
def shipline_configure(config):
    raise RuntimeError("configure blew up")
"""


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


def test_debug_shows_plugin_traceback(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    result = shipline_cli("run", "-p", "helpers.stepplugin", "--debug", cwd=tmp_path)
    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: exploded" in result.stderr
    assert "hook:   shipline_run_gate" in result.stderr


def test_crash_writes_report_and_no_traceback(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    write(tmp_path, "shipline_plugins.py", CRASHING_PLUGIN)
    result = shipline_cli("validate", cwd=tmp_path)
    match = re.search(r"written to (\S+);", result.stderr)

    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert result.stderr.startswith(
        "shipline: internal error: RuntimeError: configure blew up\n"
    )
    assert "Traceback" not in result.stderr
    assert match is not None
    report = Path(match.group(1)).read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in report
    assert "RuntimeError: configure blew up" in report
    assert "python: " in report
    Path(match.group(1)).unlink()


def test_crash_with_debug_prints_traceback(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    write(tmp_path, "shipline_plugins.py", CRASHING_PLUGIN)
    result = shipline_cli("validate", "--debug", cwd=tmp_path)
    assert result.exit_code == ExitCode.INTERNAL_ERROR
    assert "Traceback (most recent call last)" in result.stderr
    assert "crash report" not in result.stderr


def test_usage_error_with_debug_keeps_exit_code(shipline_cli, tmp_path):
    result = shipline_cli("validate", "missing.yml", "--debug", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.endswith("shipline: error: missing.yml: file not found\n")


def test_junitxml_path_that_is_a_directory(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    result = shipline_cli("run", "-p", "helpers.stepplugin", "--junitxml", ".", cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == "shipline: error: --junitxml .: is a directory; give a file name\n"


def test_junitxml_parent_that_is_a_file(shipline_cli, tmp_path):
    write(tmp_path, "shipline.yml", PIPELINE)
    write(tmp_path, "afile", "")
    result = shipline_cli("run", "-p", "helpers.stepplugin", "--junitxml", "afile/r.xml",
                          cwd=tmp_path)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --junitxml afile/r.xml: 'afile' is not a directory\n"
    )


def test_closed_stdout_does_not_stop_rollback(tmp_path):
    write(tmp_path, "shipline.yml", """\
        version: 1
        name: shop
        environments:
          prod: {target: {type: none}}
        stages:
          - name: ship
            environment: prod
            steps:
              - deploy: {strategy: record, version: "2.0"}
              - gate: {uses: fail, message: smoke failed}
        """)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "-p", "helpers.stepplugin",
         "--junitxml", "report.xml"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    report = (tmp_path / "report.xml").read_text(encoding="utf-8")

    assert process.returncode == ExitCode.FAILED
    assert b"terminal output stopped" in stderr
    assert b"Traceback" not in stderr
    assert 'name="rollback: deploy 2.0 (record)"' in report


def test_error_message_masks_environment_secret(shipline_cli, tmp_path):
    token = "tok-0123456789abcdef"

    result = shipline_cli("validate", f"missing-{token}.yml", cwd=tmp_path,
                          env={"RELEASE_TOKEN": token})

    assert result.exit_code == 2
    assert result.stderr == "shipline: error: missing-***.yml: file not found\n"


def test_misspelt_option_gets_a_suggestion(shipline_cli, tmp_path) -> None:
    result = shipline_cli("run", "--junit-xml", "report.xml", "shipline.yml", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: unrecognized arguments: --junit-xml shipline.yml (did you mean "
        "--junitxml?) (see 'shipline run --help')\n"
    )
