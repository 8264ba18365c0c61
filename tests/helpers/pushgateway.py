"""A real Prometheus Pushgateway on 127.0.0.1 for the metrics tests.

:func:`start_pushgateway` runs the ``prometheus-pushgateway`` binary of the Debian
package on a free loopback port, keeping pushed metrics in memory only, and waits until
its ``/-/ready`` endpoint responds. The binary is not optional: when it is missing the
test fails and says to run ``scripts/install-system-deps``::

    with start_pushgateway(tmp_path) as gateway:
        ... push to gateway.url ...
        text = gateway.metrics()
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = "prometheus-pushgateway"

#: Seconds to wait for the gateway to respond on ``/-/ready``. The wait ends as soon as it
#: does, which on an idle machine takes well under a second.
READY_TIMEOUT = 15.0

#: Attempts with a new port, in case another process takes the free port first.
START_ATTEMPTS = 3


@dataclass(frozen=True)
class Pushgateway:
    """A running gateway: its base URL and the file that receives its log."""

    url: str
    log: Path

    def metrics(self) -> str:
        """Return the text of the gateway's ``/metrics`` page (the pushed metrics too)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            return str(response.read().decode("utf-8"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait_ready(process: subprocess.Popen[bytes], url: str) -> bool:
    """Poll until the gateway is ready; return False if it exits or does not get ready."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _ready(url):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def start_pushgateway(folder: Path) -> Iterator[Pushgateway]:
    """Run a Pushgateway for the duration of the ``with`` block; its log goes to ``folder``."""
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail(f"{BINARY} is not installed: run scripts/install-system-deps "
                    "(it installs the Debian package prometheus-pushgateway)")

    log = folder / "pushgateway.log"
    for _ in range(START_ATTEMPTS):
        url = f"http://127.0.0.1:{_free_port()}"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [binary, f"--web.listen-address={url.removeprefix('http://')}",
                 "--persistence.file=", "--log.level=warn"],
                stdout=output, stderr=subprocess.STDOUT,
            )
        try:
            if _wait_ready(process, url):
                yield Pushgateway(url, log)
                return
        finally:
            _stop(process)
    pytest.fail(f"{BINARY} did not get ready; its log:\n{log.read_text(errors='replace')}")
