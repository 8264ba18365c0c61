"""Tests of pipeline.outputwatcher: one thread reading the output of many commands."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline import outputwatcher
from pipeline.childprocess import Child, start_child
from pipeline.outputwatcher import CANCELLED, FINISHED, TIMED_OUT, OutputWatcher, Watch


class Buffer:
    """A sink that keeps everything written to it."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


@pytest.fixture(params=["pidfd", "polling"])
def watcher(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> OutputWatcher:
    """A new watcher, once with pidfds and once polling for exits as off Linux."""
    if request.param == "polling":
        monkeypatch.setattr(outputwatcher, "_open_pidfd", lambda pid: -1)
    return OutputWatcher()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children started by a test, killed and closed after it."""
    started: list[Child] = []
    yield started
    for child in started:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        child.close_pipes()


def watch(
    watcher: OutputWatcher, child: Child, *, timeout: float = 10.0,
    cancel: threading.Event | None = None, drain: float = 0.2,
) -> tuple[Watch, Buffer, Buffer]:
    """Watch ``child`` until the watch ends; return it with the output and stdout seen."""
    output, stdout = Buffer(), Buffer()
    entry = watcher.watch(child, deadline=time.monotonic() + timeout, cancel=cancel,
                          output=output, stdout=stdout, drain=drain)
    return entry, output, stdout


def test_watch_finishes_with_output(watcher: OutputWatcher, children: list[Child]) -> None:
    children.append(start_child(["sh", "-c", "echo out; echo err >&2; exit 4"]))

    entry, output, stdout = watch(watcher, children[0])

    assert entry.outcome == FINISHED
    assert children[0].poll() == 4
    assert output.data in (b"out\nerr\n", b"err\nout\n")
    assert stdout.data == b"out\n"
    assert entry.open_fds == set()


def test_watch_many_at_once(watcher: OutputWatcher, children: list[Child]) -> None:
    results: dict[int, tuple[str, bytes]] = {}

    def run(index: int) -> None:
        child = start_child(["sh", "-c", f"sleep 0.05; echo {index}"])
        children.append(child)
        entry, _output, stdout = watch(watcher, child)
        results[index] = (entry.outcome, stdout.data)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {index: (FINISHED, f"{index}\n".encode()) for index in range(30)}


def test_watch_deadline_hands_back_open_pipes(
    watcher: OutputWatcher, children: list[Child]
) -> None:
    children.append(start_child(["sh", "-c", "echo begun; sleep 10"]))

    entry, output, _stdout = watch(watcher, children[0], timeout=0.2)

    assert entry.outcome == TIMED_OUT
    assert children[0].poll() is None
    assert entry.open_fds == {children[0].stdout, children[0].stderr}
    assert output.data == b"begun\n"


def test_watch_cancel_hands_back(watcher: OutputWatcher, children: list[Child]) -> None:
    cancel = threading.Event()
    children.append(start_child(["sleep", "10"]))
    threading.Timer(0.05, cancel.set).start()

    entry, _output, _stdout = watch(watcher, children[0], cancel=cancel)

    assert entry.outcome == CANCELLED


def test_watch_background_process_keeps_output_open(
    watcher: OutputWatcher, children: list[Child]
) -> None:
    children.append(start_child(["sh", "-c", "sleep 5 & echo started"]))

    entry, output, _stdout = watch(watcher, children[0], drain=0.1)

    assert entry.outcome == FINISHED
    assert entry.abandoned_output
    assert children[0].poll() == 0
    assert output.data == b"started\n"


def test_shared_returns_one_watcher() -> None:
    assert outputwatcher.shared() is outputwatcher.shared()
