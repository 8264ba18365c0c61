"""A scripted HTTP server on 127.0.0.1 for tests of HTTP checks and gates.

Each path sends a list of replies, one per request, and then repeats the last one.
A path with no replies gets 404. Every request is recorded. Use it as a context
manager, which starts the server in a thread on a free port and stops it on exit::

    with HttpServer() as server:
        server.route("/healthz", Reply(503), Reply(200, "ok"))
        ... server.url("/healthz") ...
        assert [r.path for r in server.requests] == ["/healthz", "/healthz"]

``tls=(cert_file, key_file)`` serves https; :func:`write_self_signed` creates a pair
for ``127.0.0.1``.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``delay`` is the number of seconds to wait before sending it."""

    status: int = 200
    body: str | bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]


class HttpServer:
    """A threaded HTTP server on 127.0.0.1 that sends scripted replies."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[Request] = []
        self._routes: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        #: Set when the server stops, so that delayed replies stop waiting.
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls else "http"
        # A short poll interval makes shutdown, and so each test's teardown, quick.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"{self._scheme}://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> None:
        """Answer requests for ``path`` with ``replies`` in order, then the last again."""
        with self._lock:
            self._routes[path] = list(replies)

    def next_reply(self, method: str, path: str, headers: Mapping[str, str]) -> Reply:
        with self._lock:
            self.requests.append(Request(method, path, dict(headers)))
            replies = self._routes.get(path.split("?", 1)[0])
            if not replies:
                return Reply(404, "not found")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            reply = server.next_reply(self.command, self.path, dict(self.headers))
            if reply.delay and server.stopping.wait(reply.delay):
                return
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test); nothing left to answer.
                pass

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_one

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    return Handler


def write_self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return both paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shipline test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )

    cert_file = folder / "cert.pem"
    key_file = folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return cert_file, key_file
