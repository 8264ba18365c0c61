"""Time, behind an interface, so that pauses of minutes run in microseconds in tests.

Everything in shipline that waits goes through a :class:`Clock`. A wait can be cut
short by a cancel event (set by SIGINT or SIGTERM), and reports whether it was.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in seconds, wall time, and cancellable sleeping."""

    def monotonic(self) -> float: ...

    def time(self) -> float:
        """Return Unix time in seconds."""
        ...

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        """Wait ``seconds``; return ``False`` if ``cancel`` was set before the end."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        if seconds <= 0:
            return not (cancel is not None and cancel.is_set())
        if cancel is None:
            time.sleep(seconds)
            return True
        return not cancel.wait(seconds)


class FakeClock:
    """A clock whose sleeps return at once and advance its time by the amount slept.

    Safe to share between threads: each sleep advances the shared time, so parallel
    sleeps add up rather than overlap. Tests that need real concurrency use
    :class:`SystemClock` with short durations.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._start = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now - self._start

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> bool:
        if cancel is not None and cancel.is_set():
            return False
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)
        return True
