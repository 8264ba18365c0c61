"""Starting a command as a child process in its own session, with its output on pipes.

:func:`start_child` uses :func:`os.posix_spawn` when it can. A rolling deploy starts
hundreds of commands, and posix_spawn skips most of the Python code that
:class:`subprocess.Popen` runs for each start. It falls back to
Popen where posix_spawn cannot do what the command needs: a working directory other
than shipline's own (posix_spawn has no way to change it in the child), or a platform
without ``setsid`` support for posix_spawn.

Either way the child gets stdin from ``/dev/null`` and its own session and process
group, so that the whole group can be stopped. SIGPIPE and SIGXFSZ get their default
actions back, as Popen does. The child inherits no file descriptor of shipline's other
than the pipes, because Python creates descriptors non-inheritable.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger("shipline")

#: Signals that Python ignores and that a command must get with their default action.
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name)
)


#: Paths found by :func:`_find_executable`, by command name and search path.
_found: dict[tuple[str, str], str] = {}


class Child:
    """A started command: its process id, which is also its process group id, and the
    read ends of its stdout and stderr pipes.

    The caller owns the two descriptors and closes them with :meth:`close_pipes`.
    :meth:`poll` and :meth:`wait` reap the process once and then keep its exit code:
    negative for a process killed by a signal, as in :mod:`subprocess`.
    """

    def __init__(self, pid: int, stdout: int, stderr: int,
                 popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._popen = popen
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        """Return the exit code if the process has exited, else ``None``, without waiting."""
        with self._lock:
            if self.returncode is None:
                self.returncode = self._reap()
            return self.returncode

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to exit; return its exit code,
        or ``None`` if it is still running."""
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            code = self.poll()
            remaining = deadline - time.monotonic()
            if code is not None or remaining <= 0:
                return code
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.02)

    def close_pipes(self) -> None:
        """Close the read ends of both pipes; safe to call more than once."""
        for name in ("stdout", "stderr"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def _reap(self) -> int | None:
        if self._popen is not None:
            return self._popen.poll()
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Someone else reaped it (SIGCHLD set to be ignored): the exit code is lost.
            logger.warning("exit code of pid %d is lost: the process was reaped elsewhere",
                           self.pid)
            return 0
        if pid == 0:
            return None
        return os.waitstatus_to_exitcode(status)


def start_child(argv: Sequence[str], *, cwd: Path | None = None,
                env: Mapping[str, str] | None = None) -> Child:
    """Start ``argv`` in ``cwd`` with environment ``env`` (default: shipline's own).

    A bare command name is looked up in the ``PATH`` of ``env``, as Popen does. Raises
    :class:`OSError` when the command cannot start: FileNotFoundError when it is not
    found, PermissionError when it is not executable.
    """
    if hasattr(os, "posix_spawn") and _is_current_directory(cwd):
        try:
            return _spawn(argv, os.environ if env is None else env)
        except NotImplementedError:
            logger.debug("posix_spawn cannot start a new session here; using subprocess")
    return _popen(argv, cwd, env)


def _is_current_directory(cwd: Path | None) -> bool:
    if cwd is None:
        return True
    try:
        current = os.getcwd()
        # abspath needs no system call: try it before resolving symbolic links.
        return (os.path.abspath(cwd) == current
                or os.path.realpath(cwd) == os.path.realpath(current))
    except OSError:
        return False


def _spawn(argv: Sequence[str], env: Mapping[str, str]) -> Child:
    executable = _find_executable(argv[0], env)
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, stdout_write, 1),
        (os.POSIX_SPAWN_DUP2, stderr_write, 2),
    ]

    try:
        pid = os.posix_spawn(executable, list(argv), env, file_actions=actions,
                             setsid=True, setsigdef=_DEFAULT_SIGNALS)
    except BaseException:
        os.close(stdout_read)
        os.close(stderr_read)
        raise
    finally:
        os.close(stdout_write)
        os.close(stderr_write)
    return Child(pid, stdout_read, stderr_read)


def _find_executable(command: str, env: Mapping[str, str]) -> str:
    """Return the path to run for ``command``: as given when it contains a slash.

    A command found once is not searched for again: a rolling deploy runs the same
    command hundreds of times. If the file disappears later, posix_spawn reports it as
    not found.

    NOTE: a file on PATH that exists but is not executable counts as not found here,
    where Popen would report permission denied.
    """
    if os.sep in command:
        return command
    search_path = env.get("PATH", os.defpath)
    found = _found.get((command, search_path))
    if found is None:
        found = shutil.which(command, path=search_path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)
        _found[command, search_path] = found
    return found


def _popen(argv: Sequence[str], cwd: Path | None, env: Mapping[str, str] | None) -> Child:
    process = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=cwd, env=env, start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    # The Child owns the descriptors from here on: detach them from Popen's file objects.
    stdout = os.dup(process.stdout.fileno())
    stderr = os.dup(process.stderr.fileno())
    process.stdout.close()
    process.stderr.close()
    return Child(process.pid, stdout, stderr, popen=process)
