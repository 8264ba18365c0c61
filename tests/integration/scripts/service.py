"""One instance of a ``local`` target in the integration tests: the HTTP service of
``examples/demo-service/app.py``, plus a log of its life and failures on request.

Usage: ``service.py --events FILE --port PORT --version VERSION --instance NAME``.
Other options go to the demo service.

Each start, stop, injected crash and injected hang appends one JSON line to FILE:
``{"event": ..., "instance": ..., "version": ..., "pid": ..., "port": ...}``. Each line
is a single ``write`` to the file opened with ``O_APPEND``, so the lines of instances
that log at the same time do not interleave on a local Linux file system.

Environment variables holding space-separated ``INSTANCE@VERSION`` patterns (fnmatch
syntax, so ``*@1.1.0`` matches every instance) inject failures:

- ``SERVICE_CRASH``: exit with code 3 before listening;
- ``SERVICE_HANG``: never listen, write the pid to ``INSTANCE.hanging`` in the working
  directory, and wait for SIGTERM or SIGINT;
- ``SERVICE_SLOW_STOP``: wait :data:`SLOW_STOP` seconds after closing the port before
  exiting, so that stopping the instance takes that long.

``DEMO_BEHAVIOUR`` and the demo service's own options work as in the demo service.
Invalid behaviour settings exit with code 2 before the port is bound.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType, ModuleType

APP = Path(__file__).resolve().parents[3] / "examples" / "demo-service" / "app.py"

CRASH_EXIT_CODE = 3

#: Seconds that an instance matched by ``SERVICE_SLOW_STOP`` takes to exit once stopped.
SLOW_STOP = 0.5


def matches(variable: str, instance: str, version: str) -> bool:
    """Tell whether ``INSTANCE@VERSION`` matches a pattern in the environment variable."""
    patterns = os.environ.get(variable, "").split()
    return any(fnmatch.fnmatchcase(f"{instance}@{version}", pattern) for pattern in patterns)


def log_event(path: Path, event: str, options: argparse.Namespace) -> None:
    line = json.dumps({"event": event, "instance": options.instance,
                       "version": options.version, "pid": os.getpid(),
                       "port": options.port}) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def load_demo_service() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_service_app", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def hang(options: argparse.Namespace) -> None:
    """Wait for SIGTERM or SIGINT without listening, after writing the pid marker.

    The signals are blocked before anything is logged, so that a stop always follows
    the ``hang`` event in the log.
    """
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    log_event(options.events, "hang", options)
    marker = Path(f"{options.instance}.hanging")
    marker.with_suffix(".tmp").write_text(str(os.getpid()), encoding="utf-8")
    marker.with_suffix(".tmp").replace(marker)
    signal.sigwait(signals)


class Stopped(BaseException):
    """Raised by the SIGTERM and SIGINT handler to leave the serving loop.

    A BaseException, because ``socketserver`` catches every Exception raised while it
    dispatches a request and goes on serving, which would lose a signal that arrives
    at that moment.
    """


def stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped


def serve(options: argparse.Namespace, rest: list[str]) -> int:
    """Serve the demo service's endpoints until SIGTERM or SIGINT, logging the start and
    the stop. Returns the exit code: 0, or 2 for invalid behaviour settings.

    The demo service's request handler and settings are used, but not its ``main``,
    whose signal handler raises an Exception that ``socketserver`` can swallow.
    """
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # Inside the try: a stop that arrives while the start is logged still logs a stop.
        log_event(options.events, "start", options)
        demo = load_demo_service()
        arguments = demo.parse_arguments(["--port", str(options.port), "--version",
                                          options.version, "--instance", options.instance,
                                          *rest])
        try:
            behaviour = demo.resolve_behaviour(arguments, dict(os.environ))
        except demo.BehaviourError as exc:
            print(f"service.py: {exc}", file=sys.stderr)
            return 2
        server = demo.DemoServer((arguments.host, arguments.port), arguments.version,
                                 arguments.instance, behaviour)
        with server:
            print(f"service.py: {options.version} listening on "
                  f"http://{arguments.host}:{arguments.port}", flush=True)
            server.serve_forever()
    except Stopped:
        pass
    log_event(options.events, "stop", options)
    if matches("SERVICE_SLOW_STOP", options.instance, options.version):
        time.sleep(SLOW_STOP)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--instance", required=True)
    options, rest = parser.parse_known_args()

    if matches("SERVICE_CRASH", options.instance, options.version):
        log_event(options.events, "crash", options)
        print(f"service.py: injected crash of {options.instance}@{options.version}",
              file=sys.stderr)
        return CRASH_EXIT_CODE

    if matches("SERVICE_HANG", options.instance, options.version):
        hang(options)
        log_event(options.events, "stop", options)
        return 0

    return serve(options, rest)


if __name__ == "__main__":
    sys.exit(main())
