"""A service instance for the nginx tests: returns its version over HTTP on 127.0.0.1.

    python3 service.py --port PORT --version VERSION

``GET /`` and ``GET /version`` return the version, ``GET /healthz`` returns ``ok``.
``PUT /version`` with the new version as body replaces it, which is how the
``command`` target's deploy command "deploys" to a running instance.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server: Service
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, "ok")
        else:
            self._reply(200, self.server.version)

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        version = self.rfile.read(length).decode().strip()
        if self.path != "/version" or not version:
            self._reply(400, "PUT /version with the version as body")
            return
        self.server.version = version
        self._reply(200, version)

    def _reply(self, status: int, text: str) -> None:
        body = f"{text}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: the tests send thousands of requests."""


class Service(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, version: str) -> None:
        self.version = version
        super().__init__(("127.0.0.1", port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    options = parser.parse_args()
    Service(options.port, options.version).serve_forever()


if __name__ == "__main__":
    main()
