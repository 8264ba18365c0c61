"""A real third-party plugin distribution, installed with pip into a target folder.

The distribution under ``tests/plugins/shipline-example-gate`` adds a ``threshold``
gate with its own schema fragment through the ``shipline`` entry-point group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from junitparser import JUnitXml

from pipeline.exitcodes import ExitCode

DISTRIBUTION = Path(__file__).resolve().parents[1] / "plugins" / "shipline-example-gate"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(DISTRIBUTION)],
        check=True, capture_output=True,
    )
    return target


def shipline(plugin_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=60,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shipline.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_third_party_plugin_listed(plugin_path: Path, tmp_path: Path) -> None:
    result = shipline(plugin_path, tmp_path, "plugins")
    assert result.returncode == 0
    assert "example-gate  (entry point of shipline-example-gate 1.0.0)" in result.stdout
    assert "provides: gate threshold" in result.stdout


def test_third_party_plugin_options_validated(plugin_path: Path, tmp_path: Path) -> None:
    write(tmp_path, """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate:
                  uses: threshold
                  value: 3
                  maxx: 5
        """)
    result = shipline(plugin_path, tmp_path, "validate")
    assert result.returncode == ExitCode.INVALID
    assert result.stderr == (
        "shipline.yml:6:9: stages[0].steps[0].gate: missing required key 'max'\n"
        "shipline.yml:9:11: stages[0].steps[0].gate: unknown key 'maxx' (did you mean 'max'?)\n"
    )


def test_third_party_plugin_runs_and_reports(plugin_path: Path, tmp_path: Path) -> None:
    write(tmp_path, """\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - name: latency
                gate: {uses: threshold, value: 120, max: 300, unit: ms}
              - name: errors
                gate: {uses: threshold, value: 7, max: 1, unit: "%"}
        """)
    result = shipline(plugin_path, tmp_path, "run", "--junitxml", "report.xml")
    assert result.returncode == ExitCode.BLOCKED
    xml = JUnitXml.fromfile(str(tmp_path / "report.xml"))
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) == {"latency", "errors"}
    assert cases["latency"].is_passed
    assert not cases["errors"].is_passed
    assert cases["errors"].result[0].message == "7% (max 1%)"
    assert cases["errors"].classname == "shop.check"


def test_third_party_plugin_blocked_with_no(plugin_path: Path, tmp_path: Path) -> None:
    result = shipline(plugin_path, tmp_path, "plugins", "-p", "no:example-gate")
    assert result.returncode == 0
    assert "example-gate" not in result.stdout
