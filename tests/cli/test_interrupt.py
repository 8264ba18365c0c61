"""SIGTERM and SIGINT sent to a real ``shipline run`` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.exitcodes import ExitCode

TESTS = Path(__file__).resolve().parents[1]

PIPELINE = """\
version: 1
name: shop
environments:
  prod: {target: {type: none}}
stages:
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0", wait: 30, marker: started}
      - gate: {uses: pass}
  - name: after
    when: always
    steps:
      - gate: {uses: pass}
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_rolls_back_and_exits_130(tmp_path: Path, signum: int) -> None:
    (tmp_path / "shipline.yml").write_text(textwrap.dedent(PIPELINE), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "-p", "helpers.stepplugin",
         "--junitxml", "report.xml"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    marker = tmp_path / "started"
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert marker.exists()

    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=20)

    assert process.returncode == ExitCode.INTERRUPTED
    assert "INTERRUPTED deploy 2.0 (record) (" in stdout
    assert "): interrupted\n" in stdout
    assert "PASSED   rollback: deploy 2.0 (record)" in stdout
    assert "SKIPPED  gate pass: the run was interrupted" in stdout
    assert "stage after: skipped (the run was interrupted)" in stdout
    assert "Traceback" not in stderr
    report = (tmp_path / "report.xml").read_text(encoding="utf-8")
    assert 'type="interrupted"' in report
