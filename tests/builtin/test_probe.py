from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.analysis import (
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisError,
    MeasurementRequest,
    run_analysis,
)
from pipeline.builtin import probe
from pipeline.builtin.probe import (
    METRIC_NAMES,
    ProbeOptions,
    ProbeProvider,
    ProbeResult,
    percentile,
    summarize,
)
from pipeline.clock import FakeClock
from pipeline.config import Config
from pipeline.context import Interrupted, RunContext
from pipeline.plan import Plan, Stage, Step, freeze
from pipeline.plugins import PluginRegistry
from pipeline.schema import build_schema

# -- a stand-in router on loopback -------------------------------------------------------


@dataclass
class Behaviour:
    """How the test router responds; tests change it before sending requests.

    Request number ``n`` (from 0, in arrival order) goes to the canary when
    ``n % canary_every == 0``. The canary's ``k``-th request fails with 500 when
    ``k % 10 < canary_errors_per_10``.
    """

    canary: str = "2"
    stable: str = "1"
    canary_every: int = 5
    canary_errors_per_10: int = 0
    canary_delay: float = 0.0
    stable_delay: float = 0.0
    header: str = "X-Shipline-Version"
    send_header: bool = True
    received: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    canary_requests: int = 0

    def route(self) -> tuple[str, bool, float]:
        """Return the version, whether it fails, and its delay for the next request."""
        with self.lock:
            number = self.requests
            self.requests += 1
            if number % self.canary_every != 0:
                return self.stable, False, self.stable_delay
            canary_number = self.canary_requests
            self.canary_requests += 1
        fails = canary_number % 10 < self.canary_errors_per_10
        return self.canary, fails, self.canary_delay


class _Handler(BaseHTTPRequestHandler):
    server: _RouterServer
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes; without this, delayed ACKs add 40 ms each.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        with behaviour.lock:
            behaviour.received.append(dict(self.headers.items()))
            behaviour.paths.append(self.path)
        version, fails, delay = behaviour.route()
        if delay:
            time.sleep(delay)

        body = b"error\n" if fails else b"ok\n"
        self.send_response(500 if fails else 200)
        if behaviour.send_header:
            self.send_header(behaviour.header, version)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RouterServer(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A probe request that timed out closes its connection before a slow reply.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@pytest.fixture
def router() -> Iterator[tuple[str, Behaviour]]:
    """A threaded HTTP server on 127.0.0.1 that responds like a canary router."""
    server = _RouterServer(("127.0.0.1", 0), _Handler)
    server.behaviour = Behaviour()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.behaviour
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """Return a loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def measure(
    endpoint: str | None, *, stable: str | None = "1", cancel: threading.Event | None = None,
    **options: Any,
) -> dict[str, float | None]:
    provider = ProbeProvider(ProbeOptions.from_options(options))
    request = MeasurementRequest("probe-test", canary_version="2", stable_version=stable,
                                 endpoint=endpoint)
    return provider.measure(request, cancel or threading.Event())


# -- measuring against a real server -----------------------------------------------------


def test_probe_counts_requests_per_version(router: tuple[str, Behaviour]) -> None:
    endpoint, _ = router

    values = measure(endpoint, requests=100)

    assert values["requests"] == 20
    assert values["stable_requests"] == 80
    assert values["unattributed_requests"] == 0


def test_probe_success_rate_per_version(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.canary_errors_per_10 = 3

    values = measure(endpoint, requests=100)

    assert values["success_rate"] == pytest.approx(0.7)
    assert values["error_rate"] == pytest.approx(0.3)
    assert values["stable_success_rate"] == 1.0
    assert values["stable_error_rate"] == 0.0


def test_probe_latency_per_version(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.canary_delay = 0.08
    behaviour.canary_every = 2

    values = measure(endpoint, requests=20, concurrency=4)

    assert values["p50_ms"] is not None
    assert values["p50_ms"] >= 80
    assert values["p99_ms"] is not None
    assert values["p99_ms"] >= values["p95_ms"] >= values["p50_ms"]  # type: ignore[operator]
    assert values["stable_p50_ms"] is not None
    assert values["stable_p50_ms"] < 80


def test_probe_returns_every_metric(router: tuple[str, Behaviour]) -> None:
    endpoint, _ = router

    values = measure(endpoint, requests=10)

    assert set(values) == METRIC_NAMES


def test_probe_canary_without_requests_has_no_data(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.canary = "3"

    values = measure(endpoint, requests=10)

    assert values["requests"] == 0
    assert values["success_rate"] is None
    assert values["p95_ms"] is None
    assert values["unattributed_requests"] == 2


def test_probe_without_any_version_header_raises(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.send_header = False

    with pytest.raises(AnalysisError) as caught:
        measure(endpoint, requests=10)

    assert str(caught.value) == (
        f"analysis 'probe-test': none of 10 responses from {endpoint}/ carried the "
        "X-Shipline-Version header, which tells the probe which version answered; the "
        "local target's router adds it, other routers need the service to send it"
    )


def test_probe_reads_configured_header(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.header = "X-App-Version"

    values = measure(endpoint, requests=10, version_header="x-app-version")

    assert values["requests"] == 2


def test_probe_first_deploy_has_no_stable_data(router: tuple[str, Behaviour]) -> None:
    endpoint, _ = router

    values = measure(endpoint, stable=None, requests=10)

    assert values["stable_requests"] == 0
    assert values["stable_success_rate"] is None
    assert values["unattributed_requests"] == 8


def test_probe_sends_path_and_headers(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router

    measure(endpoint + "/", requests=3, path="/api/items?limit=1",
            headers={"Host": "shop.example", "X-Probe": "yes"})

    assert behaviour.paths == ["/api/items?limit=1"] * 3
    assert {r["Host"] for r in behaviour.received} == {"shop.example"}
    assert {r["X-Probe"] for r in behaviour.received} == {"yes"}


def test_probe_sends_exact_request_count(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router

    measure(endpoint, requests=37, concurrency=8)

    assert behaviour.requests == 37


def test_probe_request_timeout_is_unattributed(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.canary_delay = 1.0

    values = measure(endpoint, requests=10, request_timeout="100ms")

    assert values["requests"] == 0
    assert values["unattributed_requests"] == 2
    assert values["stable_requests"] == 8


def test_probe_ignores_proxy_environment(
    router: tuple[str, Behaviour], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _ = router
    proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    values = measure(endpoint, requests=5)

    assert values["unattributed_requests"] == 0


def test_probe_without_any_response_raises() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"

    with pytest.raises(ConnectionError) as caught:
        measure(endpoint, requests=3)

    assert str(caught.value).startswith(
        f"none of 3 requests to {endpoint}/ got a response: ConnectionError: "
    )


def test_probe_without_endpoint_raises() -> None:
    with pytest.raises(AnalysisError) as caught:
        measure(None)

    assert str(caught.value) == (
        "analysis 'probe-test': the environment has no router endpoint to probe; the probe "
        "provider sends traffic through a router, so give the environment a 'router:' or use "
        "a target that routes traffic"
    )


def test_probe_cancelled_raises(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(Interrupted):
        measure(endpoint, requests=10, cancel=cancel)
    assert behaviour.requests == 0


# -- computing metrics -------------------------------------------------------------------


@pytest.mark.parametrize("rank", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_statistics_inclusive(rank: int) -> None:
    data = sorted([3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0, 3.5, 8.9, 7.9, 3.2])
    cut_points = statistics.quantiles(data, n=100, method="inclusive")
    expected = {0: data[0], 100: data[-1]}.get(rank) or cut_points[rank - 1]

    assert percentile(data, rank) == pytest.approx(expected)


def test_percentile_interpolates() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0


def test_percentile_of_one_value() -> None:
    assert percentile([7.0], 99) == 7.0


def test_percentile_rejects_empty() -> None:
    with pytest.raises(ValueError, match="percentile of an empty sequence"):
        percentile([], 50)


def test_summarize_computes_percentiles_of_latencies() -> None:
    results = [ProbeResult("2", True, float(ms)) for ms in range(1, 101)]

    values = summarize(results, "2", "1")

    assert values["p50_ms"] == pytest.approx(50.5)
    assert values["p95_ms"] == pytest.approx(95.05)
    assert values["p99_ms"] == pytest.approx(99.01)


def test_summarize_counts_server_errors_as_failures() -> None:
    results = [ProbeResult("2", True, 1.0)] * 3 + [ProbeResult("2", False, 1.0)]

    values = summarize(results, "2", "1")

    assert values["success_rate"] == 0.75
    assert values["error_rate"] == 0.25


def test_summarize_same_version_counts_for_both() -> None:
    values = summarize([ProbeResult("2", True, 1.0)], "2", "2")

    assert values["requests"] == 1
    assert values["stable_requests"] == 1
    assert values["unattributed_requests"] == 0


def test_summarize_connection_errors_are_unattributed() -> None:
    results = [ProbeResult("2", True, 1.0), ProbeResult(None, False, None, "refused")]

    values = summarize(results, "2", "1")

    assert values["unattributed_requests"] == 1
    assert values["success_rate"] == 1.0


# -- options -----------------------------------------------------------------------------


def test_probe_options_defaults() -> None:
    assert ProbeOptions.from_options({"provider": "probe"}) == ProbeOptions(
        requests=100, path="/", request_timeout=2.0, concurrency=4,
        version_header="X-Shipline-Version", headers={},
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"requests": 0}, "invalid 'requests': expected an integer of 1 or more, got 0"),
        ({"concurrency": 65}, "invalid 'concurrency': expected an integer from 1 to 64, got 65"),
        ({"request_timeout": "fast"}, "invalid 'request_timeout': 'fast' is not a valid "
         "duration: use a number of seconds or a value like 500ms, 30s, 5m, 1h"),
        ({"path": ""}, "invalid 'path': expected a non-empty string, got ''"),
        ({"headers": {"X": 1}}, "invalid 'headers': expected a mapping of strings"),
    ],
)
def test_probe_options_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        ProbeOptions.from_options(options)

    assert str(caught.value) == message


def test_probe_schema_fragment_builds() -> None:
    schema = build_schema(probe.shipline_step_schemas())

    assert schema["$defs"]["analysis"]["properties"]["provider"]["enum"] == ["probe"]


def test_probe_schema_properties_are_documented() -> None:
    for name, schema in probe.PROBE_PROPERTIES.items():
        assert schema.get("title"), name
        assert schema.get("description"), name


# -- through the plugin manager ----------------------------------------------------------


def make_context(analyses: Mapping[str, Any], stages: tuple[Stage, ...] = ()) -> RunContext:
    registry = PluginRegistry()
    registry.import_and_register("pipeline.builtin.probe", name="probe", origin="built-in")
    config = Config(options=argparse.Namespace(), registry=registry, clock=FakeClock())
    plan = Plan(
        name="test", file=Path("shipline.yml"), stages=stages, environments={},
        analyses=freeze(analyses), notifications=(), state={},
    )
    return RunContext(plan, config)


def test_run_analysis_with_probe_fails_bad_canary(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.canary_errors_per_10 = 3
    context = make_context({"error-rate": {
        "provider": "probe", "requests": 50, "success": ["success_rate >= 0.99"],
    }})

    result = run_analysis("error-rate", context, stable_version="1", canary_version="2",
                          endpoint=endpoint)

    assert result.verdict == FAILED
    assert result.message == (
        "1 measurement failed, more than failure_limit 0; last: success condition "
        "'success_rate >= 0.99' is false (success_rate=0.7)"
    )


def test_run_analysis_with_probe_passes_good_canary(router: tuple[str, Behaviour]) -> None:
    endpoint, _ = router
    context = make_context({"error-rate": {
        "provider": "probe", "requests": 20, "count": 3, "interval": "1m",
        "success": "success_rate >= 0.99 && p95_ms <= 1000",
        "failure": "stable_success_rate < 0.5",
    }})

    result = run_analysis("error-rate", context, stable_version="1", canary_version="2",
                          endpoint=endpoint)

    assert result.verdict == SUCCESSFUL
    assert len(result.measurements) == 3
    assert result.measurements[0].values["requests"] == 4


def test_run_analysis_with_probe_canary_without_traffic(router: tuple[str, Behaviour]) -> None:
    endpoint, behaviour = router
    behaviour.canary = "9"
    context = make_context({"error-rate": {
        "provider": "probe", "requests": 10, "success": "success_rate >= 0.99",
    }})

    result = run_analysis("error-rate", context, stable_version="1", canary_version="2",
                          endpoint=endpoint)

    assert result.verdict == INCONCLUSIVE


def test_run_analysis_with_probe_without_endpoint() -> None:
    context = make_context({"error-rate": {"provider": "probe", "success": "success_rate > 0"}})

    result = run_analysis("error-rate", context, stable_version="1", canary_version="2",
                          endpoint=None)

    assert result.verdict == "error"
    assert result.message.startswith(
        "analysis 'error-rate': the environment has no router endpoint to probe;"
    )
    assert len(result.measurements) == 1


def canary_stage(ref: Any) -> Stage:
    step = Step(
        id="prod/1", name="deploy", kind="deploy", type="canary",
        options=freeze({"version": "2", "steps": [{"analysis": ref}]}),
        plugin="canary", stage="prod", path=("stages", 0, "steps", 0),
    )
    return Stage(name="prod", steps=(step,), environment="production")


def test_check_plan_unknown_probe_metric_in_template() -> None:
    context = make_context({"latency": {"provider": "probe", "success": "p95 <= 300"}},
                           (canary_stage("latency"),))

    found = probe.shipline_check_plan(context.plan, context.config)

    assert [d.format() for d in found] == [
        "analyses.latency.success: condition 'p95 <= 300' uses unknown metric 'p95' (did you "
        "mean 'p95_ms'?): available metrics are args, error_rate, p50_ms, p95_ms, p99_ms, "
        "requests, result, stable_error_rate, stable_p50_ms, stable_p95_ms, stable_p99_ms, "
        "stable_requests, stable_success_rate, success_rate, unattributed_requests"
    ]


def test_check_plan_unknown_probe_metric_inline() -> None:
    context = make_context({}, (canary_stage({"provider": "probe", "failure": "errors > 1"}),))

    found = probe.shipline_check_plan(context.plan, context.config)

    assert [d.path for d in found] == [("stages", 0, "steps", 0, "deploy", "steps", 0,
                                        "analysis", "failure")]


def test_check_plan_known_probe_metrics_pass() -> None:
    context = make_context({"ok": {
        "provider": "probe", "success": ["success_rate >= 0.99", "stable_p99_ms < 500"],
    }})

    found = probe.shipline_check_plan(context.plan, context.config)

    assert found == []
