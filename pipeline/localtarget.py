"""The processes and router of the ``local`` target (see :mod:`pipeline.builtin.local_target`).

The plugin module declares and checks the target's options. It imports this module
only when a run creates the target, because every shipline command imports the plugin
at start-up and only a run starts processes.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.builtin.local_target import (
    CAPABILITIES,
    POLL_INTERVAL,
    REQUEST_TIMEOUT,
    SLOTS,
    STOP_GRACE,
    LocalSettings,
    instance_names,
)
from pipeline.commands import DEFAULT_MAX_OUTPUT, last_line
from pipeline.durations import format_duration
from pipeline.errors import ShiplineError
from pipeline.target import Capability, InstanceResult
from pipeline.templates import build_argv

if TYPE_CHECKING:
    from pipeline.localrouter import LocalRouter

logger = logging.getLogger("shipline")


@dataclass
class _Process:
    """One running instance."""

    instance: str
    slot: str
    version: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path


class LocalTarget:
    """Processes on loopback in two slots, and the router in front of them.

    Implements ``Target``, ``Router`` and ``AddressedTarget``. Operations on one
    instance run one at a time, but different instances may be deployed from several
    threads at once.
    """

    def __init__(self, settings: LocalSettings, router: LocalRouter | None = None) -> None:
        import tempfile

        from pipeline.localrouter import LocalRouter

        self.settings = settings
        self.router = router or LocalRouter(SLOTS, settings.router_port)
        self._names = instance_names(settings.instances)
        self._instance_locks = {name: threading.Lock() for names in self._names.values()
                                for name in names}
        self._processes: dict[str, _Process] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._log_dir = Path(tempfile.mkdtemp(prefix="shipline-local-"))

    @classmethod
    def create(cls, settings: LocalSettings, cancel: threading.Event) -> LocalTarget:
        """Start the router and the stable version on every blue instance.

        Raises ShiplineError, after stopping whatever started, when an instance does
        not become healthy or the router port is taken.
        """
        target = cls(settings)
        atexit.register(target.close)
        try:
            target._start_stable(cancel)
        except BaseException:
            target.close()
            raise
        return target

    def _start_stable(self, cancel: threading.Event) -> None:
        from concurrent.futures import ThreadPoolExecutor

        try:
            self.router.start()
        except OSError as exc:
            raise ShiplineError(f"{self._label()}: router cannot listen on 127.0.0.1:"
                                f"{self.settings.router_port}: {exc.strerror}") from exc

        blue = self._names["blue"]
        with ThreadPoolExecutor(max_workers=len(blue)) as pool:
            results = list(pool.map(
                lambda name: self.deploy(name, self.settings.stable, cancel), blue))

        failed = [result for result in results if not result.ok]
        if failed:
            raise ShiplineError(
                f"{self._label()}: stable version '{self.settings.stable}' did not start: "
                + "; ".join(f"{result.instance}: {result.message}" for result in failed)
            )
        self.router.switch("blue")

    # -- Target --------------------------------------------------------------------------

    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def slots(self) -> Sequence[str]:
        return SLOTS

    def instances(self, slot: str | None = None) -> Sequence[str]:
        """Return every instance name, blue first, or those of ``slot``.

        Raises ValueError for a slot other than blue and green.
        """
        if slot is None:
            return self._names["blue"] + self._names["green"]
        if slot not in self._names:
            raise ValueError(f"unknown slot {slot!r}: use one of {', '.join(SLOTS)}")
        return self._names[slot]

    def deploy(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        """Restart ``instance`` with ``version`` and add it to the router once healthy.

        Waits in real time, at most ``start_timeout`` seconds, and stops early when
        ``cancel`` is set. On failure the new process is stopped, the instance serves
        nothing, and the result carries the process's last output.
        """
        started = time.monotonic()
        slot = self._slot_of(instance)
        if slot is None:
            return InstanceResult(instance, False, f"unknown instance '{instance}'")

        with self._instance_locks[instance]:
            self._stop(instance)
            if cancel.is_set():
                result = InstanceResult(instance, False, "cancelled before it started")
            else:
                result = self._start(instance, slot, version, cancel)

        if not result.ok:
            logger.warning("%s: %s did not start version %s: %s",
                           self._label(), instance, version, result.message)
        return InstanceResult(result.instance, result.ok, result.message, result.output,
                              time.monotonic() - started)

    def health(self, instance: str, cancel: threading.Event) -> InstanceResult:
        """Send one GET to the health path, bounded by :data:`REQUEST_TIMEOUT`.

        The result is ok when the path returns status 200.
        """
        process = self._process(instance)
        if process is None:
            return InstanceResult(instance, False, "not running")
        code = process.popen.poll()
        if code is not None:
            return InstanceResult(instance, False, f"process exited with code {code}",
                                  _read_tail(process.log_path))

        status, text = _get(process.port, self.settings.health_path, REQUEST_TIMEOUT)
        url = _url(process.port, self.settings.health_path)
        if status is None:
            return InstanceResult(instance, False, f"{url}: {text}")
        return InstanceResult(instance, status == 200, f"{url} answered {status}")

    def version(self, instance: str) -> str | None:
        """Return the body of ``GET /version``, stripped, or ``None`` unless its status is 200."""
        process = self._process(instance)
        if process is None:
            return None

        status, text = _get(process.port, "/version", REQUEST_TIMEOUT)
        if status != 200:
            return None
        return text.strip() or None

    def address(self, instance: str) -> str | None:
        """Return ``127.0.0.1:PORT`` of the process of ``instance``, or ``None`` if none runs.

        The port changes at every deploy of the instance.
        """
        process = self._process(instance)
        return None if process is None else f"127.0.0.1:{process.port}"

    def remove(self, instance: str, version: str, cancel: threading.Event) -> InstanceResult:
        """Stop ``instance`` if it runs ``version``, and leave a process of another version.

        Succeeds when the instance does not run ``version`` afterwards.
        """
        started = time.monotonic()
        if self._slot_of(instance) is None:
            return InstanceResult(instance, False, f"unknown instance '{instance}'")

        with self._instance_locks[instance]:
            process = self._process(instance)
            if process is None:
                message = "was not running"
            elif process.version != version:
                message = f"runs version {process.version}, not {version}, so it was left running"
            else:
                self._stop(instance)
                message = f"stopped version {version}"
        return InstanceResult(instance, True, message, duration=time.monotonic() - started)

    def close(self) -> None:
        """Stop every process and the router, and delete the logs. Safe to call twice."""
        import shutil

        with self._lock:
            if self._closed:
                return
            self._closed = True
            processes = list(self._processes.values())
            self._processes.clear()

        for process in processes:
            self.router.remove_backend(process.instance)
        # All backends leave the router first, so that their requests drain together.
        self.router.drain_all()
        _terminate(processes, self._label())
        self.router.close()
        shutil.rmtree(self._log_dir, ignore_errors=True)
        atexit.unregister(self.close)

    # -- Router --------------------------------------------------------------------------

    def active_slot(self) -> str | None:
        return self.router.active_slot()

    def set_weight(self, slot: str, weight: int) -> None:
        self.router.set_weight(slot, weight)

    def switch(self, slot: str) -> None:
        self.router.switch(slot)

    def endpoint(self) -> str | None:
        return self.router.endpoint()

    # -- processes -----------------------------------------------------------------------

    def _start(self, instance: str, slot: str, version: str,
               cancel: threading.Event) -> InstanceResult:
        from pipeline.localrouter import Backend

        port = _free_port()
        argv = build_argv(self.settings.command, {
            "port": str(port), "version": version, "instance": instance, "slot": slot,
        })
        process = self._spawn(instance, slot, version, port, argv)
        if isinstance(process, InstanceResult):
            return process

        problem = self._wait_healthy(process, cancel)
        if problem:
            self._stop(instance)
            output = _read_tail(process.log_path)
            last = last_line(output)
            message = f"{problem}; its last output line: {last}" if last else problem
            return InstanceResult(instance, False, message, output)

        self.router.add_backend(slot, Backend(instance, port, version))
        return InstanceResult(instance, True,
                              f"version {version} serves on 127.0.0.1:{port} "
                              f"(pid {process.popen.pid})")

    def _spawn(self, instance: str, slot: str, version: str, port: int,
               argv: tuple[str, ...]) -> _Process | InstanceResult:
        """Start the process and record it, or return why it could not start."""
        workdir = self.settings.workdir
        if not workdir.is_dir():
            return InstanceResult(instance, False, f"working directory not found: '{workdir}'")

        with self._lock:
            if self._closed:
                return InstanceResult(instance, False, "the target is closed")

        log_path = self._log_dir / f"{instance}.log"
        try:
            log = log_path.open("wb")
        except OSError as exc:
            return InstanceResult(instance, False,
                                  f"cannot write the process log '{log_path}': {exc.strerror}")

        try:
            with log:
                popen = subprocess.Popen(
                    argv, cwd=workdir, env=self._environment(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        except FileNotFoundError:
            return InstanceResult(instance, False, f"command not found: '{argv[0]}'")
        except PermissionError:
            return InstanceResult(instance, False, f"permission denied: '{argv[0]}'")
        except OSError as exc:
            return InstanceResult(instance, False,
                                  f"cannot run '{argv[0]}': {exc.strerror or exc}")

        process = _Process(instance, slot, version, port, popen, log_path)
        with self._lock:
            closed = self._closed
            if not closed:
                self._processes[instance] = process
        if closed:
            _terminate([process], self._label())
            return InstanceResult(instance, False, "the target was closed during the deploy")

        logger.info("%s: started %s version %s (pid %d, port %d)", self._label(),
                    instance, version, popen.pid, port)
        return process

    def _environment(self) -> dict[str, str]:
        # Unbuffered output lets a Python service's last lines reach the log even when
        # it is killed. The pipeline's own env can set the variable otherwise.
        return {**os.environ, "PYTHONUNBUFFERED": "1", **self.settings.env}

    def _wait_healthy(self, process: _Process, cancel: threading.Event) -> str | None:
        """Poll the health path until it returns status 200; return the problem, or ``None``."""
        timeout = self.settings.start_timeout
        deadline = time.monotonic() + timeout
        url = _url(process.port, self.settings.health_path)
        while True:
            code = process.popen.poll()
            if code is not None:
                return f"process exited with code {code} before it became healthy"

            remaining = deadline - time.monotonic()
            status, text = _get(process.port, self.settings.health_path,
                                max(min(REQUEST_TIMEOUT, remaining), 0.01))
            if status == 200:
                return None

            remaining = deadline - time.monotonic()
            if remaining <= 0:
                last = f"failed: {text}" if status is None else f"answered {status}"
                return f"not healthy within {format_duration(timeout)}: {url} {last}"
            if cancel.wait(min(POLL_INTERVAL, remaining)):
                return "cancelled while waiting for it to become healthy"

    def _stop(self, instance: str) -> None:
        with self._lock:
            process = self._processes.pop(instance, None)
        if process is None:
            return
        self.router.remove_backend(instance, drain=True)
        _terminate([process], self._label())

    def _process(self, instance: str) -> _Process | None:
        with self._lock:
            return self._processes.get(instance)

    def _slot_of(self, instance: str) -> str | None:
        for slot, names in self._names.items():
            if instance in names:
                return slot
        return None

    def _label(self) -> str:
        if self.settings.environment:
            return f"environment '{self.settings.environment}': local target"
        return "local target"


def _terminate(processes: Sequence[_Process], label: str) -> None:
    """Stop the process groups: SIGTERM to all, SIGKILL to those still there after a grace."""
    for process in processes:
        _signal_group(process.popen.pid, signal.SIGTERM)

    deadline = time.monotonic() + STOP_GRACE
    for process in processes:
        try:
            process.popen.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            logger.warning("%s: %s (pid %d) ignored SIGTERM; sending SIGKILL",
                           label, process.instance, process.popen.pid)
        # Also kill what the process started in its group and left behind. The group ID
        # cannot be reused while any member of the group is alive.
        _signal_group(process.popen.pid, signal.SIGKILL)
        process.popen.wait()
        logger.info("%s: stopped %s version %s (pid %d)",
                    label, process.instance, process.version, process.popen.pid)


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _free_port() -> int:
    """Return a loopback port that was free a moment ago.

    NOTE: another program may take the port before the instance binds it. The deploy
    then fails with the instance's own error and can be retried.
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str, timeout: float) -> tuple[int | None, str]:
    """Send GET ``path`` to ``127.0.0.1:port``; return the status and body, or ``None`` and why."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read(DEFAULT_MAX_OUTPUT).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, str(exc) or type(exc).__name__
    finally:
        connection.close()
    return response.status, body


def _url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


def _read_tail(path: Path, limit: int = DEFAULT_MAX_OUTPUT) -> str:
    """Return the last ``limit`` bytes of the process log at ``path``, as text."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(size - limit, 0))
            data = log.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        return f"[... {size - limit} bytes of earlier output omitted ...]\n{text}"
    return text
