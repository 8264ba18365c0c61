"""The pipelines in ``examples/``, run as a newcomer runs them: ``shipline run`` in a
subprocess with ``--junitxml``, on a copy of the folder so that the repository is not
written to."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from integration.scripts.harness import (
    REPOSITORY,
    Finished,
    junit_cases,
    result_type,
    run_to_end,
    step_lines,
)

from pipeline.exitcodes import ExitCode

EXAMPLES = REPOSITORY / "examples"


def run_example(tmp_path: Path, name: str) -> Finished:
    """Copy ``examples/`` into ``tmp_path`` and run ``examples/NAME`` with a JUnit report."""
    shutil.copytree(EXAMPLES, tmp_path / "examples",
                    ignore=shutil.ignore_patterns(".shipline", "__pycache__"))
    return run_to_end(tmp_path, f"examples/{name}", "--junitxml", "report.xml")


def without_latency(text: str) -> str:
    """Replace measured latencies, which vary from run to run, with ``X``."""
    return re.sub(r"p95_ms=[0-9.]+", "p95_ms=X", text)


def test_example_canary_promotes(tmp_path: Path) -> None:
    finished = run_example(tmp_path, "canary.yml")

    assert finished.exit_code == ExitCode.OK, finished.stdout + finished.stderr
    assert step_lines(finished.stdout)["deploy 1.1.0 (canary)"].message == (
        "1.1.0 promoted after 6 steps: slot 'green' serves all traffic"
    )
    cases = junit_cases(tmp_path / "report.xml")
    assert list(cases) == ["deploy 1.1.0 (canary)"]
    assert result_type(cases["deploy 1.1.0 (canary)"]) == "passed"


def test_example_canary_bad_rolls_back(tmp_path: Path) -> None:
    finished = run_example(tmp_path, "canary-bad.yml")

    assert finished.exit_code == ExitCode.FAILED, finished.stdout + finished.stderr
    cases = junit_cases(tmp_path / "report.xml")
    assert list(cases) == ["deploy 1.1.0 (canary)", "rollback: deploy 1.1.0 (canary)"]

    deploy = cases["deploy 1.1.0 (canary)"]
    assert result_type(deploy) == "failed"
    # 20% of 60 requests reach the two canary instances, 6 each, and each instance
    # fails exactly 30% of its requests rounded down: 2 of 12 fail.
    assert without_latency(deploy.result[0].message) == (
        "analysis 'healthy-traffic' failed: 1 measurement failed, more than failure_limit 0; "
        "last: success condition 'success_rate >= 0.99' is false (p95_ms=X, "
        "success_rate=0.833333)"
    )
    report = deploy.result[0].text
    assert report.splitlines()[:5] == [
        "instance  slot   before  after  result",
        "blue-1    blue   1.0.0   1.0.0  serving",
        "blue-2    blue   1.0.0   1.0.0  serving",
        "green-1   green  ?       1.1.0  ready",
        "green-2   green  ?       1.1.0  ready",
    ]
    assert "analysis 'healthy-traffic': failed: 1 measurement failed" in report

    assert result_type(cases["rollback: deploy 1.1.0 (canary)"]) == "passed"
    assert step_lines(finished.stdout)["rollback: deploy 1.1.0 (canary)"].message == (
        "weight of slot 'green' back to 0; removed 1.1.0 from 2 instances of slot 'green'"
    )


def test_example_rolling_updates_every_instance(tmp_path: Path) -> None:
    finished = run_example(tmp_path, "rolling.yml")

    assert finished.exit_code == ExitCode.OK, finished.stdout + finished.stderr
    root = tmp_path / "examples" / ".shipline" / "rolling"
    for instance in ("web-1", "web-2", "web-3", "web-4"):
        assert os.readlink(root / instance / "current") == "releases/1.1.0", instance
        assert (root / instance / "current" / "VERSION").read_text() == "1.1.0\n", instance
    cases = junit_cases(tmp_path / "report.xml")
    assert list(cases) == [
        "deploy 1.0.0 (rolling)", "deploy 1.1.0 (rolling)", "every instance serves 1.1.0",
    ]
    assert {result_type(case) for case in cases.values()} == {"passed"}


def test_example_blue_green_switches(tmp_path: Path) -> None:
    finished = run_example(tmp_path, "blue-green.yml")

    assert finished.exit_code == ExitCode.OK, finished.stdout + finished.stderr
    assert step_lines(finished.stdout)["deploy 1.1.0 (blue-green)"].message == (
        "slot 'green' serves 1.1.0 on 2 instances"
    )
    cases = junit_cases(tmp_path / "report.xml")
    assert list(cases) == ["deploy 1.1.0 (blue-green)"]
    assert result_type(cases["deploy 1.1.0 (blue-green)"]) == "passed"
