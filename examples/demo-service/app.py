"""A tiny HTTP service for rehearsing deployments: it serves a version and can misbehave.

Standard library only, Python 3.10 or newer::

    python app.py --port 8001 --version 1.1.0 --error-rate 0.3 --latency-ms 20

Endpoints:

- ``GET /healthz``: ``200 ok``, or ``503 unhealthy`` when the service is set unhealthy.
- ``GET /version``: the version as plain text.
- ``GET /``: ``{"version": ..., "instance": ...}`` as JSON. This is the only endpoint
  that injects errors (status 500) and latency.

Behaviour per version comes from ``--behaviour FILE`` and the ``DEMO_BEHAVIOUR``
environment variable, both JSON objects that map a version to its settings, for
example ``{"1.1.0": {"error_rate": 0.3, "latency_ms": 20, "healthy": true}}``. The
entry for the running version overrides the command-line flags, and the environment
variable overrides the file, so one command template can start a good old version and
a bad new one.

Errors are deterministic: of the first N requests to ``/``, exactly
``floor(N * error_rate)`` fail, spread evenly, so tests can count them.

SIGTERM and SIGINT stop the service at once with exit code 0. Invalid settings exit
with code 2, and a port that cannot be bound with code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

BEHAVIOUR_VARIABLE = "DEMO_BEHAVIOUR"
_BEHAVIOUR_KEYS = {"error_rate", "latency_ms", "healthy"}


class BehaviourError(ValueError):
    """Invalid behaviour settings; the message names the source and the value."""


@dataclass(frozen=True)
class Behaviour:
    """Settings of the running version. ``latency_ms`` is added to every ``/`` request."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    healthy: bool = True


class ErrorInjector:
    """Decides which requests fail so that the failures match the rate exactly.

    Request number ``n`` (counting from 1) fails when ``floor(n * rate)`` grows, which
    spreads the failures evenly. The rate is kept as an exact fraction of its decimal
    text, so a rate of 0.3 fails exactly 3 of every 10 requests.
    """

    def __init__(self, rate: float) -> None:
        self._rate = Fraction(str(rate))
        self._count = 0
        self._lock = threading.Lock()

    def next_fails(self) -> bool:
        with self._lock:
            self._count += 1
            count = self._count
        return int(count * self._rate) > int((count - 1) * self._rate)


class DemoServer(ThreadingHTTPServer):
    """The HTTP server plus the version and settings that its handlers use."""

    daemon_threads = True
    # Above the default of 5, so that parallel requests are not dropped and retried.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], version: str, instance: str,
                 behaviour: Behaviour) -> None:
        super().__init__(address, DemoHandler)
        self.version = version
        self.instance = instance or f"{address[0]}:{self.server_address[1]}"
        self.behaviour = behaviour
        self.errors = ErrorInjector(behaviour.error_rate)


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: keep-alive responses would otherwise wait about 40 ms for delayed ACKs.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._answer_health()
        elif path == "/version":
            self._send(200, "text/plain; charset=utf-8", f"{self.server.version}\n")
        elif path == "/":
            self._answer_root()
        else:
            self._send(404, "text/plain; charset=utf-8", f"not found: {path}\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request: probe traffic would flood the output."""

    def _answer_health(self) -> None:
        if self.server.behaviour.healthy:
            self._send(200, "text/plain; charset=utf-8", "ok\n")
        else:
            self._send(503, "text/plain; charset=utf-8", "unhealthy\n")

    def _answer_root(self) -> None:
        behaviour = self.server.behaviour
        if behaviour.latency_ms > 0:
            time.sleep(behaviour.latency_ms / 1000)

        body: dict[str, str] = {"version": self.server.version, "instance": self.server.instance}
        status = 200
        if self.server.errors.next_fails():
            status = 500
            body["error"] = "injected failure"
        self._send(status, "application/json", json.dumps(body) + "\n")

    def _send(self, status: int, content_type: str, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a version over HTTP, for deployment "
                                     "rehearsals.")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on.")
    parser.add_argument("--version", required=True, help="Version text to serve.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to listen on (default: 127.0.0.1).")
    parser.add_argument("--instance", default="",
                        help="Instance name returned by / (default: HOST:PORT).")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="Share of / requests, from 0 to 1, that respond with status 500 "
                        "(default: 0).")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="Milliseconds added to every / request (default: 0).")
    parser.add_argument("--unhealthy", action="store_true",
                        help="Respond to /healthz with status 503.")
    parser.add_argument("--behaviour", type=Path, metavar="FILE",
                        help="JSON file mapping versions to settings; "
                        f"{BEHAVIOUR_VARIABLE} overrides its entries.")
    return parser.parse_args(argv)


def resolve_behaviour(options: argparse.Namespace, environ: dict[str, str]) -> Behaviour:
    """Combine the flags with the entry for ``options.version`` from the file and variable.

    Raises BehaviourError for unreadable or invalid JSON, unknown keys, or values out of
    range.
    """
    settings: dict[str, Any] = {
        "error_rate": options.error_rate,
        "latency_ms": options.latency_ms,
        "healthy": not options.unhealthy,
    }
    if options.behaviour is not None:
        settings.update(_version_entry(_read_file(options.behaviour), options.version,
                                       str(options.behaviour)))
    if environ.get(BEHAVIOUR_VARIABLE):
        settings.update(_version_entry(_parse_json(environ[BEHAVIOUR_VARIABLE],
                                                   BEHAVIOUR_VARIABLE),
                                       options.version, BEHAVIOUR_VARIABLE))
    return _validate(settings)


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BehaviourError(f"{path}: cannot be read: {exc.strerror}") from exc
    return _parse_json(text, str(path))


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BehaviourError(f"{source}: invalid JSON: {exc}") from exc


def _version_entry(document: Any, version: str, source: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise BehaviourError(f"{source}: expected a JSON object that maps versions to settings")

    entry = document.get(version, {})
    if not isinstance(entry, dict):
        raise BehaviourError(f"{source}: the entry for version {version!r} must be an object")

    unknown = sorted(set(entry) - _BEHAVIOUR_KEYS)
    if unknown:
        raise BehaviourError(f"{source}: unknown setting {unknown[0]!r} for version "
                             f"{version!r}; use {', '.join(sorted(_BEHAVIOUR_KEYS))}")
    return entry


def _validate(settings: dict[str, Any]) -> Behaviour:
    error_rate = settings["error_rate"]
    latency_ms = settings["latency_ms"]
    healthy = settings["healthy"]

    if not _is_number(error_rate) or not 0 <= error_rate <= 1:
        raise BehaviourError(f"invalid error_rate {error_rate!r}: use a number from 0 to 1")
    if not _is_number(latency_ms) or not 0 <= latency_ms < math.inf:
        raise BehaviourError(f"invalid latency_ms {latency_ms!r}: use a number of "
                             "milliseconds, 0 or more")
    if not isinstance(healthy, bool):
        raise BehaviourError(f"invalid healthy {healthy!r}: use true or false")
    return Behaviour(float(error_rate), float(latency_ms), healthy)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    try:
        behaviour = resolve_behaviour(options, dict(os.environ))
        server = DemoServer((options.host, options.port), options.version, options.instance,
                            behaviour)
    except BehaviourError as exc:
        print(f"demo-service: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"demo-service: cannot listen on {options.host}:{options.port}: {exc.strerror}",
              file=sys.stderr)
        return 1

    with server, contextlib.suppress(_Stopped):
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        print(f"demo-service {options.version} listening on "
              f"http://{options.host}:{server.server_address[1]}", flush=True)
        server.serve_forever()
    return 0


class _Stopped(BaseException):
    """Raised by the signal handler to leave ``serve_forever`` at once.

    A BaseException, because socketserver catches Exception while it hands a request to
    its thread, which would swallow the signal and leave the service running.
    """


def _stop(signum: int, frame: FrameType | None) -> None:
    # Raising here interrupts the serving loop's wait right away; in-flight requests run
    # in daemon threads and end with the process.
    raise _Stopped


if __name__ == "__main__":
    sys.exit(main())
