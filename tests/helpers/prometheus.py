"""A real Prometheus server on 127.0.0.1, scraping a test service whose counters tests set.

The session fixture ``prometheus`` starts the ``prometheus`` binary of the Debian package
on a free loopback port with a temporary storage folder and a scrape interval of 1 s.
Its one scrape job reads :class:`MetricsService`, a small HTTP server whose ``/metrics``
page shows ``http_requests_total{version, code}`` counters. A test sets counters for a version
label of its own, then waits until Prometheus has scraped them::

    def test_x(prometheus: PrometheusServer) -> None:
        prometheus.service.set("v7", ok=990, errors=10)
        prometheus.wait_for('sum(http_requests_total{version="v7"})', 1000.0)

The binary is not optional: when it is missing, the tests fail and say to run
``scripts/install-system-deps``. Registered in ``tests/conftest.py``. The session
fixture ``secured_prometheus`` runs a second server on https with basic
authentication, for the provider's TLS and authentication options.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

BINARY = "prometheus"

#: Seconds to wait for ``/-/ready``, and for a scrape to show a value. Both waits end as
#: soon as the condition holds.
READY_TIMEOUT = 30.0
SCRAPE_TIMEOUT = 30.0


class MetricsService:
    """An HTTP server on 127.0.0.1 that shows request counters in the Prometheus format."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = service.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, version: str, *, ok: int, errors: int) -> None:
        """Set the counters of ``version``: ``ok`` requests with code 200, ``errors`` with 500."""
        with self._lock:
            self._counters[(version, "200")] = ok
            self._counters[(version, "500")] = errors

    def exposition(self) -> str:
        """Return the ``/metrics`` text."""
        lines = ["# HELP http_requests_total Requests served, by version and status code.",
                 "# TYPE http_requests_total counter"]
        with self._lock:
            for (version, code), value in sorted(self._counters.items()):
                lines.append(f'http_requests_total{{version="{version}",code="{code}"}} {value}')
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class PrometheusServer:
    """A running Prometheus: its base URL, log file and the service it scrapes."""

    url: str
    log: Path
    service: MetricsService

    def query(self, promql: str) -> Any:
        """Return the ``data.result`` of an instant query."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            return json.loads(response.read())["data"]["result"]

    def wait_for(self, promql: str, expected: float) -> None:
        """Poll the query until its one value is ``expected``; fail after SCRAPE_TIMEOUT."""
        deadline = time.monotonic() + SCRAPE_TIMEOUT
        last: Any = None
        while time.monotonic() < deadline:
            last = self.query(promql)
            if len(last) == 1 and float(last[0]["value"][1]) == expected:
                return
            time.sleep(0.1)
        pytest.fail(f"Prometheus did not show {promql} = {expected}; last result: {last}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str, ca_file: Path | None = None,
           credentials: tuple[str, str] | None = None) -> bool:
    request = urllib.request.Request(f"{url}/-/ready")
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=1, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _write_config(folder: Path, target: str) -> Path:
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: service\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n",
        encoding="utf-8",
    )
    return config


def start_prometheus(
    folder: Path, service: MetricsService, secured: SecuredWeb | None = None
) -> tuple[subprocess.Popen[bytes], PrometheusServer]:
    """Start Prometheus scraping ``service`` and wait for ``/-/ready``; fail if it does not.

    With ``secured``, the server serves https with that certificate and requires basic
    authentication.
    """
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail(f"{BINARY} is not installed: run scripts/install-system-deps "
                    "(it installs the Debian package prometheus)")

    config = _write_config(folder, service.address)
    log = folder / "prometheus.log"
    port = _free_port()
    arguments = [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    url = f"http://127.0.0.1:{port}"
    ca_file = credentials = None
    if secured is not None:
        arguments.append(f"--web.config.file={secured.write_config(folder)}")
        url = f"https://127.0.0.1:{port}"
        ca_file, credentials = secured.ca_file, (secured.username, secured.password)
    with log.open("wb") as output:
        process = subprocess.Popen(arguments, stdout=output, stderr=subprocess.STDOUT)

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if _ready(url, ca_file, credentials):
            return process, PrometheusServer(url, log, service)
        time.sleep(0.05)
    stop(process)
    pytest.fail(f"{BINARY} did not get ready; its log:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass(frozen=True)
class SecuredWeb:
    """TLS and basic authentication for Prometheus's web server (``--web.config.file``)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    username: str
    password: str

    def write_config(self, folder: Path) -> Path:
        import bcrypt

        # 4 rounds, the minimum, keeps each request's password check fast in tests.
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        config = folder / "web.yml"
        config.write_text(
            "tls_server_config:\n"
            f"  cert_file: {self.cert_file}\n"
            f"  key_file: {self.key_file}\n"
            "basic_auth_users:\n"
            f"  {self.username}: {hashed}\n",
            encoding="utf-8",
        )
        return config


@pytest.fixture(scope="session")
def secured_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrometheusServer, SecuredWeb]]:
    """A Prometheus server on https with basic authentication (user ``ci``, password
    ``s3cret``), its certificate issued by a test CA whose file is ``SecuredWeb.ca_file``."""
    import trustme

    folder = tmp_path_factory.mktemp("prometheus-secured")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    secured = SecuredWeb(folder / "server.pem", folder / "server.key", folder / "ca.pem",
                         "ci", "s3cret")
    certificate.cert_chain_pems[0].write_to_path(str(secured.cert_file))
    certificate.private_key_pem.write_to_path(str(secured.key_file))
    authority.cert_pem.write_to_path(str(secured.ca_file))

    service = MetricsService()
    process, server = start_prometheus(folder, service, secured)
    try:
        yield server, secured
    finally:
        stop(process)
        service.close()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus server for the whole test session; see the module docstring."""
    folder = tmp_path_factory.mktemp("prometheus")
    service = MetricsService()
    process, server = start_prometheus(folder, service)
    try:
        yield server
    finally:
        stop(process)
        service.close()
