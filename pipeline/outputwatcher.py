"""One thread that reads the output of every running command and notices when each ends.

A rolling deploy runs a batch of commands at once, each started by its own worker
thread. A worker that read its own command's pipes would wake up for every chunk of
output, for each end of file and to poll for the exit. Those wake-ups compete for the
GIL at the moment the next batch could start. The :class:`OutputWatcher`
reads every watched command's pipes with one selector in one daemon thread. It wakes
a worker once: when its command has exited and its output is closed, or when the
command must stop because of its deadline or a cancellation.

Stopping a command (SIGTERM, the grace period, SIGKILL) stays with the worker: the
watcher hands the command back with its pipes still open and reads nothing more.

On Linux a pidfd tells the watcher the moment a process exits. Elsewhere it polls the
processes whose pipes have closed, or whose pipes a background process keeps open,
every :data:`_EXIT_POLL` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.childprocess import Child

logger = logging.getLogger("shipline")

#: Seconds between checks of deadlines and cancel events while nothing happens.
_POLL_INTERVAL = 0.05

#: Seconds between exit checks of a process that has no pidfd.
_EXIT_POLL = 0.005

_READ_SIZE = 65536

#: Outcomes of a watch.
FINISHED = "finished"
TIMED_OUT = "timed out"
CANCELLED = "cancelled"


class Sink(Protocol):
    """A destination for output, such as the bounded buffer ``commands._Tail``."""

    def write(self, data: bytes) -> None: ...


class CancelFlag(Protocol):
    """A flag that stops a command early: a :class:`threading.Event` in practice."""

    def is_set(self) -> bool: ...


@dataclass(eq=False)
class Watch:
    """One command being watched, and how the watch ended once ``done`` is set.

    ``output`` gets stdout and stderr in the order they are read, ``stdout`` stdout
    alone. ``exited_at`` is the monotonic time at which the watcher saw the process
    exit, while ``drain`` seconds after it the watcher still waits for the pipes to
    close.
    """

    child: Child
    deadline: float
    cancel: CancelFlag | None
    output: Sink
    stdout: Sink
    drain: float
    outcome: str = ""
    #: Set when the process exited but a background process still held its output
    #: open after ``drain`` seconds: output after that is not captured.
    abandoned_output: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    open_fds: set[int] = field(default_factory=set)
    pidfd: int = -1
    exited_at: float | None = None


class OutputWatcher:
    """The watcher thread and its selector; :func:`shared` returns the one a process uses."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._pending: list[Watch] = []
        self._active: set[Watch] = set()
        #: Watches without a pidfd: their processes are polled for an exit.
        self._polled: set[Watch] = set()
        #: Watches whose process exited while a background process keeps the output open.
        self._draining: set[Watch] = set()
        #: When to check every watch for its deadline and cancel event next.
        self._next_sweep = 0.0
        self._thread: threading.Thread | None = None

    def watch(self, child: Child, *, deadline: float, cancel: CancelFlag | None,
              output: Sink, stdout: Sink, drain: float) -> Watch:
        """Read ``child``'s output until it exits, ``deadline`` (monotonic) passes or
        ``cancel`` is set, and return the finished watch.

        Blocks the calling thread until then. The pipes stay open: the caller closes
        them, after stopping the command if the outcome is not :data:`FINISHED`.
        """
        entry = Watch(child, deadline, cancel, output, stdout, drain)
        with self._lock:
            self._pending.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="shipline-output",
                                                daemon=True)
                self._thread.start()
        self._wake()
        entry.done.wait()
        return entry

    def _wake(self) -> None:
        # A full pipe already contains wake-ups, so the thread wakes anyway.
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception:
                # A bug here must not leave workers waiting for ever: hand every
                # command back as cancelled, so that its worker stops it.
                logger.exception("the output watcher failed; stopping %d commands",
                                 len(self._active))
                for entry in list(self._active):
                    self._finish(entry, CANCELLED)

    def _step(self) -> None:
        """Wait for events, then check the watches that had one; check every watch for
        its deadline and cancel event at least every :data:`_POLL_INTERVAL` seconds.

        Checking only the watches with events keeps a batch of N commands at O(N)
        work instead of O(N^2), because every registration also wakes the thread.
        """
        touched: set[Watch] = set()
        for key, _events in self._selector.select(self._timeout()):
            if key.data is None:
                self._drain_wake_pipe()
            else:
                self._read(key.fd, *key.data)
                touched.add(key.data[0])
        touched.update(self._take_pending())
        touched.update(self._polled)
        touched.update(self._draining)

        now = time.monotonic()
        if now >= self._next_sweep:
            touched.update(self._active)
            self._next_sweep = now + _POLL_INTERVAL
        for entry in touched:
            if not entry.done.is_set():
                self._check(entry, now)

    def _timeout(self) -> float | None:
        if not self._active:
            return None
        now = time.monotonic()
        timeout = max(self._next_sweep - now, 0.0)
        if self._polled:
            timeout = min(timeout, _EXIT_POLL)
        for entry in self._draining:
            timeout = min(timeout, max((entry.exited_at or now) + entry.drain - now, 0.0))
        return timeout

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _take_pending(self) -> list[Watch]:
        """Register the new watches, and return them so that they get checked once."""
        with self._lock:
            pending, self._pending = self._pending, []
        for entry in pending:
            child = entry.child
            for fd, sink in ((child.stdout, entry.stdout), (child.stderr, None)):
                self._selector.register(fd, selectors.EVENT_READ, (entry, sink))
                entry.open_fds.add(fd)
            entry.pidfd = _open_pidfd(child.pid)
            if entry.pidfd >= 0:
                self._selector.register(entry.pidfd, selectors.EVENT_READ, (entry, "exit"))
            else:
                self._polled.add(entry)
            self._active.add(entry)
            self._next_sweep = min(self._next_sweep, entry.deadline)
        return pending

    def _read(self, fd: int, entry: Watch, sink: Sink | str | None) -> None:
        if sink == "exit":
            self._close_pidfd(entry)
            return
        data = os.read(fd, _READ_SIZE)
        if not data:
            self._selector.unregister(fd)
            entry.open_fds.discard(fd)
            return
        entry.output.write(data)
        if sink is not None and not isinstance(sink, str):
            sink.write(data)

    def _check(self, entry: Watch, now: float) -> None:
        """Finish ``entry`` if its command exited, must stop, or left a background
        process holding its output after the drain time."""
        if entry.cancel is not None and entry.cancel.is_set():
            self._finish(entry, CANCELLED)
            return
        if now >= entry.deadline:
            self._finish(entry, TIMED_OUT)
            return

        if entry.exited_at is None and entry.pidfd < 0 and entry.child.poll() is not None:
            entry.exited_at = now
            self._polled.discard(entry)
        if entry.exited_at is None:
            return
        if not entry.open_fds:
            self._finish(entry, FINISHED)
        elif now - entry.exited_at >= entry.drain:
            entry.abandoned_output = True
            self._finish(entry, FINISHED)
        else:
            self._draining.add(entry)

    def _close_pidfd(self, entry: Watch) -> None:
        """Note the exit that the pidfd reported; the process is reaped by ``poll``."""
        self._selector.unregister(entry.pidfd)
        os.close(entry.pidfd)
        entry.pidfd = -1
        entry.child.poll()
        entry.exited_at = time.monotonic()

    def _finish(self, entry: Watch, outcome: str) -> None:
        for fd in entry.open_fds:
            self._selector.unregister(fd)
        if entry.pidfd >= 0:
            self._selector.unregister(entry.pidfd)
            os.close(entry.pidfd)
            entry.pidfd = -1
        self._active.discard(entry)
        self._polled.discard(entry)
        self._draining.discard(entry)
        entry.outcome = outcome
        entry.done.set()


def _open_pidfd(pid: int) -> int:
    """Return a pidfd for ``pid``, or -1 where the system has none (not Linux 5.3+)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return -1
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return -1
    return fd


_shared_lock = threading.Lock()
_shared: list[OutputWatcher] = []


def shared() -> OutputWatcher:
    """Return the process's one watcher, created on first use."""
    with _shared_lock:
        if not _shared:
            _shared.append(OutputWatcher())
        return _shared[0]
