"""A pytest plugin for people who write shipline plugins (and for shipline's own tests).

Installed with shipline through the ``pytest11`` entry point, so its fixtures are there
in any project that has shipline installed::

    def test_my_gate(shipline_cli, tmp_path):
        (tmp_path / "shipline.yml").write_text(PIPELINE)
        result = shipline_cli("run", "-p", "my_gate", cwd=tmp_path)
        assert result.exit_code == 0
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.clock import FakeClock


@dataclass(frozen=True)
class CliResult:
    """The exit code and output of one in-process ``shipline`` invocation."""

    exit_code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> CliResult:
    """Run ``shipline ARGS`` in this process and capture its output.

    ``env`` entries are set for the duration of the call; the working directory is
    changed to ``cwd`` and restored afterwards.
    """
    from pipeline.cli import main

    stdout = io.StringIO()
    stderr = io.StringIO()
    saved_env = {key: os.environ.get(key) for key in (env or {})}
    saved_cwd = Path.cwd()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def shipline_cli() -> Callable[..., CliResult]:
    """Return :func:`run_cli`: ``shipline_cli("validate", "shipline.yml", cwd=tmp_path)``."""
    return run_cli


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock whose sleeps return at once; pass it to code that accepts a clock."""
    return FakeClock()
