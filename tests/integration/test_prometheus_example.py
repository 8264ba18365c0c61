"""``examples/canary-prometheus.yml``, the README's canary-with-Prometheus example, run as a
newcomer runs it, against a real Prometheus that scrapes a service whose error counters
the test sets for the released version."""

from __future__ import annotations

import shutil
from pathlib import Path

from integration.scripts.harness import REPOSITORY, Finished, shipline_run, step_lines

from helpers.prometheus import PrometheusServer
from pipeline.exitcodes import ExitCode
from pipeline.testing import run_cli

EXAMPLES = REPOSITORY / "examples"
CONDITION = "success condition 'result < 0.01'"


def run_example(tmp_path: Path, prometheus: PrometheusServer, version: str) -> Finished:
    shutil.copytree(EXAMPLES, tmp_path / "examples",
                    ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    environment = {"PROMETHEUS_URL": prometheus.url, "RELEASE_VERSION": version}
    with shipline_run(tmp_path, "examples/canary-prometheus.yml", env=environment) as process:
        stdout, stderr = process.communicate(timeout=120)
    return Finished(process.returncode, stdout, stderr)


def served(prometheus: PrometheusServer, version: str, ok: int, errors: int) -> None:
    prometheus.service.set(version, ok=ok, errors=errors)
    prometheus.wait_for(f'sum(http_requests_total{{version="{version}"}})', float(ok + errors))


def test_prometheus_example_promotes(tmp_path: Path, prometheus: PrometheusServer) -> None:
    served(prometheus, "1.1.0", ok=998, errors=2)

    finished = run_example(tmp_path, prometheus, "1.1.0")

    assert finished.exit_code == ExitCode.OK, finished.stdout + finished.stderr
    assert step_lines(finished.stdout)["deploy 1.1.0 (canary)"].message == (
        "1.1.0 promoted after 4 steps: slot 'green' serves all traffic"
    )


def test_prometheus_example_rolls_back(tmp_path: Path, prometheus: PrometheusServer) -> None:
    served(prometheus, "1.2.0", ok=95, errors=5)

    finished = run_example(tmp_path, prometheus, "1.2.0")

    lines = step_lines(finished.stdout)
    assert finished.exit_code == ExitCode.FAILED, finished.stdout + finished.stderr
    assert lines["deploy 1.2.0 (canary)"].message == (
        f"analysis 'error-rate' failed: 1 measurement failed, more than failure_limit 0; "
        f"last: {CONDITION} is false (result=0.05)"
    )
    assert lines["rollback: deploy 1.2.0 (canary)"].outcome == "PASSED"


def test_prometheus_example_replayed(tmp_path: Path) -> None:
    recording = tmp_path / "recorded.csv"
    recording.write_text("time,result\n0,0.002\n2s,\n4s,0.03\n", encoding="utf-8")

    result = run_cli("analyze", "error-rate", str(EXAMPLES / "canary-prometheus.yml"),
                     "--data", str(recording), cwd=tmp_path)

    assert result.exit_code == ExitCode.FAILED
    assert result.stdout.splitlines()[1:4] == [
        f"  1. +0s successful: {CONDITION} is true (result=0.002)",
        f"  2. +2s inconclusive: no data for {CONDITION} (result=no data); measuring again "
        "(on_no_data retry 1 of 3)",
        f"  3. +4s failed: {CONDITION} is false (result=0.03)",
    ]


def test_prometheus_example_readme_replay(tmp_path: Path) -> None:
    """The replay command of the README and of the example's comment, with its data."""
    result = run_cli("analyze", "error-rate", str(EXAMPLES / "canary-prometheus.yml"),
                     "--data", str(EXAMPLES / "canary-prometheus-recorded.csv"), cwd=tmp_path)

    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "analysis 'error-rate' passed"
