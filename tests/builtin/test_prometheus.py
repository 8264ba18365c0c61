"""Tests of the prometheus provider against a real Prometheus server on 127.0.0.1, and of
its HTTP options (authentication, headers, TLS) against recording servers."""

from __future__ import annotations

import base64
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers.httpserver import HttpServer, Reply
from helpers.prometheus import PrometheusServer
from helpers.providers import provider_context
from pipeline.analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    AnalysisError,
    MeasurementRequest,
    run_analysis,
)
from pipeline.builtin import prometheus as plugin
from pipeline.builtin.prometheus import PrometheusQueryError, series_name
from pipeline.providerhttp import ProviderHttpError

REQUEST = MeasurementRequest("errors", canary_version="2", stable_version="1", endpoint=None)

ERROR_RATE = ('sum(http_requests_total{{version="{v}",code="500"}}) / '
              'sum(http_requests_total{{version="{v}"}})')


def make_provider(tmp_path: Path | None = None, **options: Any) -> plugin.PrometheusProvider:
    context = provider_context({}, _NoProvider(), file=(tmp_path or Path(".")) / "x.yml")
    provider = plugin.shipline_make_provider(name="prometheus", options=options,
                                             context=context)
    assert provider is not None
    return provider


class _NoProvider:
    """An empty plugin, because provider_context registers one."""


def measure(provider: plugin.PrometheusProvider) -> Any:
    return provider.measure(REQUEST, threading.Event())["result"]


def scraped(prometheus: PrometheusServer, version: str, ok: int, errors: int) -> None:
    prometheus.service.set(version, ok=ok, errors=errors)
    prometheus.wait_for(f'sum(http_requests_total{{version="{version}"}})', float(ok + errors))


def run(prometheus: PrometheusServer, query: str, **options: Any) -> Any:
    template = {"provider": "prometheus", "address": prometheus.url, "query": query,
                "success": "result < 0.05", "interval": "1s", **options}
    context = provider_context({"errors": template}, plugin)
    return run_analysis("errors", context, stable_version="1", canary_version="2",
                        endpoint=None)


# -- against the real server -------------------------------------------------------------


def test_prometheus_error_rate_passes(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "good", ok=990, errors=10)

    result = run(prometheus, ERROR_RATE.format(v="good"))

    assert result.verdict == SUCCESSFUL
    assert result.measurements[0].values == {"result": 0.01}
    assert result.measurements[0].message == (
        "success condition 'result < 0.05' is true (result=0.01)"
    )


def test_prometheus_error_rate_fails(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "bad", ok=80, errors=20)

    result = run(prometheus, ERROR_RATE.format(v="bad"))

    assert result.verdict == FAILED
    assert result.measurements[0].values == {"result": 0.2}


def test_prometheus_error_rate_follows_service(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "moving", ok=100, errors=0)
    provider = make_provider(address=prometheus.url, query=ERROR_RATE.format(v="moving"))
    assert measure(provider) == 0.0

    scraped(prometheus, "moving", ok=150, errors=50)

    assert measure(provider) == 0.25


def test_prometheus_empty_result_is_no_data(prometheus: PrometheusServer) -> None:
    result = run(prometheus, ERROR_RATE.format(v="never-served"), on_inconclusive="abort")

    assert result.verdict == INCONCLUSIVE
    assert result.measurements[0].values == {"result": None}
    assert result.measurements[0].no_data


def test_prometheus_nan_is_no_data(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "idle", ok=0, errors=0)

    result = run(prometheus, ERROR_RATE.format(v="idle"), on_no_data="pass")

    assert result.verdict == SUCCESSFUL
    assert result.measurements[0].values == {"result": None}
    assert result.measurements[0].message.endswith("(on_no_data: pass)")


def test_prometheus_no_data_helper_in_condition(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "idle2", ok=0, errors=0)

    result = run(prometheus, ERROR_RATE.format(v="idle2"),
                 success="default(result, 0.0) < 0.05")

    assert result.verdict == SUCCESSFUL


def test_prometheus_scalar(prometheus: PrometheusServer) -> None:
    assert measure(make_provider(address=prometheus.url, query="scalar(vector(0.5))")) == 0.5


def test_prometheus_several_series_is_error(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "split", ok=5, errors=1)
    provider = make_provider(address=prometheus.url,
                             query='http_requests_total{version="split"}')

    with pytest.raises(PrometheusQueryError) as caught:
        measure(provider)

    port = prometheus.service.address.rsplit(":", 1)[1]
    labels = f'instance="127.0.0.1:{port}",job="service",version="split"'
    assert str(caught.value) == (
        f'query returned 2 series where one value was expected: '
        f'http_requests_total{{code="200",{labels}}}, '
        f'http_requests_total{{code="500",{labels}}}; aggregate them (for example with '
        f"sum()) or set series: all"
    )


def test_prometheus_series_all_is_map(prometheus: PrometheusServer) -> None:
    scraped(prometheus, "map", ok=7, errors=3)
    provider = make_provider(address=prometheus.url, series="all",
                             query='sum by (code) (http_requests_total{version="map"})')

    assert measure(provider) == {'{code="200"}': 7.0, '{code="500"}': 3.0}


def test_prometheus_invalid_query_ends_analysis(prometheus: PrometheusServer) -> None:
    result = run(prometheus, "sum(rate(")

    assert result.verdict == ERROR
    assert len(result.measurements) == 1
    assert result.message.startswith("Prometheus rejected the query: bad_data: ")


def test_prometheus_range_vector_is_configuration_error(prometheus: PrometheusServer) -> None:
    provider = make_provider(address=prometheus.url, query="http_requests_total[1m]")

    with pytest.raises(AnalysisError) as caught:
        measure(provider)

    assert str(caught.value) == (
        "query 'http_requests_total[1m]' returns a range vector; an instant query needs one "
        "value per series: wrap the range in a function such as rate() or avg_over_time()"
    )


def test_prometheus_unreachable_is_measurement_error() -> None:
    provider = make_provider(address="http://127.0.0.1:9", query="up", retries=1,
                             request_timeout="1s")

    with pytest.raises(ProviderHttpError) as caught:
        measure(provider)

    assert str(caught.value) == (
        "GET http://127.0.0.1:9/api/v1/query failed after 2 attempts: connection refused"
    )


# -- HTTP options, against recording servers ---------------------------------------------

VECTOR = ('{"status":"success","data":{"resultType":"vector","result":'
          '[{"metric":{},"value":[1,"0.125"]}]}}')


def test_prometheus_sends_bearer_token_and_headers() -> None:
    with HttpServer() as server:
        server.route("/api/v1/query", Reply(200, VECTOR))
        provider = make_provider(address=server.url(""), query="up", bearer_token="s3cret",
                                 headers={"X-Scope-OrgID": "team-a"})

        assert measure(provider) == 0.125

    headers = server.requests[0].headers
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Scope-OrgID"] == "team-a"


def test_prometheus_sends_basic_auth() -> None:
    with HttpServer() as server:
        server.route("/api/v1/query", Reply(200, VECTOR))
        provider = make_provider(address=server.url(""), query="up",
                                 basic_auth={"username": "ci", "password": "pw"})

        measure(provider)

    expected = base64.b64encode(b"ci:pw").decode()
    assert server.requests[0].headers["Authorization"] == f"Basic {expected}"


def test_prometheus_retries_server_errors() -> None:
    with HttpServer() as server:
        server.route("/api/v1/query", Reply(503, "busy"), Reply(200, VECTOR))
        provider = make_provider(address=server.url(""), query="up", retries=1)

        assert measure(provider) == 0.125

    assert len(server.requests) == 2


def test_prometheus_refused_authentication() -> None:
    with HttpServer() as server:
        server.route("/api/v1/query", Reply(401, "no"))
        provider = make_provider(address=server.url(""), query="up")

        with pytest.raises(AnalysisError) as caught:
            measure(provider)

    assert str(caught.value) == (
        f"Prometheus at {server.url('')} rejected the request with status 401: check "
        f"'bearer_token' or 'basic_auth'"
    )


def test_prometheus_trusts_ca_file(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert_file = tmp_path / "server.pem"
    key_file = tmp_path / "server.key"
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    with HttpServer(tls=(cert_file, key_file)) as server:
        server.route("/api/v1/query", Reply(200, VECTOR))
        trusted = make_provider(tmp_path, address=server.url(""), query="up",
                                ca_file="ca.pem")
        untrusted = make_provider(tmp_path, address=server.url(""), query="up", retries=0)

        assert measure(trusted) == 0.125
        with pytest.raises(ProviderHttpError, match="TLS certificate verification failed"):
            measure(untrusted)


def test_prometheus_missing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError) as caught:
        make_provider(tmp_path, address="https://127.0.0.1:1", query="up", ca_file="no.pem")

    assert str(caught.value) == f"ca_file 'no.pem' not found: looked for {tmp_path / 'no.pem'}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "prometheus:9090", "query": "up"},
         "invalid 'address': expected an http or https URL, got 'prometheus:9090'"),
        ({"address": "http://p", "query": " "},
         "missing 'query': give the PromQL expression to measure"),
        ({"address": "http://p", "query": "up", "series": "some"},
         "invalid 'series': expected one or all, got 'some'"),
        ({"address": "http://p", "query": "up", "bearer_token": "a",
          "basic_auth": {"username": "u", "password": "p"}},
         "give either 'bearer_token' or 'basic_auth', not both"),
        ({"address": "http://p", "query": "up", "retries": -1},
         "invalid 'retries': expected an integer of 0 or more, got -1"),
    ],
)
def test_prometheus_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        make_provider(**options)

    assert str(caught.value) == message


def test_series_name() -> None:
    assert series_name({"__name__": "up", "job": "a", "instance": "b"}) == (
        'up{instance="b",job="a"}'
    )
    assert series_name({"__name__": "up"}) == "up"
    assert series_name({}) == "{}"


# -- against a real server with TLS and basic authentication -----------------------------


def test_prometheus_tls_and_basic_auth(secured_prometheus: Any, tmp_path: Path) -> None:
    server, secured = secured_prometheus
    shutil.copy(secured.ca_file, tmp_path / "ca.pem")
    auth = {"username": secured.username, "password": secured.password}
    provider = make_provider(tmp_path, address=server.url, query="scalar(vector(0.25))",
                             ca_file="ca.pem", basic_auth=auth)

    assert measure(provider) == 0.25


def test_prometheus_wrong_password_ends_analysis(secured_prometheus: Any,
                                                 tmp_path: Path) -> None:
    server, secured = secured_prometheus
    shutil.copy(secured.ca_file, tmp_path / "ca.pem")
    provider = make_provider(tmp_path, address=server.url, query="up", ca_file="ca.pem",
                             basic_auth={"username": secured.username, "password": "wrong"})

    with pytest.raises(AnalysisError) as caught:
        measure(provider)

    assert str(caught.value) == (
        f"Prometheus at {server.url} rejected the request with status 401: check "
        f"'bearer_token' or 'basic_auth'"
    )


def test_prometheus_untrusted_certificate(secured_prometheus: Any, tmp_path: Path) -> None:
    server, secured = secured_prometheus
    provider = make_provider(tmp_path, address=server.url, query="up", retries=0,
                             basic_auth={"username": secured.username,
                                         "password": secured.password})

    with pytest.raises(ProviderHttpError, match="TLS certificate verification failed"):
        measure(provider)
