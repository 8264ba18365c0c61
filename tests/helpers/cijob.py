"""Run ``shipline`` as a real subprocess inside a simulated CI job.

The child gets the environment of the test process without the variables that
GitHub Actions and GitLab CI set, plus the ones a test passes, and ``tests`` on
``PYTHONPATH`` so that ``-p helpers.stepplugin`` loads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPOSITORY = TESTS.parent

#: Variables of a real CI job that would change what the child writes.
_CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "RUNNER_")
_CI_NAMES = ("CI", "NO_COLOR")


def run_shipline(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pipeline ARGS`` in ``cwd`` and return its exit code and output.

    The output is decoded without newline translation, so a carriage return stays one.
    """
    child_env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(_CI_PREFIXES) and name not in _CI_NAMES
    }
    child_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPOSITORY)])
    child_env.update(env or {})
    finished = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, env=child_env,
        capture_output=True, timeout=timeout, check=False,
    )
    return subprocess.CompletedProcess(
        finished.args, finished.returncode,
        finished.stdout.decode("utf-8"), finished.stderr.decode("utf-8"),
    )


def read_github_outputs(path: Path) -> dict[str, str]:
    """Parse a ``GITHUB_OUTPUT`` file of ``name<<DELIMITER`` entries as the runner does.

    Raises AssertionError for a line outside an entry or an entry without its
    delimiter line, so a test fails on a malformed file.
    """
    outputs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        assert "<<" in line, f"not an output entry: {line!r}"
        name, delimiter = line.split("<<", 1)
        value_lines = []
        while lines[index] != delimiter:
            value_lines.append(lines[index])
            index += 1
            assert index < len(lines), f"output {name!r}: delimiter {delimiter!r} missing"
        index += 1
        outputs[name] = "\n".join(value_lines)
    return outputs
