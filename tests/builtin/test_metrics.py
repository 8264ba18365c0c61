"""``run --metrics`` and ``--push``: the OpenMetrics file read back with prometheus-client's
parser, and pushes to a real Pushgateway and to a recording server on loopback."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as parse_text_format

import pipeline
from helpers import stepplugin
from helpers.memorytarget import MemoryTarget, run_deploy
from helpers.pushgateway import Pushgateway, start_pushgateway
from helpers.recorder import HANG, Recorder, Reply, refused_url
from pipeline.analysis import MeasurementRequest
from pipeline.builtin.metrics import MetricsReporter, PushTarget, parse_push_url
from pipeline.errors import UsageError
from pipeline.exitcodes import ExitCode

PLUGINS = ("-p", "helpers.stepplugin", "-p", "pipeline.builtin.metrics")

PIPELINE = """\
version: 1
name: shop
environments:
  prod: {target: {type: none}}
stages:
  - name: checks
    steps:
      - gate: {uses: pass}
  - name: ship
    environment: prod
    steps:
      - deploy: {strategy: record, version: "2.0"}
      - name: verify
        gate: {uses: fail, message: "error rate too high"}
      - name: never
        gate: {uses: pass}
  - name: after
    needs: [ship]
    steps:
      - gate: {uses: pass}
"""

PASSING = """\
version: 1
name: shop
stages:
  - name: checks
    steps:
      - gate: {uses: pass}
      - gate: {uses: pass}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    stepplugin.EVENTS.clear()


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    with start_pushgateway(tmp_path_factory.mktemp("pushgateway")) as gateway:
        yield gateway


def samples_of(families: Any, **required: str) -> Samples:
    """Return sample name and labels -> value, keeping samples whose labels include
    ``required`` and dropping those labels from the key."""
    found: Samples = {}
    for family in families:
        for sample in family.samples:
            labels = dict(sample.labels)
            if any(labels.get(name) != value for name, value in required.items()):
                continue
            for name in required:
                labels.pop(name, None)
            found[(sample.name, frozenset(labels.items()))] = sample.value
    return found


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def run_with_metrics(shipline_cli, write_pipeline, tmp_path: Path,
                     text: str = PIPELINE) -> tuple[int, Samples]:
    write_pipeline(text)
    result = shipline_cli("run", *PLUGINS, "--metrics", "out/metrics.txt", cwd=tmp_path)
    content = (tmp_path / "out" / "metrics.txt").read_text(encoding="utf-8")
    return result.exit_code, samples_of(text_string_to_metric_families(content))


# -- the file ----------------------------------------------------------------------------


def test_metrics_file_steps_by_outcome(shipline_cli, write_pipeline, tmp_path):
    exit_code, samples = run_with_metrics(shipline_cli, write_pipeline, tmp_path)
    steps = {k: v for k, v in samples.items() if k[0] == "shipline_steps_total"}

    assert exit_code == ExitCode.FAILED
    assert steps == {
        key("shipline_steps_total", pipeline="shop", kind="gate", outcome="passed"): 1.0,
        key("shipline_steps_total", pipeline="shop", kind="deploy", outcome="passed"): 1.0,
        key("shipline_steps_total", pipeline="shop", kind="gate", outcome="failed"): 1.0,
        key("shipline_steps_total", pipeline="shop", kind="gate", outcome="skipped"): 2.0,
    }


def test_metrics_file_rollbacks(shipline_cli, write_pipeline, tmp_path):
    _, samples = run_with_metrics(shipline_cli, write_pipeline, tmp_path)
    assert samples[key("shipline_rollbacks_total", pipeline="shop", outcome="passed")] == 1.0
    assert samples[key("shipline_rollbacks_total", pipeline="shop",
                       outcome="rollback_failed")] == 0.0


def test_metrics_file_rollbacks_zero(shipline_cli, write_pipeline, tmp_path):
    _, samples = run_with_metrics(shipline_cli, write_pipeline, tmp_path, PASSING)
    assert samples[key("shipline_rollbacks_total", pipeline="shop", outcome="passed")] == 0.0


def test_metrics_file_run(shipline_cli, write_pipeline, tmp_path):
    before = time.time()
    _, samples = run_with_metrics(shipline_cli, write_pipeline, tmp_path)
    finished = samples[key("shipline_run_finished_timestamp_seconds", pipeline="shop")]

    assert samples[key("shipline_run_exit_code", pipeline="shop")] == 1.0
    assert samples[key("shipline_run_duration_seconds", pipeline="shop")] >= 0.0
    assert before <= finished <= time.time()


def test_metrics_file_stage_durations(shipline_cli, write_pipeline, tmp_path):
    _, samples = run_with_metrics(shipline_cli, write_pipeline, tmp_path)
    stages = {k for k in samples if k[0] == "shipline_stage_duration_seconds"}

    assert stages == {
        key("shipline_stage_duration_seconds", pipeline="shop", stage="checks",
            environment="", outcome="passed"),
        key("shipline_stage_duration_seconds", pipeline="shop", stage="ship",
            environment="prod", outcome="failed"),
    }


def test_metrics_file_unwritable(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(PASSING)
    (tmp_path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    result = shipline_cli("run", *PLUGINS, "--metrics", "blocker/metrics.txt", cwd=tmp_path)

    assert result.exit_code == ExitCode.INVALID
    # The path as given, as --junitxml shows it.
    assert result.stderr == (
        "shipline: error: --metrics blocker/metrics.txt: 'blocker' is not a directory\n"
    )


def test_metrics_file_replaced_whole(shipline_cli, write_pipeline, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.txt").write_text("old content\n", encoding="utf-8")
    run_with_metrics(shipline_cli, write_pipeline, tmp_path, PASSING)
    content = (tmp_path / "out" / "metrics.txt").read_text(encoding="utf-8")

    assert "old content" not in content
    assert content.endswith("# EOF\n")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.txt"]


# -- analysis measurements ---------------------------------------------------------------


class FixedProvider:
    """Returns the scripted values in order, then repeats the last."""

    def __init__(self, values: list[Mapping[str, float | None]]) -> None:
        self.values = values

    def measure(self, request: MeasurementRequest,
                cancel: threading.Event) -> Mapping[str, float | None]:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class ProviderPlugin:
    """Provides the analysis provider ``fixed``."""

    def __init__(self, values: list[Mapping[str, float | None]]) -> None:
        self.values = values

    @pipeline.hookimpl
    def shipline_make_provider(self, name: str) -> FixedProvider | None:
        return FixedProvider(self.values) if name == "fixed" else None


def canary_metrics(tmp_path: Path, values: list[Mapping[str, float | None]]) -> Samples:
    """Run a canary with one analysis of three measurements and read its metrics file."""
    path = tmp_path / "metrics.txt"
    target = MemoryTarget(slots={"blue": ["blue-1"], "green": ["green-1"]}, weights=True,
                          endpoint="http://127.0.0.1:9/")
    analysis = {"provider": "fixed", "success": "success_rate >= 0.9", "count": 3,
                "interval": "10s", "failure_limit": 1}
    run_deploy("canary", {"version": "2.0", "steps": [{"analysis": "error-rate"}]}, target,
               plugins=[ProviderPlugin(values), MetricsReporter(path, None)],
               analyses={"error-rate": analysis})
    content = path.read_text(encoding="utf-8")
    return samples_of(text_string_to_metric_families(content), pipeline="test",
                      stage="production", analysis="error-rate")


MEASURED = [{"success_rate": 1.0, "latency": 0.5},
            {"success_rate": 0.5, "latency": None},
            {"success_rate": 0.95, "latency": 0.25}]


def test_metrics_analysis_summary(tmp_path):
    samples = canary_metrics(tmp_path, list(MEASURED))
    assert samples[key("shipline_analysis_value_count", metric="success_rate")] == 3.0
    assert samples[key("shipline_analysis_value_sum", metric="success_rate")] == 2.45
    assert samples[key("shipline_analysis_value_count", metric="latency")] == 2.0
    assert samples[key("shipline_analysis_value_sum", metric="latency")] == 0.75


def test_metrics_analysis_last_value(tmp_path):
    samples = canary_metrics(tmp_path, list(MEASURED))
    assert samples[key("shipline_analysis_last_value", metric="success_rate")] == 0.95
    assert samples[key("shipline_analysis_last_value", metric="latency")] == 0.25


def test_metrics_analysis_verdicts(tmp_path):
    samples = canary_metrics(tmp_path, list(MEASURED))
    verdicts = {k: v for k, v in samples.items()
                if k[0] == "shipline_analysis_measurements_total"}
    assert verdicts == {
        key("shipline_analysis_measurements_total", verdict="successful"): 2.0,
        key("shipline_analysis_measurements_total", verdict="failed"): 1.0,
    }


# -- pushing to a real Pushgateway -------------------------------------------------------


def gateway_samples(gateway: Pushgateway, pipeline_name: str) -> Samples:
    return samples_of(parse_text_format(gateway.metrics()), job="shipline",
                      pipeline=pipeline_name, instance="")


def test_metrics_push_to_pushgateway(shipline_cli, write_pipeline, tmp_path, pushgateway):
    write_pipeline(PIPELINE.replace("name: shop", "name: pushed"))
    result = shipline_cli("run", *PLUGINS, "--push", pushgateway.url, cwd=tmp_path)
    samples = gateway_samples(pushgateway, "pushed")

    assert result.exit_code == ExitCode.FAILED
    assert result.stderr == ""
    assert samples[key("shipline_run_exit_code")] == 1.0
    assert samples[key("shipline_steps_total", kind="gate", outcome="skipped")] == 2.0
    assert samples[key("shipline_rollbacks_total", outcome="passed")] == 1.0
    assert key("shipline_stage_duration_seconds", stage="ship", environment="prod",
               outcome="failed") in samples


def test_metrics_push_same_as_file(shipline_cli, write_pipeline, tmp_path, pushgateway):
    write_pipeline(PIPELINE.replace("name: shop", "name: both"))
    shipline_cli("run", *PLUGINS, "--push", pushgateway.url, "--metrics", "metrics.txt",
                 cwd=tmp_path)
    content = (tmp_path / "metrics.txt").read_text(encoding="utf-8")
    in_file = samples_of(text_string_to_metric_families(content), pipeline="both")
    pushed = gateway_samples(pushgateway, "both")

    assert {k: v for k, v in pushed.items() if k in in_file} == in_file


def test_metrics_push_replaces_previous_run(shipline_cli, write_pipeline, tmp_path,
                                            pushgateway):
    write_pipeline(PIPELINE.replace("name: shop", "name: replaced"))
    shipline_cli("run", *PLUGINS, "--push", pushgateway.url, cwd=tmp_path)
    write_pipeline(PASSING.replace("name: shop", "name: replaced"))
    shipline_cli("run", *PLUGINS, "--push", pushgateway.url, cwd=tmp_path)
    samples = gateway_samples(pushgateway, "replaced")
    steps = {k: v for k, v in samples.items() if k[0] == "shipline_steps_total"}

    assert samples[key("shipline_run_exit_code")] == 0.0
    assert steps == {key("shipline_steps_total", kind="gate", outcome="passed"): 2.0}


# -- failed pushes -----------------------------------------------------------------------


def run_push(shipline_cli, write_pipeline, tmp_path: Path, url: str, *extra: str):
    write_pipeline(PASSING)
    return shipline_cli("run", *PLUGINS, "--push", url, *extra, cwd=tmp_path)


def test_metrics_push_refused_warns(shipline_cli, write_pipeline, tmp_path):
    url = refused_url()
    result = run_push(shipline_cli, write_pipeline, tmp_path, url)

    assert result.exit_code == ExitCode.OK
    assert result.stderr == (
        f"shipline: WARNING: pushing metrics to the Pushgateway at {url} failed: "
        "[Errno 111] Connection refused (the exit code is not affected)\n"
    )


def test_metrics_push_server_error_warns(shipline_cli, write_pipeline, tmp_path):
    with Recorder() as recorder:
        recorder.route("/metrics/job/shipline/pipeline/shop",
                       Reply(500, "storage\n  unavailable"))
        result = run_push(shipline_cli, write_pipeline, tmp_path, recorder.url("/"))

    assert result.exit_code == ExitCode.OK
    assert result.stderr == (
        f"shipline: WARNING: pushing metrics to the Pushgateway at {recorder.url('/')} "
        "failed: HTTP 500 Internal Server Error: storage unavailable "
        "(the exit code is not affected)\n"
    )


def test_metrics_push_failure_keeps_failed_exit_code(shipline_cli, write_pipeline, tmp_path):
    write_pipeline(PIPELINE)
    result = shipline_cli("run", *PLUGINS, "--push", refused_url(), cwd=tmp_path)
    assert result.exit_code == ExitCode.FAILED


def test_metrics_push_timeout(shipline_cli, write_pipeline, tmp_path):
    with Recorder() as recorder:
        recorder.route("/metrics/job/shipline/pipeline/shop", HANG)
        started = time.monotonic()
        result = run_push(shipline_cli, write_pipeline, tmp_path, recorder.url(),
                          "--push-timeout", "0.3")
        elapsed = time.monotonic() - started

    assert result.exit_code == ExitCode.OK
    assert result.stderr == (
        f"shipline: WARNING: pushing metrics to the Pushgateway at {recorder.url()} failed: "
        "timed out (the exit code is not affected)\n"
    )
    assert elapsed < 5


def test_metrics_push_redirect_not_followed(shipline_cli, write_pipeline, tmp_path):
    with Recorder() as recorder:
        recorder.route("/metrics/job/shipline/pipeline/shop",
                       Reply(307, redirect=recorder.url("/elsewhere")))
        result = run_push(shipline_cli, write_pipeline, tmp_path, recorder.url())
        paths = [request.path for request in recorder.requests]

    assert result.exit_code == ExitCode.OK
    assert paths == ["/metrics/job/shipline/pipeline/shop"]
    assert "failed: HTTP 307 Temporary Redirect (the exit code is not affected)" in result.stderr


def test_metrics_push_basic_auth(shipline_cli, write_pipeline, tmp_path):
    with Recorder() as recorder:
        url = recorder.url("/").replace("http://", "http://ci:pa%24%24word-123@")
        result = run_push(shipline_cli, write_pipeline, tmp_path, url, "-vv")
        (request,) = recorder.wait_for(1)

    expected = base64.b64encode(b"ci:pa$$word-123").decode()
    assert result.exit_code == ExitCode.OK
    assert request.method == "PUT"
    assert request.header("Authorization") == f"Basic {expected}"
    assert "pa$$word-123" not in result.stderr
    assert (f"shipline: INFO: pushed metrics of pipeline shop to the Pushgateway at "
            f"{recorder.url('/')}\n") in result.stderr


def test_metrics_push_without_file(shipline_cli, write_pipeline, tmp_path):
    with Recorder() as recorder:
        run_push(shipline_cli, write_pipeline, tmp_path, recorder.url())
        (request,) = recorder.wait_for(1)

    assert request.text.startswith("# HELP shipline_run_duration_seconds ")
    assert list(tmp_path.glob("**/metrics*")) == []


# -- options -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:9091", "http://"])
def test_metrics_push_url_invalid(shipline_cli, write_pipeline, tmp_path, url):
    result = run_push(shipline_cli, write_pipeline, tmp_path, url)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --push: expected the http:// or https:// URL of a Pushgateway\n"
    )


def test_metrics_push_url_bad_port(shipline_cli, write_pipeline, tmp_path):
    result = run_push(shipline_cli, write_pipeline, tmp_path, "http://127.0.0.1:99999/")
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        "shipline: error: --push: the port of the URL is not a number from 0 to 65535\n"
    )


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_metrics_push_timeout_invalid(shipline_cli, write_pipeline, tmp_path, value):
    result = run_push(shipline_cli, write_pipeline, tmp_path, "http://127.0.0.1:9/",
                      "--push-timeout", value)
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr == (
        f"shipline: error: argument --push-timeout: expected a positive number of seconds, "
        f"got '{value}' (see 'shipline run --help')\n"
    )


def test_parse_push_url_strips_credentials():
    target = parse_push_url("https://user:secret@[::1]:9091/base?x=1", 2.0)
    assert target == PushTarget("https://[::1]:9091/base?x=1", "user", "secret", 2.0)


def test_parse_push_url_error_hides_url():
    with pytest.raises(UsageError) as raised:
        parse_push_url("ftp://user:secret@host/", 1.0)
    assert "secret" not in str(raised.value)


def test_pushgateway_fixture_requires_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as raised, start_pushgateway(tmp_path):
        pass
    assert str(raised.value) == (
        "prometheus-pushgateway is not installed: run scripts/install-system-deps "
        "(it installs the Debian package prometheus-pushgateway)"
    )
