"""Running command templates as subprocesses, bounded in time and output.

How a template becomes an argument vector is described in :mod:`pipeline.templates`.
Each command runs in its own process group. On timeout or cancellation the whole group
gets SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds, so children such as an
``ssh`` started by a script stop too. Stdout and stderr are read as they arrive, so a
command that writes a lot cannot block on a full pipe, and only the last
``max_output`` bytes of each are kept.
"""

from __future__ import annotations

import logging
import math
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.cancel import CancelEvent
from pipeline.durations import format_duration
from pipeline.errors import ShiplineError
from pipeline.templates import build_argv

logger = logging.getLogger("shipline")

#: Bytes of output kept per command by default (the tail; earlier output is dropped).
DEFAULT_MAX_OUTPUT = 64 * 1024

#: Seconds between SIGTERM and SIGKILL when a command is stopped.
KILL_GRACE = 2.0

#: Seconds between checks of the cancel event while a command runs, when the event is
#: a plain threading.Event rather than a CancelEvent, or the exit is polled for.
_POLL_INTERVAL = 0.05

#: Seconds between checks of a CancelEvent, which wakes the command's selector itself:
#: a safety net for a wake-up lost to a set() racing with clear().
_CANCEL_CHECK = 1.0

#: Seconds to keep reading after the command exited while a background process it
#: started keeps its output open.
_DRAIN_GRACE = 0.2

#: A function called with the argument list, the process id and the boot clock time
#: just before the start (see :func:`boot_clock_ns`) of each command that starts.
StartListener = Callable[[Sequence[str], int, "int | None"], None]

#: The clock that /proc/PID/stat gives process start times in; Linux only.
_BOOT_CLOCK: int | None = getattr(time, "CLOCK_BOOTTIME", None)

_start_listeners: list[StartListener] = []
_listeners_guard = threading.Lock()


def add_start_listener(listener: StartListener) -> None:
    """Call ``listener`` after each command of this process starts, on the thread that
    started it. The run uses it to list commands that a SIGKILL would leave running.
    The process started between the boot clock time passed and the time of the call.
    The listener must not raise, because the command already runs."""
    with _listeners_guard:
        _start_listeners.append(listener)


def remove_start_listener(listener: StartListener) -> None:
    """Stop calling ``listener``; a listener that was not added is ignored."""
    with _listeners_guard:
        if listener in _start_listeners:
            _start_listeners.remove(listener)


def boot_clock_ns() -> int | None:
    """Return the time since boot in nanoseconds (CLOCK_BOOTTIME), the clock of the
    process start times in /proc/PID/stat, or None where the system has no such clock."""
    if _BOOT_CLOCK is None:
        return None
    return time.clock_gettime_ns(_BOOT_CLOCK)


def _notify_started(argv: Sequence[str], pid: int, before: int | None) -> None:
    with _listeners_guard:
        listeners = list(_start_listeners)
    for listener in listeners:
        listener(argv, pid, before)

_READ_SIZE = 65536


class CommandFailed(ShiplineError):
    """A failed command that its caller cannot continue past, such as a traffic switch.

    ``result`` contains the exit code and captured output for the step report.
    """

    def __init__(self, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class CommandResult:
    """The result of one command run.

    ``output`` is stdout and stderr interleaved in the order they were read, ``stdout``
    is stdout alone. Both keep only their last ``max_output`` bytes, after a line that
    gives the number of bytes dropped. ``exit_code`` is ``None`` when the command did not start
    or was killed after a timeout or cancellation. ``duration`` is in seconds.
    """

    argv: tuple[str, ...]
    exit_code: int | None
    output: str = ""
    stdout: str = ""
    duration: float = 0.0
    timed_out: bool = False
    cancelled: bool = False
    not_found: bool = False
    #: Why the command did not run (not found, no permission, missing directory).
    error: str = ""
    #: Seconds allowed, for the message of a timed-out command.
    timeout: float = 0.0
    stdout_truncated: bool = False
    #: Process id of the command, which is also its process group id; ``None`` if it
    #: did not start.
    pid: int | None = None

    @property
    def ok(self) -> bool:
        """Tell whether the command ran to the end and exited with code 0."""
        return self.exit_code == 0 and not (self.timed_out or self.cancelled or self.error)

    @property
    def message(self) -> str:
        """Return one line on how the command ended, with its last output line on failure."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {format_duration(self.timeout)}"
        if self.cancelled:
            return "cancelled"
        summary = f"exit code {self.exit_code}"
        last = last_line(self.output)
        if self.exit_code != 0 and last:
            summary += f": {last}"
        return summary


def last_line(text: str, limit: int = 200) -> str:
    """Return the last non-blank line of ``text``, stripped and cut to ``limit`` characters."""
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped:
            return stripped if len(stripped) <= limit else stripped[: limit - 3] + "..."
    return ""


# -- running -----------------------------------------------------------------------------


class _Tail:
    """The last ``limit`` bytes written to it, and how many bytes came before them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> None:
        self.buffer += data
        # Trim only once the buffer is twice the limit, so each byte is copied a
        # bounded number of times however small the chunks are.
        if len(self.buffer) > 2 * self.limit:
            self._trim()

    def _trim(self) -> None:
        excess = len(self.buffer) - self.limit
        if excess > 0:
            del self.buffer[:excess]
            self.dropped += excess

    def text(self) -> str:
        self._trim()
        data = bytes(self.buffer)
        if self.dropped:
            # Skip UTF-8 continuation bytes left over from a character cut in half.
            start = 0
            while start < len(data) and start < 4 and (data[start] & 0xC0) == 0x80:
                start += 1
            data = data[start:]
        text = data.decode("utf-8", errors="replace")
        if self.dropped:
            return f"[... {self.dropped} bytes of earlier output omitted ...]\n{text}"
        return text


def run_command(
    template: str | Sequence[str],
    placeholders: Mapping[str, str],
    *,
    timeout: float,
    cancel: threading.Event | None,
    shell: bool = False,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    base_env: Mapping[str, str] | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
    announce: bool = True,
) -> CommandResult:
    """Run ``template`` with ``placeholders`` filled in and return how it ended.

    ``timeout`` is in seconds; ``cancel``, when set, stops the command early. ``env``
    adds variables to ``base_env``, by default the environment that shipline itself
    runs with at the time of the call. A caller that runs many commands with added
    variables passes them merged into ``base_env`` once, because merging them into a
    copy of ``os.environ`` for each command costs tens of microseconds of Python work.
    Processes that the command leaves running in the background after it exits are not
    stopped, and what they write after that is not captured. Raises TemplateError
    before anything runs when the template cannot be filled in; every problem after
    that (not found, timeout, exit code) is in the result. ``announce`` False keeps the
    start listeners from hearing of the command: read-only probes (a version or health
    command, a metric query) pass it, so that a run does not journal every probe.
    """
    argv = build_argv(template, placeholders, shell=shell)
    started = time.monotonic()
    child_env = base_env
    if env:
        child_env = {**(os.environ if base_env is None else base_env), **env}

    # The pipes are plain descriptors, not the file objects that stdout=PIPE creates:
    # the output is read with os.read, and each file object costs system calls
    # (fstat, lseek, ioctl) that a rolling deploy would pay for every instance.
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    before = boot_clock_ns() if announce else None
    try:
        process = subprocess.Popen(
            argv, executable=_find_executable(argv[0], child_env), stdin=_devnull(),
            stdout=stdout_write, stderr=stderr_write, cwd=cwd, env=child_env,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(stdout_read)
        os.close(stderr_read)
        return _start_failed(argv, exc, time.monotonic() - started, cwd)
    finally:
        os.close(stdout_write)
        os.close(stderr_write)

    logger.debug("started %s (pid %d)", argv[0], process.pid)
    if announce:
        _notify_started(argv, process.pid, before)
    supervisor = _Supervisor(process, argv, stdout_read, stderr_read, timeout=timeout,
                             cancel=cancel, max_output=max_output, started=started)
    return supervisor.run()


#: The descriptor that _devnull() opened, once it has.
_devnull_fd: list[int] = []
_devnull_guard = threading.Lock()


def _devnull() -> int:
    """Return a descriptor of /dev/null for the standard input of commands, opened once
    for the life of the process instead of once per command as stdin=DEVNULL does."""
    if not _devnull_fd:
        with _devnull_guard:
            if not _devnull_fd:
                _devnull_fd.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _devnull_fd[0]


#: Absolute paths of commands found on PATH, by command name and PATH value.
_executables: dict[tuple[str, str], str] = {}


def _find_executable(command: str, env: Mapping[str, str] | None) -> str | None:
    """Return the absolute path that a bare command name runs, found once per PATH.

    A rolling deploy runs the same command for every instance, and Popen otherwise
    builds the list of candidate paths again for each one. ``None`` leaves the search
    to Popen: for a path with a slash, a command not found (so that Popen reports it),
    and a relative PATH entry, which the command's working directory would change.
    """
    if os.sep in command:
        return None
    search_path = (os.environ if env is None else env).get("PATH", os.defpath)
    found = _executables.get((command, search_path))
    if found is None:
        found = shutil.which(command, path=search_path)
        if found is None or not os.path.isabs(found):
            return None
        _executables[command, search_path] = found
    return found


def _start_failed(argv: tuple[str, ...], exc: OSError, duration: float,
                  cwd: Path | None) -> CommandResult:
    # Popen reports a missing working directory as FileNotFoundError too, so the folder
    # is checked here, after the failure, rather than before every command.
    if cwd is not None and not cwd.is_dir():
        problem = "is not a folder" if cwd.exists() else "not found"
        return CommandResult(argv, None, duration=duration,
                             error=f"working directory {problem}: '{cwd}'")
    if isinstance(exc, FileNotFoundError):
        return CommandResult(argv, None, duration=duration, not_found=True,
                             error=f"command not found: '{argv[0]}'")
    if isinstance(exc, PermissionError):
        message = f"permission denied: '{argv[0]}'"
    else:
        message = f"cannot run '{argv[0]}': {exc.strerror or exc}"
    logger.warning("%s", message)
    return CommandResult(argv, None, duration=duration, error=message)


#: Roles of the watched descriptors other than the output pipes.
_EXIT = "exit"
_CANCEL = "cancel"


def _open_pidfd(pid: int) -> int | None:
    """Return a file descriptor that turns readable when process ``pid`` exits, or None
    where the system has none (Linux before 5.3, macOS, a sandbox that forbids it)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return int(pidfd_open(pid))
    except OSError as exc:
        logger.debug("pidfd_open(%d) failed, polling for the exit instead: %s", pid, exc)
        return None


class _Supervisor:
    """Reads one process's output and enforces its timeout and cancellation.

    The process's exit is watched through a pidfd in the same poll set as its output,
    where the system has one. Without it, the exit is polled for, which adds up to a
    millisecond or two to every command: the output pipes close before the process can
    be reaped, and Popen's timed wait sleeps between its checks.

    select.poll is used directly rather than through the selectors module: a rolling
    deploy supervises one command per instance, and the selectors module's bookkeeping
    for four descriptors cost a fifth of the Python time of running a short command.
    """

    def __init__(self, process: subprocess.Popen[bytes], argv: tuple[str, ...],
                 stdout: int, stderr: int, *, timeout: float,
                 cancel: threading.Event | None, max_output: int, started: float) -> None:
        self.process = process
        self.argv = argv
        self.timeout = timeout
        self.cancel = cancel
        self.started = started
        self.deadline = started + timeout
        self.output = _Tail(max_output)
        self.stdout = _Tail(max_output)
        #: The read ends of the output pipes, which the supervisor closes.
        self.stdout_fd = stdout
        self.stderr_fd = stderr
        self.poll = select.poll()
        #: What each watched descriptor is: a _Tail to copy output into (stdout), None
        #: (stderr, which goes to the combined output only), _EXIT or _CANCEL.
        self.watched: dict[int, _Tail | str | None] = {}
        self.pidfd: int | None = None
        #: Output pipes not at end of file yet.
        self.open_pipes = 2
        #: The cancel event's pipe while it is watched.
        self.cancel_fd: int | None = None
        self.timed_out = False
        self.cancelled = False

    def run(self) -> CommandResult:
        self._watch(self.stdout_fd, self.stdout)
        self._watch(self.stderr_fd, None)
        self.pidfd = _open_pidfd(self.process.pid)
        if self.pidfd is not None:
            self._watch(self.pidfd, _EXIT)
            # Without a pidfd the exit is polled for anyway.
            if isinstance(self.cancel, CancelEvent):
                self.cancel_fd = self.cancel.fileno()
                self._watch(self.cancel_fd, _CANCEL)
        try:
            self._read_until_exit()
            if self.timed_out or self.cancelled:
                self._unwatch_cancel()
                self._stop()
                self._drain(_DRAIN_GRACE)
        finally:
            os.close(self.stdout_fd)
            os.close(self.stderr_fd)
            if self.pidfd is not None:
                os.close(self.pidfd)

        exit_code = None if (self.timed_out or self.cancelled) else self.process.returncode
        return CommandResult(
            self.argv, exit_code, output=self.output.text(), stdout=self.stdout.text(),
            duration=time.monotonic() - self.started, timed_out=self.timed_out,
            cancelled=self.cancelled, timeout=self.timeout,
            stdout_truncated=self.stdout.dropped > 0, pid=self.process.pid,
        )

    def _watch(self, fd: int, role: _Tail | str | None) -> None:
        self.poll.register(fd, select.POLLIN)
        self.watched[fd] = role

    def _unwatch(self, fd: int) -> None:
        self.poll.unregister(fd)
        del self.watched[fd]

    def _read_until_exit(self) -> None:
        """Read output until the process exits and its pipes close, or it must stop."""
        exited_at: float | None = None
        while self._output_open() or (self.pidfd is not None and exited_at is None):
            if self._must_stop():
                return
            now = time.monotonic()
            check_every = _POLL_INTERVAL if self.cancel_fd is None else _CANCEL_CHECK
            wait = min(check_every, max(self.deadline - now, 0.0))
            if exited_at is not None:
                # Once the process has exited, a background process that keeps its
                # output open gets the drain grace, not one more cancel check.
                wait = min(wait, max(exited_at + _DRAIN_GRACE - now, 0.0))
            if self._read_ready(wait) and exited_at is None:
                exited_at = time.monotonic()

            if exited_at is None and self.pidfd is None and self.process.poll() is not None:
                exited_at = now
            elif exited_at is not None and time.monotonic() - exited_at > _DRAIN_GRACE:
                logger.debug("%s exited but a background process keeps its output open; "
                             "output after this point is not captured", self.argv[0])
                break

        self._wait_for_exit()

    def _unwatch_cancel(self) -> None:
        """Stop waiting for the cancel event's pipe, which stays readable once set."""
        if self.cancel_fd is not None:
            self._unwatch(self.cancel_fd)
            self.cancel_fd = None

    def _output_open(self) -> bool:
        """Tell whether an output pipe of the process is still open."""
        return self.open_pipes > 0

    def _wait_for_exit(self) -> None:
        """Wait for the process after its output closed, still honouring the limits."""
        while self.process.poll() is None:
            if self._must_stop():
                return
            remaining = max(self.deadline - time.monotonic(), 0.0)
            try:
                self.process.wait(min(_POLL_INTERVAL, remaining))
            except subprocess.TimeoutExpired:
                continue

    def _must_stop(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
        elif time.monotonic() >= self.deadline:
            self.timed_out = True
        return self.cancelled or self.timed_out

    def _read_ready(self, wait: float) -> bool:
        """Read what the pipes have, waiting at most ``wait`` seconds for anything to
        happen; return True when the pidfd reported the exit of the process."""
        exited = False
        # poll() takes milliseconds; rounding up keeps a short wait from becoming a spin.
        # Every event counts as readable: POLLHUP and POLLERR come with a pipe at its end,
        # which os.read then reports as b"".
        for fd, _events in self.poll.poll(math.ceil(wait * 1000)):
            role = self.watched[fd]
            if role is _EXIT:
                self._unwatch(fd)
                exited = True
                continue
            if role is _CANCEL:
                if self.cancel is None or not self.cancel.is_set():
                    # A stale wake-up (see CancelEvent), so fall back to polling.
                    self._unwatch_cancel()
                continue
            data = os.read(fd, _READ_SIZE)
            if not data:
                self._unwatch(fd)
                self.open_pipes -= 1
                continue
            self.output.write(data)
            if isinstance(role, _Tail):
                role.write(data)
        return exited

    def _drain(self, seconds: float) -> None:
        """Read what the stopped process group wrote last, for at most ``seconds``."""
        end = time.monotonic() + seconds
        while self._output_open() and time.monotonic() < end:
            self._read_ready(max(end - time.monotonic(), 0.0))

    def _stop(self) -> None:
        """Terminate the process group: SIGTERM, then SIGKILL after the grace period.

        The group counts as stopped once its leader has exited and nothing keeps the
        output pipes open any more. Whatever is left after that, or after the grace
        period, gets SIGKILL. Zombies cannot serve as the test: where PID 1 does not
        reap orphans (in some containers) they stay in the group indefinitely.
        """
        reason = "timed out" if self.timed_out else "cancelled"
        logger.info("%s %s (pid %d); stopping its process group", self.argv[0], reason,
                    self.process.pid)
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)

        end = time.monotonic() + KILL_GRACE
        while time.monotonic() < end:
            if self.process.poll() is not None and not self._output_open():
                break
            self._read_ready(0.02)
        else:
            logger.warning("%s (pid %d) still running %ss after SIGTERM; sending SIGKILL",
                           self.argv[0], group, KILL_GRACE)

        _signal_group(group, signal.SIGKILL)
        try:
            self.process.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            logger.error("%s (pid %d) did not exit after SIGKILL", self.argv[0], group)


def _signal_group(group: int, signum: signal.Signals) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        logger.warning("cannot send %s to process group %d: permission denied",
                       signum.name, group)
