"""Helpers shared by the integration tests: write a pipeline, run ``shipline run`` as a
real subprocess, interrupt it, and read what it printed and reported.

Imported by the tests as ``integration.scripts.harness`` (``tests`` is on the path).
The shell and Python scripts beside this module are what the pipelines run.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from junitparser import JUnitXml, TestCase

from pipeline.testing import CliResult

SCRIPTS = Path(__file__).resolve().parent
REPOSITORY = SCRIPTS.parents[2]

#: The interpreter running the tests, quoted for a command template.
PYTHON = shlex.quote(sys.executable)

#: Seconds a test waits for a marker, or for a signalled run to end, before it fails.
WAIT_LIMIT = 20.0

#: A pause (or scale-down delay) in which a test sends SIGTERM. The run stops as soon as
#: the signal arrives, so only a failed test waits this long.
PAUSE = "10s"

#: Seconds between the marker written just before a pause and the signal, so that the
#: run has entered the pause on a busy machine. The marker is written by a check or a
#: deploy that ends a few milliseconds before the pause starts.
PAUSE_SETTLE = 0.5

#: A step line of the terminal reporter: outcome, name, duration (not for skipped steps)
#: and message. Step names in these tests contain no colon, so the first ": " after the
#: name starts the message.
_STEP_LINE = re.compile(
    r"^  (?P<outcome>[A-Z]+(?: [A-Z]+)?) +(?P<name>(?:rollback: )?[^:]+?)"
    r"(?: \((?P<duration>[0-9][^)]*)\))?(?:: (?P<message>.*))?$"
)


@dataclass(frozen=True)
class Finished:
    """How a ``shipline run`` ended: its exit code and what it printed."""

    exit_code: int
    stdout: str
    stderr: str
    #: ``time.monotonic()`` when the test sent SIGTERM, if it did.
    signalled_at: float | None = None


@dataclass(frozen=True)
class StepLine:
    """One step or rollback line of the terminal output."""

    outcome: str
    message: str


def write_pipeline(folder: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as ``folder/shipline.yml`` and return the path."""
    path = folder / "shipline.yml"
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], description: str,
               process: subprocess.Popen[str] | None = None) -> None:
    """Poll ``condition`` every 20 ms until it is true.

    Raises AssertionError naming ``description`` (what the test waits for) after
    :data:`WAIT_LIMIT` seconds, or as soon as ``process`` exits.
    """
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        if process is not None and process.poll() is not None:
            stdout, stderr = process.communicate()
            raise AssertionError(f"shipline exited with {process.returncode} before "
                                 f"{description}:\n{stdout}\n{stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_LIMIT}s waiting for {description}")
        time.sleep(0.02)


@contextmanager
def shipline_run(folder: Path, *arguments: str,
                 env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """Start ``python -m pipeline run ARGUMENTS`` in ``folder`` as a subprocess.

    A run still going when the block ends (after a failed assert) gets SIGTERM, so that
    it stops the processes it started. It gets SIGKILL if it has not ended within
    :data:`WAIT_LIMIT` seconds.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *arguments],
        cwd=folder, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=WAIT_LIMIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def run_to_end(folder: Path, *arguments: str) -> Finished:
    """Run ``shipline run ARGUMENTS`` in ``folder`` as a subprocess and wait for it."""
    with shipline_run(folder, *arguments) as process:
        stdout, stderr = process.communicate(timeout=120)
    return Finished(process.returncode, stdout, stderr)


def interrupt(process: subprocess.Popen[str], settle: float = 0.0) -> Finished:
    """Wait ``settle`` seconds, send SIGTERM, and wait for the run to end.

    ``settle`` gives the run time to move from the event that the test saw (a check that
    wrote a marker) to the wait that the signal must arrive in (the pause after it).
    """
    time.sleep(settle)
    signalled_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=WAIT_LIMIT)
    return Finished(process.returncode, stdout, stderr, signalled_at)


def run_in_process(shipline_cli: Callable[..., CliResult], folder: Path,
                   document: Mapping[str, Any]) -> CliResult:
    """Write ``document`` as the pipeline in ``folder`` and run it in this process, with a
    JUnit report in ``folder/report.xml``."""
    write_pipeline(folder, document)
    return shipline_cli("run", "shipline.yml", "--junitxml", "report.xml", cwd=folder)


def run_and_interrupt(folder: Path, document: Mapping[str, Any], marker: Callable[[], bool],
                      description: str, settle: float = 0.0) -> Finished:
    """Run the pipeline ``document`` in a subprocess and send SIGTERM ``settle`` seconds
    after ``marker()`` is first true; ``description`` names the marker in failures."""
    write_pipeline(folder, document)
    with shipline_run(folder, "shipline.yml", "--junitxml", "report.xml") as process:
        wait_until(marker, description, process)
        return interrupt(process, settle)


def step_lines(stdout: str) -> dict[str, StepLine]:
    """Return the step and rollback lines of the terminal output by step name.

    A rollback's name starts with ``rollback: ``. When two lines have the same name, the
    later one wins.
    """
    lines = {}
    for line in stdout.splitlines():
        match = _STEP_LINE.match(line)
        if match is not None:
            lines[match["name"]] = StepLine(match["outcome"], match["message"] or "")
    return lines


def details_after(stdout: str, name: str) -> str:
    """Return the indented detail lines printed under the step line of ``name``,
    without their indentation."""
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines)
                 if (match := _STEP_LINE.match(line)) and match["name"] == name)
    details = []
    for line in lines[start + 1:]:
        if not line.startswith("      "):
            break
        details.append(line[6:])
    return "\n".join(details).strip("\n")


def junit_cases(path: Path) -> dict[str, TestCase]:
    """Return the test cases of a JUnit report by name."""
    cases = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            cases[case.name] = case
    return cases


def result_type(case: TestCase) -> str:
    """Return ``passed`` or the ``type`` of the case's failure, error or skipped element."""
    if not case.result:
        return "passed"
    return str(case.result[0].type)


def process_alive(pid: int) -> bool:
    """Tell whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
