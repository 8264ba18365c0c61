"""The cancel event of a run: a threading.Event that a selector can also wait for.

A command that runs for minutes waits in a selector for its output and its exit. To
notice cancellation (Ctrl-C, a step timeout) with a plain Event it must wake up every
few tens of milliseconds to look, and a rolling batch of 50 commands then wakes 50
threads at a time, over and over. :class:`CancelEvent` adds a pipe that is readable
while the event is set, so the selector wakes up at the moment of the cancel instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref

#: Seconds a cancelled step gets to stop before the runner rolls back without it.
CANCEL_GRACE = 30.0


class CancelEvent(threading.Event):
    """An Event with :meth:`fileno`, a descriptor that is readable while the event is set.

    ``set()`` stays safe to call from a signal handler: it takes no lock besides the
    Event's own. A ``set()`` that races with ``clear()`` in another thread can leave
    the pipe readable while the event is clear. A waiter that finds the pipe readable
    must therefore check :meth:`is_set`, and poll instead if it is not set.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pipe: tuple[int, int] | None = None
        self._pipe_lock = threading.Lock()

    def fileno(self) -> int:
        """Return the read end of the pipe, created on first use and closed with the event."""
        with self._pipe_lock:
            if self._pipe is None:
                read, write = os.pipe()
                os.set_blocking(read, False)
                os.set_blocking(write, False)
                self._pipe = (read, write)
                weakref.finalize(self, _close, read, write)
                if self.is_set():
                    _fill(write)
            return self._pipe[0]

    def set(self) -> None:
        super().set()
        pipe = self._pipe
        if pipe is not None:
            _fill(pipe[1])

    def clear(self) -> None:
        super().clear()
        pipe = self._pipe
        if pipe is None:
            return
        _empty(pipe[0])
        # A set() from another thread between the two lines above lost its byte.
        if self.is_set():
            _fill(pipe[1])


def _fill(descriptor: int) -> None:
    # A full pipe is readable already.
    with contextlib.suppress(BlockingIOError):
        os.write(descriptor, b"\0")


def _empty(descriptor: int) -> None:
    # The write end stays open, so reading ends with BlockingIOError, not end of file.
    with contextlib.suppress(BlockingIOError):
        while os.read(descriptor, 4096):
            pass


def _close(*descriptors: int) -> None:
    for descriptor in descriptors:
        os.close(descriptor)
