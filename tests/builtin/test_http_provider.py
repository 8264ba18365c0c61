"""Tests of the http analysis provider against a scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from helpers.httpserver import HttpServer, Reply
from helpers.providers import provider_context
from pipeline.analysis import SUCCESSFUL, AnalysisError, MeasurementRequest, run_analysis
from pipeline.builtin import http_provider as plugin
from pipeline.builtin.http_provider import HttpProviderError

REQUEST = MeasurementRequest("api", canary_version="2", stable_version="1", endpoint=None)
BODY = '{"data": {"error_rate": 0.002}, "checks": [{"name": "db", "latency_ms": 12}]}'


class _Empty:
    """An empty plugin, because provider_context registers one."""


def make_provider(**options: Any) -> plugin.HttpProvider:
    context = provider_context({}, _Empty(), file=Path("x.yml"))
    provider = plugin.shipline_make_provider(name="http", options=options, context=context)
    assert provider is not None
    return provider


def measure(provider: plugin.HttpProvider) -> Any:
    return provider.measure(REQUEST, threading.Event())["result"]


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("data.error_rate", 0.002),
        ("checks[?name=='db'].latency_ms | [0]", 12),
        ("checks[].name", ["db"]),
        (None, {"data": {"error_rate": 0.002}, "checks": [{"name": "db", "latency_ms": 12}]}),
        ("data.missing", None),
    ],
)
def test_http_provider_select(select: str | None, expected: Any) -> None:
    options = {"select": select} if select else {}
    with HttpServer() as server:
        server.route("/stats", Reply(200, BODY))

        assert measure(make_provider(url=server.url("/stats"), **options)) == expected


def test_http_provider_in_analysis_with_args() -> None:
    with HttpServer() as server:
        server.route("/stats/2", Reply(200, BODY))
        template = {"provider": "http", "url": server.url("/stats/{{ args.canary_version }}"),
                    "select": "data.error_rate", "success": "result < 0.01"}
        context = provider_context({"api": template}, plugin)

        result = run_analysis("api", context, stable_version="1", canary_version="2",
                              endpoint=None)

    assert result.verdict == SUCCESSFUL
    assert [request.path for request in server.requests] == ["/stats/2"]


def test_http_provider_status_is_measurement_error() -> None:
    with HttpServer() as server:
        server.route("/stats", Reply(404, "gone"))

        with pytest.raises(HttpProviderError) as caught:
            measure(make_provider(url=server.url("/stats")))

    assert str(caught.value) == f"{server.url('/stats')} returned status 404, expected 200"


def test_http_provider_errors_in_analysis_unprefixed() -> None:
    """A measurement error shows the provider's message, without a class name or the
    internals of requests."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/stats"
    with HttpServer() as server:
        server.route("/stats", Reply(404, "gone"))
        templates = {
            "missing": {"provider": "http", "url": server.url("/stats"), "retries": 0,
                        "success": "result < 0.01", "consecutive_error_limit": 0},
            "closed": {"provider": "http", "url": closed, "retries": 0,
                       "success": "result < 0.01", "consecutive_error_limit": 0},
        }
        context = provider_context(templates, plugin)

        missing = run_analysis("missing", context, stable_version="1", canary_version="2",
                               endpoint=None)
        refused = run_analysis("closed", context, stable_version="1", canary_version="2",
                               endpoint=None)

    assert missing.measurements[0].message == (
        f"{server.url('/stats')} returned status 404, expected 200"
    )
    assert refused.measurements[0].message == (
        f"GET {closed} failed after 1 attempt: connection refused"
    )


def test_http_provider_body_not_json() -> None:
    with HttpServer() as server:
        server.route("/stats", Reply(200, "<html>"))

        with pytest.raises(HttpProviderError) as caught:
            measure(make_provider(url=server.url("/stats")))

    assert str(caught.value) == f"{server.url('/stats')} returned a body that is not JSON"


def test_http_provider_refused_authentication() -> None:
    with HttpServer() as server:
        server.route("/stats", Reply(403))

        with pytest.raises(AnalysisError, match="rejected the request with status 403"):
            measure(make_provider(url=server.url("/stats"), bearer_token="t"))

    assert server.requests[0].headers["Authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://x"}, "invalid 'url': expected an http or https URL, got 'ftp://x'"),
        ({"url": "http://x", "select": "data.["},
         "invalid 'select' 'data.[': Invalid jmespath expression: Incomplete expression"),
    ],
)
def test_http_provider_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        make_provider(**options)

    assert str(caught.value) == message


VALIDATED = """\
version: 1
name: api
analyses:
  checks:
    provider: http
    url: http://127.0.0.1:9/status
    select: 'checks[?name=='
    success: result < 1
  by-name:
    provider: http
    args: {check: db}
    url: http://127.0.0.1:9/status
    select: "checks[?name=='{{ args.check }}'].latency_ms | [0]"
    success: result < 100
stages:
  - name: check
    steps:
      - gate: {uses: analysis, analysis: checks}
      - gate:
          uses: analysis
          analysis: {provider: http, url: "http://127.0.0.1:9/", select: "a.[", success: "result"}
"""


def test_http_provider_select_checked_at_validate(tmp_path: Path) -> None:
    """A literal select is compiled at validate; one with arguments waits for the run."""
    from pipeline.testing import run_pipeline

    run = run_pipeline(VALIDATED, directory=tmp_path)

    file = tmp_path / "shipline.yml"
    assert run.exit_code == 2
    assert run.errors.splitlines() == [
        f"{file}:7:13: analyses.checks.select: invalid 'select' 'checks[?name==': Invalid "
        f"jmespath expression: Incomplete expression",
        f"{file}:21:74: stages[0].steps[1].gate.analysis.select: invalid 'select' 'a.[': "
        f"Invalid jmespath expression: Incomplete expression",
    ]
