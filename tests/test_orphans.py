"""Commands of a killed run: recorded with their start time, stopped by recovery."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pipeline.orphans import (
    OrphanReport,
    ProcessRecord,
    current_host,
    process_start_time,
    record_of,
    stop_orphans,
)

# A process group whose leader ignores SIGTERM, with a child that does not.
IGNORES_TERM = """\
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def group() -> Iterator[subprocess.Popen[str]]:
    """A sleeping process that leads its own process group, killed after the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                               start_new_session=True, text=True)
    yield process
    _kill(process)


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_orphans_record_of_started_command(group: subprocess.Popen[str]):
    record = record_of(["/usr/bin/deploy.sh", "--token", "s3cret"], group.pid)

    assert record.host == current_host()
    assert (record.pid, record.pgid) == (group.pid, group.pid)
    assert record.start_time == process_start_time(group.pid)
    assert record.start_time is not None
    assert record.command == "deploy.sh"


def test_orphans_details_round_trip(group: subprocess.Popen[str]):
    record = record_of(["sh"], group.pid)

    assert ProcessRecord.from_details(record.details()) == record
    assert ProcessRecord.from_details({"host": "a", "pid": "1", "pgid": 1}) is None


def test_orphans_stop_running_group(group: subprocess.Popen[str]):
    record = record_of(["sleep"], group.pid)

    report = stop_orphans([record], grace=5)

    assert report.stopped == [group.pid]
    assert group.wait(timeout=10) == -signal.SIGTERM


def test_orphans_kill_after_grace():
    process = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], start_new_session=True,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        record = record_of(["python"], process.pid)

        report = stop_orphans([record], grace=0.3)

        assert report.stopped == [process.pid]
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        _kill(process)


def test_orphans_skip_reused_pid(group: subprocess.Popen[str]):
    record = record_of(["sleep"], group.pid)
    assert record.start_time is not None
    reused = ProcessRecord(record.host, group.pid, group.pid, record.start_time - 1, "sleep")

    report = stop_orphans([reused], grace=0.3)

    assert report.stopped == []
    assert group.poll() is None


def test_orphans_skip_finished_command():
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    record = record_of(["python"], process.pid)
    process.wait(timeout=10)

    assert stop_orphans([record], grace=0.3).stopped == []


def test_orphans_other_host_named(group: subprocess.Popen[str]):
    record = ProcessRecord("runner-7", group.pid, group.pid, 1, "deploy.sh")

    report = stop_orphans([record], grace=0.3)

    assert report.stopped == []
    assert report.elsewhere == [record]
    assert group.poll() is None
    assert report.summary() == (
        "commands of the stopped run may still be running on runner-7: stop them there, "
        "because they can change instances after this recovery")


def test_orphans_summary_empty():
    assert OrphanReport().summary() == ""
