"""Commands of a killed run: listed with their start time, stopped by recovery."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.clock import SystemClock
from pipeline.commands import CommandResult, boot_clock_ns, run_command
from pipeline.orphans import (
    PROCESS_OPERATION,
    OrphanReport,
    ProcessJournal,
    ProcessList,
    ProcessRecord,
    current_host,
    lists_in,
    process_start_time,
    record_of,
    stop_orphans,
)
from pipeline.plan import Step
from pipeline.state.url import StateLocation
from pipeline.staterun import StateWorker

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


def _listed(tmp_path: Path, *records: ProcessRecord, host: str | None = None) -> ProcessList:
    """Write ``records`` to a command list of ``host`` (default: this one) and return it."""
    path = tmp_path / "processes" / "d1.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(record.line() for record in records), encoding="utf-8")
    return ProcessList(host or current_host(), path)


def test_orphans_record_of_started_command(group: subprocess.Popen[str]):
    record = record_of(["/usr/bin/deploy.sh", "--token", "s3cret"], group.pid)

    start = process_start_time(group.pid)
    assert start is not None
    assert record.pid == group.pid
    assert record.started == (start, start)
    assert record.command == "deploy.sh"


def test_orphans_record_of_boot_clock_range():
    # Many starts, so that some cross a clock tick (10 ms with the usual USER_HZ of 100).
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    for _ in range(30):
        before = boot_clock_ns()
        assert before is not None
        process = subprocess.Popen(["sleep", "30"], start_new_session=True)
        record = record_of(["sleep"], process.pid, before)
        after = boot_clock_ns()
        assert after is not None
        start = process_start_time(process.pid)
        process.kill()
        process.wait(timeout=10)

        assert record.started is not None
        assert start is not None
        assert record.started_at(start), (record.started, start)
        # As narrow as the time the start took allows: one tick more at most.
        assert record.started[1] - record.started[0] <= (after - before) // tick + 1


def test_orphans_line_round_trip(group: subprocess.Popen[str]):
    record = record_of(["my deploy"], group.pid)
    unknown_start = ProcessRecord(42, None, "deploy")

    assert ProcessRecord.from_line(record.line()) == record
    assert ProcessRecord.from_line(unknown_start.line()) == unknown_start
    assert ProcessRecord(7, (1, 2), "two\nlines").line() == "7 1-2 two lines\n"
    assert ProcessRecord.from_line("x 1-1 sh") is None
    assert ProcessRecord.from_line("12 y sh") is None
    assert ProcessRecord.from_line("12 5 sh") is None
    assert ProcessRecord.from_line("12 5-4 sh") is None
    assert ProcessRecord.from_line("12 -4 sh") is None
    assert ProcessRecord.from_line("12") is None
    assert ProcessRecord.from_line("0 1-2 typo") is None
    assert ProcessRecord.from_line("1 1-2 init") is None


def test_orphans_list_details_round_trip(tmp_path: Path):
    where = ProcessList("runner-7", tmp_path / "d1.txt")

    assert ProcessList.from_details(where.details()) == where
    assert ProcessList.from_details({"host": "runner-7"}) is None
    assert ProcessList.from_details({"host": "runner-7", "path": ""}) is None
    assert ProcessList.from_details("runner-7") is None


def test_orphans_stop_running_group(tmp_path: Path, group: subprocess.Popen[str]):
    where = _listed(tmp_path, record_of(["sleep"], group.pid))

    report = stop_orphans([where], grace=5)

    assert report.stopped == [group.pid]
    assert group.wait(timeout=10) == -signal.SIGTERM
    assert not where.path.exists()


def test_orphans_kill_after_grace(tmp_path: Path):
    process = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], start_new_session=True,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        where = _listed(tmp_path, record_of(["python"], process.pid))

        report = stop_orphans([where], grace=0.3)

        assert report.stopped == [process.pid]
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        _kill(process)


def test_orphans_sigterm_all_groups_before_sigkill(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture):
    processes = [subprocess.Popen([sys.executable, "-c", IGNORES_TERM], start_new_session=True,
                                  stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        where = _listed(tmp_path, *(record_of(["python"], p.pid) for p in processes))

        report = stop_orphans([where], grace=0.3)

        assert sorted(report.stopped) == sorted(p.pid for p in processes)
        assert all(p.wait(timeout=10) == -signal.SIGKILL for p in processes)
    finally:
        for process in processes:
            _kill(process)
    groups = ", ".join(f"python (group {p.pid})" for p in processes)
    assert caplog.messages == [
        f"3 commands of a stopped run still running; stopping them: {groups}",
        f"3 commands still running 0.3s after SIGTERM; sending SIGKILL: {groups}",
    ]


def test_orphans_leave_own_group_alone(tmp_path: Path):
    # In a child of its own session, so that a failing guard stops the child, not pytest.
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).parents[1])!r})
from pathlib import Path
from pipeline.orphans import ProcessList, current_host, record_of, stop_orphans
path = Path({str(tmp_path / "own.txt")!r})
path.write_text(record_of(["python"], os.getpgrp()).line(), encoding="utf-8")
report = stop_orphans([ProcessList(current_host(), path)], grace=0.3)
print("stopped", report.stopped)
"""
    child = subprocess.run([sys.executable, "-c", script], start_new_session=True,
                           capture_output=True, text=True, timeout=30)

    assert child.returncode == 0, child.stderr
    assert child.stdout == "stopped []\n"
    assert "is the group of this run, not one that a command leads" in child.stderr


def test_orphans_skip_reused_pid(tmp_path: Path, group: subprocess.Popen[str]):
    record = record_of(["sleep"], group.pid)
    assert record.started is not None
    first = record.started[0]
    reused = ProcessRecord(group.pid, (first - 5, first - 1), "sleep")

    report = stop_orphans([_listed(tmp_path, reused)], grace=0.3)

    assert report.stopped == []
    assert group.poll() is None


def test_orphans_skip_unknown_start_time(tmp_path: Path, group: subprocess.Popen[str],
                                         caplog: pytest.LogCaptureFixture):
    report = stop_orphans([_listed(tmp_path, ProcessRecord(group.pid, None, "sleep"))],
                          grace=0.3)

    assert report.stopped == []
    assert group.poll() is None
    assert "no start time was recorded, so it is left alone" in caplog.text


def test_orphans_skip_finished_command(tmp_path: Path):
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    record = record_of(["python"], process.pid)
    process.wait(timeout=10)

    assert stop_orphans([_listed(tmp_path, record)], grace=0.3).stopped == []


def test_orphans_other_host_named(tmp_path: Path, group: subprocess.Popen[str]):
    where = _listed(tmp_path, record_of(["deploy.sh"], group.pid), host="runner-7")

    report = stop_orphans([where], grace=0.3)

    assert report.stopped == []
    assert report.elsewhere == ["runner-7"]
    assert group.poll() is None
    assert where.path.exists()
    assert report.summary() == (
        "commands of the stopped run may still be running on runner-7: stop them there, "
        "because they can change instances after this recovery")


def test_orphans_missing_list_named(tmp_path: Path):
    deleted = tmp_path / "deleted.txt"

    report = stop_orphans([ProcessList(current_host(), deleted)], grace=0.3)

    assert report.missing == [deleted]
    assert report.stopped == []
    assert report.summary() == (
        f"the list of the commands that the stopped run started is missing ({deleted}), "
        "so any that still run here were not stopped")


def test_orphans_unreadable_list_named(tmp_path: Path):
    folder = tmp_path / "d1.txt"
    folder.mkdir()

    report = stop_orphans([ProcessList(current_host(), folder)], grace=0.3)

    assert report.unreadable == [folder]
    assert report.summary() == (
        f"the list of the commands that the stopped run started cannot be read ({folder}), "
        "so any that still run here were not stopped")


def test_orphans_summary_empty():
    assert OrphanReport().summary() == ""


# -- the list a run writes ---------------------------------------------------------------


STEP = Step("production/1", "deploy", "deploy", "rolling", {}, "rolling", "production")


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[StateWorker]:
    worker = StateWorker(StateLocation("sqlite", path=tmp_path / "state.db"), SystemClock())
    yield worker
    worker.close()


def _deployment(worker: StateWorker) -> str:
    return worker.call(lambda store: store.start_deployment(
        pipeline="shop", environment="production", version="1.1", previous_version="1.0",
        strategy="rolling")).id


def _run(*argv: str, announce: bool = True) -> int:
    result = run_command(list(argv), {}, timeout=10, cancel=None, announce=announce)
    assert result.pid is not None
    return result.pid


def test_process_journal_lists_announced_commands(tmp_path: Path, worker: StateWorker):
    deployment = _deployment(worker)
    journal = ProcessJournal(worker, tmp_path / "lists")
    journal.start(deployment, STEP)
    try:
        first = _run("true")
        _run("true", announce=False)
        second = _run("sh", "-c", "exit 0")
    finally:
        journal.close()

    [where] = lists_in(worker.call(lambda store: store.journal(deployment)))
    assert where == ProcessList(current_host(), tmp_path / "lists" / f"{deployment}.txt")
    assert [(record.pid, record.command) for record in where.read()] == [
        (first, "true"), (second, "sh")]
    assert oct(where.path.stat().st_mode & 0o777) == "0o600"


def test_process_journal_finish_deletes_list(tmp_path: Path, worker: StateWorker):
    deployment = _deployment(worker)
    journal = ProcessJournal(worker, tmp_path / "lists")
    journal.start(deployment, STEP)
    _run("true")
    journal.finish(deployment, recorded=True)
    _run("true")
    journal.close()

    assert list((tmp_path / "lists").iterdir()) == []
    entries = worker.call(lambda store: store.journal(deployment))
    assert [(entry.operation, entry.done) for entry in entries] == [(PROCESS_OPERATION, True)]


def test_process_journal_unrecorded_finish_keeps_list(tmp_path: Path, worker: StateWorker):
    deployment = _deployment(worker)
    journal = ProcessJournal(worker, tmp_path / "lists")
    journal.start(deployment, STEP)
    pid = _run("true")
    journal.finish(deployment, recorded=False)
    journal.close()

    [where] = lists_in(worker.call(lambda store: store.journal(deployment)))
    assert [record.pid for record in where.read()] == [pid]


def test_process_journal_relative_folder_made_absolute(
    tmp_path: Path, worker: StateWorker, monkeypatch: pytest.MonkeyPatch
):
    deployment = _deployment(worker)
    monkeypatch.chdir(tmp_path)
    journal = ProcessJournal(worker, Path("lists"))
    journal.start(deployment, STEP)
    journal.close()

    [where] = lists_in(worker.call(lambda store: store.journal(deployment)))
    assert where.path == tmp_path / "lists" / f"{deployment}.txt"


def test_process_journal_unwritable_folder_skips_list(
    tmp_path: Path, worker: StateWorker, caplog: pytest.LogCaptureFixture
):
    deployment = _deployment(worker)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    journal = ProcessJournal(worker, blocked / "lists")

    journal.start(deployment, STEP)
    _run("true")
    journal.close()

    assert worker.call(lambda store: store.journal(deployment)) == []
    assert f"the commands of deployment {deployment} are not listed" in caplog.text


def test_process_journal_many_threads(tmp_path: Path, worker: StateWorker):
    first, second = _deployment(worker), _deployment(worker)
    journal = ProcessJournal(worker, tmp_path / "lists")
    journal.start(first, STEP)
    journal.start(second, STEP)
    pids: list[int] = []

    def run_some() -> None:
        for _ in range(5):
            pids.append(_run("true"))

    threads = [threading.Thread(target=run_some) for _ in range(8)]
    for thread in threads:
        thread.start()
    # Finished while the threads write: its descriptor must stay open until they are done.
    journal.finish(first, recorded=False)
    for thread in threads:
        thread.join()
    journal.close()

    lists = {where.path.stem: where for where in
             lists_in(worker.call(lambda store: store.journal(second)))}
    listed = [record.pid for record in lists[second].read()]
    assert sorted(listed) == sorted(pids)
    [first_list] = lists_in(worker.call(lambda store: store.journal(first)))
    assert set(record.pid for record in first_list.read()) <= set(pids)
    assert _open_under(tmp_path / "lists") == []


def _open_under(folder: Path) -> list[str]:
    """Return the files under ``folder`` that this process has a descriptor of."""
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{folder}/"):
                opened.append(target)
    return opened


def test_process_journal_recovery_stops_command(tmp_path: Path, worker: StateWorker):
    deployment = _deployment(worker)
    journal = ProcessJournal(worker, tmp_path / "lists")
    journal.start(deployment, STEP)
    cancel = threading.Event()
    results: list[CommandResult] = []
    runner = threading.Thread(target=lambda: results.append(
        run_command("sleep 30", {}, timeout=60, cancel=cancel)))
    runner.start()
    try:
        [where] = lists_in(worker.call(lambda store: store.journal(deployment)))
        deadline = time.monotonic() + 10
        while not where.read() and time.monotonic() < deadline:
            time.sleep(0.01)
        [record] = where.read()

        # The range read from the boot clock must match the start time in /proc, or the
        # recovery would take the command for a new process and leave it running.
        report = stop_orphans([where], grace=5)
    finally:
        cancel.set()
        runner.join(timeout=10)
        journal.close()

    assert report.stopped == [record.pid]
    assert results[0].pid == record.pid
    assert results[0].exit_code is None or results[0].exit_code < 0

