from __future__ import annotations

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

APP = Path(__file__).resolve().parents[2] / "examples" / "demo-service" / "app.py"


@dataclass
class Service:
    process: subprocess.Popen[str]
    port: int

    def get(self, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(service: Service) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"demo service exited: {service.process.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", service.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("demo service did not listen within 10 s")


@pytest.fixture
def start_service() -> Iterator[Callable[..., Service]]:
    """Start the demo service with extra arguments; it is stopped after the test."""
    started: list[Service] = []

    def start(*args: str, version: str = "1.0.0", env: dict[str, str] | None = None) -> Service:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, str(APP), "--port", str(port), "--version", version, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        service = Service(process, port)
        started.append(service)
        _wait_listening(service)
        return service

    yield start
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
        service.process.communicate()


def _load_app() -> ModuleType:
    """Import app.py as a module; dataclasses need it in ``sys.modules`` while it loads."""
    if "demo_service_app" in sys.modules:
        return sys.modules["demo_service_app"]
    spec = importlib.util.spec_from_file_location("demo_service_app", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_service_app"] = module
    spec.loader.exec_module(module)
    return module


def _run_to_exit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(APP), "--port", str(_free_port()), *args],
        capture_output=True, text=True, timeout=10, env={**os.environ, **(env or {})},
    )


def test_demo_service_root_returns_version_and_instance(
    start_service: Callable[..., Service],
) -> None:
    service = start_service("--instance", "blue-1", version="1.2.3")

    status, body = service.get("/")

    assert status == 200
    assert json.loads(body) == {"version": "1.2.3", "instance": "blue-1"}


def test_demo_service_default_instance_is_address(start_service: Callable[..., Service]) -> None:
    service = start_service()

    _status, body = service.get("/")

    assert json.loads(body)["instance"] == f"127.0.0.1:{service.port}"


def test_demo_service_version_endpoint(start_service: Callable[..., Service]) -> None:
    service = start_service(version="2.0.0-rc.1")

    assert service.get("/version") == (200, "2.0.0-rc.1\n")


def test_demo_service_healthz_ok(start_service: Callable[..., Service]) -> None:
    service = start_service()

    assert service.get("/healthz") == (200, "ok\n")


def test_demo_service_unhealthy_flag(start_service: Callable[..., Service]) -> None:
    service = start_service("--unhealthy")

    assert service.get("/healthz") == (503, "unhealthy\n")


def test_demo_service_unknown_path_404(start_service: Callable[..., Service]) -> None:
    service = start_service()

    assert service.get("/nope?x=1") == (404, "not found: /nope\n")


def test_demo_service_error_rate_exact(start_service: Callable[..., Service]) -> None:
    service = start_service("--error-rate", "0.3")

    statuses = [service.get("/")[0] for _ in range(10)]

    assert statuses == [200, 200, 200, 500, 200, 200, 500, 200, 200, 500]


def test_demo_service_error_body_names_version(start_service: Callable[..., Service]) -> None:
    service = start_service("--error-rate", "1", version="1.1.0")

    status, body = service.get("/")

    assert status == 500
    assert json.loads(body) == {"version": "1.1.0", "instance": f"127.0.0.1:{service.port}",
                                "error": "injected failure"}


def test_demo_service_errors_spare_health_and_version(
    start_service: Callable[..., Service],
) -> None:
    service = start_service("--error-rate", "1")

    assert service.get("/healthz")[0] == 200
    assert service.get("/version")[0] == 200


def test_demo_service_latency(start_service: Callable[..., Service]) -> None:
    service = start_service("--latency-ms", "150")

    started = time.monotonic()
    service.get("/")
    elapsed = time.monotonic() - started

    assert elapsed >= 0.15


def test_demo_service_behaviour_variable_selects_version(
    start_service: Callable[..., Service],
) -> None:
    behaviour = {"DEMO_BEHAVIOUR": json.dumps({"1.1.0": {"error_rate": 1, "healthy": False}})}
    old = start_service(version="1.0.0", env=behaviour)
    new = start_service(version="1.1.0", env=behaviour)

    assert old.get("/")[0] == 200
    assert old.get("/healthz")[0] == 200
    assert new.get("/")[0] == 500
    assert new.get("/healthz")[0] == 503


def test_demo_service_behaviour_overrides_flags(start_service: Callable[..., Service]) -> None:
    behaviour = {"DEMO_BEHAVIOUR": json.dumps({"1.0.0": {"error_rate": 0}})}

    service = start_service("--error-rate", "1", env=behaviour)

    assert service.get("/")[0] == 200


def test_demo_service_behaviour_variable_overrides_file(
    start_service: Callable[..., Service], tmp_path: Path
) -> None:
    path = tmp_path / "behaviour.json"
    path.write_text(json.dumps({"1.0.0": {"error_rate": 1, "healthy": False}}))
    behaviour = {"DEMO_BEHAVIOUR": json.dumps({"1.0.0": {"error_rate": 0}})}

    service = start_service("--behaviour", str(path), env=behaviour)

    assert service.get("/")[0] == 200
    assert service.get("/healthz")[0] == 503


def test_demo_service_sigterm_exits_cleanly(start_service: Callable[..., Service]) -> None:
    service = start_service()

    service.process.send_signal(signal.SIGTERM)

    assert service.process.wait(timeout=5) == 0


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("{", "demo-service: DEMO_BEHAVIOUR: invalid JSON: Expecting property name enclosed "
         "in double quotes: line 1 column 2 (char 1)"),
        ("[]", "demo-service: DEMO_BEHAVIOUR: expected a JSON object that maps versions to "
         "settings"),
        ('{"1.0.0": 3}', "demo-service: DEMO_BEHAVIOUR: the entry for version '1.0.0' must be "
         "an object"),
        ('{"1.0.0": {"errors": 1}}', "demo-service: DEMO_BEHAVIOUR: unknown setting 'errors' "
         "for version '1.0.0'; use error_rate, healthy, latency_ms"),
        ('{"1.0.0": {"error_rate": 2}}', "demo-service: invalid error_rate 2: use a number "
         "from 0 to 1"),
        ('{"1.0.0": {"latency_ms": -1}}', "demo-service: invalid latency_ms -1: use a number "
         "of milliseconds, 0 or more"),
        ('{"1.0.0": {"healthy": "no"}}', "demo-service: invalid healthy 'no': use true or "
         "false"),
    ],
)
def test_demo_service_invalid_behaviour_exits_2(behaviour: str, message: str) -> None:
    result = _run_to_exit("--version", "1.0.0", env={"DEMO_BEHAVIOUR": behaviour})

    assert result.returncode == 2
    assert result.stderr == message + "\n"


def test_demo_service_missing_behaviour_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"

    result = _run_to_exit("--version", "1.0.0", "--behaviour", str(path))

    assert result.returncode == 2
    assert result.stderr == f"demo-service: {path}: cannot be read: No such file or directory\n"


def test_demo_service_port_in_use_exits_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        result = subprocess.run(
            [sys.executable, str(APP), "--port", str(port), "--version", "1.0.0"],
            capture_output=True, text=True, timeout=10,
        )

    assert result.returncode == 1
    assert result.stderr == (f"demo-service: cannot listen on 127.0.0.1:{port}: "
                             "Address already in use\n")


@pytest.mark.parametrize(("rate", "requests", "failures"),
                         [(0.3, 1000, 300), (0.01, 100, 1), (0.0, 50, 0), (1.0, 7, 7),
                          (0.25, 4, 1)])
def test_error_injector_fails_exact_share(rate: float, requests: int, failures: int) -> None:
    injector = _load_app().ErrorInjector(rate)

    failed = sum(injector.next_fails() for _ in range(requests))

    assert failed == failures
