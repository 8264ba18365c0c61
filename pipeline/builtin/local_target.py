"""The ``local`` target: instances are processes on 127.0.0.1 behind a weighted router.

It exists for the examples, the tests and rehearsing a pipeline on a laptop or in a CI
job. An environment such as::

    target:
      type: local
      command: python3 demo-service/app.py --port {port} --version {version}
      stable: "1.0.0"
      instances: 2

gets two slots, ``blue`` and ``green``, with instances ``blue-1``, ``blue-2``,
``green-1`` and ``green-2``. When the target is created, the ``stable`` version starts
on every blue instance and blue becomes the active slot of the router, because nothing
runs before the run. The target is its own router (a :class:`LocalRouter`): canary
weights and blue-green switches move requests between the slots.

Each deploy starts the command with ``{port}`` set to a free loopback port,
``{version}``, ``{instance}`` and ``{slot}``, in its own process group, with the
pipeline file's folder as working directory. The instance joins the router once its
health path returns status 200. Every process is stopped when the run ends, and by an
``atexit`` handler if the run does not end normally.

The modules that only a running target needs (:mod:`pipeline.localrouter`,
``http.client``, ``socket``, ``tempfile``, ...) are imported where they are used,
because every shipline command imports this plugin at start-up.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.commands import DEFAULT_MAX_OUTPUT, build_argv, check_template, last_line
from pipeline.durations import DURATION_PATTERN, format_duration, parse_duration
from pipeline.errors import ShiplineError
from pipeline.schema import StepSchema
from pipeline.target import Capability, InstanceResult

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.localrouter import LocalRouter
    from pipeline.plan import Environment

logger = logging.getLogger("shipline")

TARGET_TYPE = "local"
SLOTS = ("blue", "green")
PLACEHOLDERS = ("port", "version", "instance", "slot")

#: Seconds a stopped process gets between SIGTERM and SIGKILL.
STOP_GRACE = 5.0

#: Seconds one health or version request may take.
REQUEST_TIMEOUT = 2.0

#: Seconds between health requests while an instance starts.
_POLL_INTERVAL = 0.05

_CAPABILITIES = frozenset({Capability.WEIGHTS, Capability.SLOTS})

_DURATION_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "minimum": 0,
    "pattern": DURATION_PATTERN,
}

#: JSON Schema of the target's options (besides ``type``).
SCHEMA: dict[str, Any] = {
    "properties": {
        "command": {
            "title": "Command",
            "description": "Command line that starts one instance, split like a shell would "
            "split it but run without a shell. Placeholders: {port} (a free loopback port "
            "the process must listen on), {version}, {instance} and {slot}. Relative paths "
            "are relative to the pipeline file's folder.",
            "type": "string",
            "minLength": 1,
        },
        "stable": {
            "title": "Stable version",
            "description": "Version started on every blue instance when the target is "
            "created; it plays the version that ran before the deploy.",
            "type": "string",
            "minLength": 1,
        },
        "instances": {
            "title": "Instances per slot",
            "description": "Number of processes in each of the blue and green slots.",
            "type": "integer",
            "minimum": 1,
            "default": 2,
        },
        "health_path": {
            "title": "Health path",
            "description": "HTTP path that answers 200 once an instance is ready to serve.",
            "type": "string",
            "pattern": "^/",
            "default": "/healthz",
        },
        "start_timeout": {
            **_DURATION_SCHEMA,
            "title": "Start timeout",
            "description": "How long a new instance may take to answer 200 on its health "
            "path before its deploy fails.",
            "default": "10s",
        },
        "env": {
            "title": "Environment variables",
            "description": "Extra environment variables for every instance's process.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "router_port": {
            "title": "Router port",
            "description": "Loopback port of the router that clients and analyses use; "
            "0 picks a free port.",
            "type": "integer",
            "minimum": 0,
            "maximum": 65535,
            "default": 0,
        },
    },
    "required": ["command", "stable"],
}


@dataclass(frozen=True)
class LocalSettings:
    """The options of one ``local`` target, with defaults applied.

    ``start_timeout`` is in seconds; ``workdir`` is where commands run.
    """

    command: str
    stable: str
    workdir: Path
    instances: int = 2
    health_path: str = "/healthz"
    start_timeout: float = 10.0
    env: Mapping[str, str] = field(default_factory=dict)
    router_port: int = 0
    environment: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], workdir: Path,
                     environment: str = "") -> LocalSettings:
        """Read the target's options from the pipeline.

        Raises ShiplineError, naming the environment, for a command template with an
        unknown placeholder or unbalanced quotes, or a start timeout of 0. The schema
        has checked everything else.
        """
        command = str(options["command"])
        start_timeout = parse_duration(options.get("start_timeout", "10s"))
        where = f"environment '{environment}': local target" if environment else "local target"
        try:
            check_template(command, PLACEHOLDERS)
            build_argv(command, dict.fromkeys(PLACEHOLDERS, ""))
        except ShiplineError as exc:
            raise ShiplineError(f"{where}: {exc}") from exc
        if start_timeout <= 0:
            raise ShiplineError(f"{where}: start_timeout must be more than 0 seconds")

        return cls(
            command=command,
            stable=str(options["stable"]),
            workdir=workdir,
            instances=int(options.get("instances", 2)),
            health_path=str(options.get("health_path", "/healthz")),
            start_timeout=start_timeout,
            env={str(key): str(value) for key, value in (options.get("env") or {}).items()},
            router_port=int(options.get("router_port", 0)),
            environment=environment,
        )


def instance_names(count: int) -> dict[str, tuple[str, ...]]:
    """Return the instance names of each slot with ``count`` instances per slot.

    They are fixed by the options alone, so ``shipline validate`` can check them.
    """
    return {slot: tuple(f"{slot}-{number}" for number in range(1, count + 1))
            for slot in SLOTS}


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
        return _CAPABILITIES

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
            return InstanceResult(instance, False, f"{problem}: {last}" if last else problem,
                                  output)

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
            if cancel.wait(min(_POLL_INTERVAL, remaining)):
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


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [StepSchema(
        kind="target", type=TARGET_TYPE, schema=SCHEMA, plugin="local",
        description="Processes on 127.0.0.1 in blue and green slots behind a weighted HTTP "
        "router, for examples, tests and rehearsals.",
    )]


@hookimpl
def shipline_capabilities(environment: Environment) -> frozenset[Capability] | None:
    if environment.target.get("type") != TARGET_TYPE:
        return None
    return _CAPABILITIES


@hookimpl
def shipline_make_target(environment: Environment, context: RunContext) -> LocalTarget | None:
    if environment.target.get("type") != TARGET_TYPE:
        return None
    settings = LocalSettings.from_options(
        environment.target, workdir=context.plan.file.resolve().parent,
        environment=environment.name,
    )
    return LocalTarget.create(settings, context.cancel)
