"""A recording HTTP server on 127.0.0.1 for notifier tests.

It records every request (method, path, headers, body, arrival time) and replies to each
path from a script: a list of :class:`Reply` objects used one per request, the last one
repeated. Paths without a script get ``200`` with an empty body. Notifications are sent
from a background thread, so tests wait for requests with :meth:`Recorder.wait_for`::

    with Recorder() as recorder:
        recorder.route("/hook", Reply(500), Reply(200))
        ... send to recorder.url("/hook") ...
        first, second = recorder.wait_for(2)
        assert second.json()["event"] == "failed"

``Recorder(tls=True)`` serves https with a certificate for 127.0.0.1 issued by a fresh
``trustme`` CA whose PEM file is :attr:`Recorder.ca_bundle`. :func:`refused_url` returns
a loopback URL where nothing listens.
"""

from __future__ import annotations

import json
import math
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

#: Seconds :meth:`Recorder.wait_for` waits by default; generous, because it returns early.
WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Reply:
    """One scripted response.

    ``delay`` is the number of seconds to wait before replying; ``math.inf`` (see
    :data:`HANG`) never replies until the server stops. ``redirect`` sets ``Location`` and,
    unless ``status`` is already a 3xx, status 302.
    """

    status: int = 200
    body: str | bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    redirect: str | None = None


#: A reply that never comes: the connection stays open until the server stops.
HANG = Reply(delay=math.inf)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the recorder received. ``time`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    time: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """Return a header's value by case-insensitive name."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class Recorder:
    """A threaded HTTP(S) server on 127.0.0.1 that records requests and sends scripted replies."""

    def __init__(self, *, tls: bool = False) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, list[Reply]] = {}
        self._arrived = threading.Condition()
        #: Set when the server stops, so that delayed and hanging replies stop waiting.
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._folder = tempfile.TemporaryDirectory(prefix="shipline-recorder-")
        self.ca_bundle: str | None = None
        if tls:
            self.ca_bundle = self._serve_tls(Path(self._folder.name))
        self._scheme = "https" if tls else "http"
        # A short poll interval makes shutdown, and so each test's teardown, quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    def _serve_tls(self, folder: Path) -> str:
        import trustme

        authority = trustme.CA()
        certificate = authority.issue_cert("127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        ca_file = folder / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        return str(ca_file)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> None:
        """Reply to requests for ``path`` with ``replies`` in order, then the last again."""
        with self._arrived:
            self._routes[path] = list(replies)

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[RecordedRequest]:
        """Wait until ``count`` requests have arrived and return them all.

        Raises AssertionError naming the count and what arrived when ``timeout`` seconds
        pass first.
        """
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)
            arrived = list(self.requests)
        if len(arrived) < count:
            paths = [request.path for request in arrived]
            raise AssertionError(f"expected {count} requests within {timeout} s, got {paths}")
        return arrived

    def record(self, request: RecordedRequest) -> Reply:
        """Store ``request`` and return the scripted reply for its path."""
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            replies = self._routes.get(request.path.split("?", 1)[0])
            if not replies:
                return Reply()
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._folder.cleanup()


def _handler_for(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = recorder.record(RecordedRequest(
                self.command, self.path, dict(self.headers), body, time.monotonic()))
            if reply.delay and recorder.stopping.wait(
                    None if math.isinf(reply.delay) else reply.delay):
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            status = reply.status
            headers = dict(reply.headers)
            if reply.redirect is not None:
                headers["Location"] = reply.redirect
                status = status if 300 <= status < 400 else 302
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test); nothing left to send.
                pass

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


def refused_url(path: str = "/") -> str:
    """Return an http URL on 127.0.0.1 whose port had a listener a moment ago and now none.

    NOTE: another process could bind the port in between; on a test machine that is rare.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
