"""Fixtures that run a real nginx and real service instances on 127.0.0.1.

conftest.py imports the fixtures from here; tests import the helpers. The module has
a name of its own because shipline's test suite has a conftest.py too, and both run
in one pytest session.

``nginx`` starts ``/usr/sbin/nginx`` (Debian package nginx-light) in the foreground
with its own prefix, configuration, pid file and error log under ``tmp_path``, one
worker process, and a placeholder upstream that the router under test replaces.
``service`` starts ``scripts/service.py`` processes that return their version.
"""

from __future__ import annotations

import collections
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

#: Seconds a started process may take to accept connections.
START_TIMEOUT = 10.0

PLACEHOLDER_UPSTREAM = "upstream shipline {\n    server 127.0.0.1:9 down;\n}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once 127.0.0.1:``port`` accepts; fail with the log if the process ends."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited with {process.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT}s: {log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Nginx:
    """A running nginx: its port and files. :meth:`served` counts what it serves."""

    port: int
    prefix: Path
    conf: Path
    upstream: Path
    pid: Path
    error_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def served(self, requests: int = 1000) -> collections.Counter[str]:
        """Send ``requests`` GETs over one keep-alive connection; count the bodies.

        A response other than 200 counts as ``"status NNN"``.
        """
        counts: collections.Counter[str] = collections.Counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for _ in range(requests):
                connection.request("GET", "/")
                response = connection.getresponse()
                body = response.read().decode().strip()
                counts[body if response.status == 200 else f"status {response.status}"] += 1
        finally:
            connection.close()
        return counts

    def router_options(self, **options: object) -> dict[str, object]:
        """Return ``nginx`` router options that drive this nginx, updated with ``options``."""
        return {
            "type": "nginx", "config": str(self.upstream), "nginx": NGINX,
            "prefix": str(self.prefix), "conf": str(self.conf), "pid": str(self.pid),
            "timeout": "10s", "endpoint": self.url, **options,
        }


def nginx_conf(directory: Path, port: int, extra_http: str = "") -> str:
    # As root, the master would switch workers to "nobody", who cannot enter tmp_path.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} notice;\n"
        "events { worker_connections 512; }\n"
        "http {\n    access_log off;\n" + temp_paths
        + f"    include {directory / 'upstream.conf'};\n{extra_http}"
        f"    server {{\n        listen 127.0.0.1:{port};\n"
        "        location / { proxy_pass http://shipline; }\n    }\n}\n"
    )


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Return a function that starts nginx; every nginx it started stops at teardown.

    ``extra_http`` is added to the ``http`` block, for tests that need a conflict.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def start(extra_http: str = "") -> Nginx:
        directory = tmp_path / f"nginx-{len(processes)}"
        directory.mkdir()
        port = free_port()
        server = Nginx(port, directory, directory / "nginx.conf", directory / "upstream.conf",
                       directory / "nginx.pid", directory / "error.log")
        server.upstream.write_text(PLACEHOLDER_UPSTREAM)
        server.conf.write_text(nginx_conf(directory, port, extra_http))
        process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(server.conf), "-e", str(server.error_log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        processes.append(process)
        wait_for_port(port, process, server.error_log)
        return server

    yield start
    for process in processes:
        stop(process)


@pytest.fixture
def nginx(start_nginx: Callable[..., Nginx]) -> Nginx:
    """A running nginx with the placeholder upstream."""
    return start_nginx()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Return a function that starts ``service.py`` with a version and returns its
    ``127.0.0.1:PORT``; every service stops at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(version: str) -> str:
        port = free_port()
        log = tmp_path / f"service-{port}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "service.py"), "--port", str(port),
                 "--version", version], stdout=output, stderr=subprocess.STDOUT,
            )
        processes.append(process)
        wait_for_port(port, process, log)
        return f"127.0.0.1:{port}"

    yield start
    for process in processes:
        stop(process)
