"""``--metrics PATH`` and ``--push URL``: Prometheus metrics of a run, written when it ends.

``--metrics`` writes the OpenMetrics text format, for a file-based collector or a CI
artifact. ``--push`` sends the same metrics to a Prometheus Pushgateway under the job
``shipline`` and the grouping key ``pipeline``, so each push replaces the metrics of the
pipeline's previous run. ``https://user:password@host`` sends the credentials with HTTP
basic authentication, and the password is masked like a secret. A push that fails is a
warning and never changes the exit code.

Every metric has the label ``pipeline``:

- ``shipline_run_duration_seconds``, ``shipline_run_exit_code`` and
  ``shipline_run_finished_timestamp_seconds`` (Unix time): one value per run;
- ``shipline_stage_duration_seconds{stage, environment, outcome}``: each stage that ran;
- ``shipline_steps_total{kind, outcome}``: steps by kind and outcome, skipped ones
  included and rollbacks excluded;
- ``shipline_rollbacks_total{outcome}``: rollbacks that ``passed`` or ended
  ``rollback_failed``, both present even when zero;
- ``shipline_analysis_value{stage, analysis, metric}`` (a summary: ``_count`` and
  ``_sum``) and ``shipline_analysis_last_value`` (a gauge): the values of analysis
  measurements, leaving out measurements without data;
- ``shipline_analysis_measurements_total{stage, analysis, verdict}``.

``prometheus-client`` is imported only when one of the options is given, so other
commands do not pay for it.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline import hookimpl
from pipeline.builtin.eventlog import analyses_in
from pipeline.errors import UsageError
from pipeline.reportpath import check_report_path

if TYPE_CHECKING:
    from urllib.error import HTTPError

    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.runner import RunResult

logger = logging.getLogger("shipline")

#: The Pushgateway job name of every push.
JOB = "shipline"

#: Seconds a push may wait to connect and for each read of the response (urllib applies
#: the timeout per socket operation, not to the whole push), unless ``--push-timeout``.
DEFAULT_PUSH_TIMEOUT = 10.0

#: Characters of a Pushgateway error response kept in the warning.
MAX_ERROR_BODY = 200

#: The plugin name under which the reporter is registered (the module is ``metrics``).
REPORTER_NAME = "metricsreporter"


# -- metric families ---------------------------------------------------------------------


class RunCollector:
    """A Prometheus collector that reports one finished run.

    It computes every family from the :class:`~pipeline.runner.RunResult` when
    collected and keeps no state, so writing the file and pushing show the same values.
    """

    def __init__(self, result: RunResult, finished_at: float) -> None:
        self.result = result
        #: Unix seconds.
        self.finished_at = finished_at
        self.pipeline = result.plan.name

    def collect(self) -> Iterator[Metric]:
        yield from self._run_families()
        yield from self._stage_families()
        yield from self._step_families()
        yield from self._analysis_families()

    def _run_families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        duration = GaugeMetricFamily(
            "shipline_run_duration", "Seconds from the start of the run to its end.",
            labels=["pipeline"], unit="seconds")
        duration.add_metric([self.pipeline], self.result.duration)

        exit_code = GaugeMetricFamily(
            "shipline_run_exit_code",
            "Exit code of the run: 0 ok, 1 failed and rolled back, 3 blocked, "
            "4 rollback failed, 5 locked, 70 internal error, 130 interrupted.",
            labels=["pipeline"])
        exit_code.add_metric([self.pipeline], int(self.result.exit_code))

        finished = GaugeMetricFamily(
            "shipline_run_finished_timestamp", "Unix time when the run ended.",
            labels=["pipeline"], unit="seconds")
        finished.add_metric([self.pipeline], self.finished_at)

        yield from (duration, exit_code, finished)

    def _stage_families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "shipline_stage_duration",
            "Seconds each stage that ran took, by stage, environment and outcome.",
            labels=["pipeline", "stage", "environment", "outcome"], unit="seconds")
        for stage in self.result.stages:
            if stage.skipped_reason is not None:
                continue
            labels = [self.pipeline, stage.stage.name, stage.stage.environment or "",
                      stage.outcome.value]
            family.add_metric(labels, stage.duration)
        yield family

    def _step_families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily

        steps: Counter[tuple[str, str]] = Counter()
        rollbacks: Counter[str] = Counter({"passed": 0, "rollback_failed": 0})
        for report in self.result.reports:
            if report.rollback:
                rollbacks[report.outcome.value] += 1
            else:
                steps[(report.kind, report.outcome.value)] += 1

        step_family = CounterMetricFamily(
            "shipline_steps", "Steps by kind and outcome, skipped steps included.",
            labels=["pipeline", "kind", "outcome"])
        for (kind, outcome), count in sorted(steps.items()):
            step_family.add_metric([self.pipeline, kind, outcome], count)

        rollback_family = CounterMetricFamily(
            "shipline_rollbacks", "Rollbacks by outcome: passed or rollback_failed.",
            labels=["pipeline", "outcome"])
        for outcome, count in sorted(rollbacks.items()):
            rollback_family.add_metric([self.pipeline, outcome], count)

        yield step_family
        yield rollback_family

    def _analysis_families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        values: dict[tuple[str, str, str], list[float]] = {}
        verdicts: Counter[tuple[str, str, str]] = Counter()
        for stage in self.result.stages:
            for report in stage.reports:
                for analysis in analyses_in(report):
                    for measurement in analysis.measurements:
                        verdicts[(stage.stage.name, analysis.name, measurement.verdict)] += 1
                        for metric, value in measurement.values.items():
                            if value is not None:
                                key = (stage.stage.name, analysis.name, metric)
                                values.setdefault(key, []).append(value)

        labels = ["pipeline", "stage", "analysis", "metric"]
        summary = SummaryMetricFamily(
            "shipline_analysis_value",
            "Values of analysis measurements that had data, by stage, analysis and metric.",
            labels=labels)
        last = GaugeMetricFamily(
            "shipline_analysis_last_value",
            "The last value of each metric that had data, by stage, analysis and metric.",
            labels=labels)
        for key, measured in sorted(values.items()):
            summary.add_metric([self.pipeline, *key], len(measured), sum(measured))
            last.add_metric([self.pipeline, *key], measured[-1])

        counts = CounterMetricFamily(
            "shipline_analysis_measurements",
            "Analysis measurements by stage, analysis and verdict.",
            labels=["pipeline", "stage", "analysis", "verdict"])
        for key, count in sorted(verdicts.items()):
            counts.add_metric([self.pipeline, *key], count)

        yield from (summary, last, counts)


def build_registry(result: RunResult, finished_at: float) -> CollectorRegistry:
    """Return a new registry (not the global one) that contains the run's metrics."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(result, finished_at))
    return registry


# -- the file ----------------------------------------------------------------------------


def write_metrics(path: Path, registry: CollectorRegistry) -> None:
    """Write ``registry`` in the OpenMetrics text format to ``path``, replacing it atomically.

    Missing parent directories are created, and a reader sees the old file or the whole
    new one. Raises OSError when the file cannot be written, leaving no temporary file.
    """
    import tempfile

    from prometheus_client.openmetrics.exposition import generate_latest

    # prometheus-client 0.26 leaves this function without annotations; it returns bytes.
    data: bytes = generate_latest(registry)  # type: ignore[no-untyped-call]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


# -- the push ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PushTarget:
    """The destination of ``--push``. ``url`` has the credentials removed."""

    url: str
    username: str | None
    password: str | None
    #: Seconds, for connecting and for reading the response.
    timeout: float


def parse_push_url(url: str, timeout: float) -> PushTarget:
    """Split the credentials off an http or https URL.

    Raises :class:`~pipeline.errors.UsageError` for any other URL. The message does not
    repeat the URL, because it can contain a password.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--push: expected the http:// or https:// URL of a Pushgateway")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError("--push: the port of the URL is not a number from 0 to 65535") \
            from exc

    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return PushTarget(clean, username, password, timeout)


def push_metrics(registry: CollectorRegistry, target: PushTarget, pipeline: str) -> bool:
    """Push ``registry`` to the Pushgateway, replacing the pipeline's group; return success.

    Redirects are not followed, because ``urllib`` follows none for PUT. A failed
    request (refused, timed out, an HTTP error status, an invalid URL) is logged as a
    warning instead of raised.
    """
    import http.client
    from urllib.error import HTTPError, URLError

    from prometheus_client.exposition import push_to_gateway

    try:
        push_to_gateway(target.url, job=JOB, registry=registry,
                        grouping_key={"pipeline": pipeline}, timeout=target.timeout,
                        handler=_auth_handler(target))
    except HTTPError as exc:
        body = _error_body(exc)
        detail = f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
        _warn_push_failed(target, detail)
        return False
    except URLError as exc:
        _warn_push_failed(target, str(exc.reason))
        return False
    except (OSError, ValueError, http.client.HTTPException) as exc:
        _warn_push_failed(target, str(exc) or type(exc).__name__)
        return False

    logger.info("pushed metrics of pipeline %s to the Pushgateway at %s", pipeline, target.url)
    return True


def _auth_handler(target: PushTarget) -> Callable[..., Callable[[], None]]:
    from prometheus_client.exposition import basic_auth_handler, default_handler

    if target.username is None:
        return default_handler

    def handler(url: str, method: str, timeout: float | None,
                headers: list[tuple[str, str]], data: bytes) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data,
                                  target.username, target.password or "")

    return handler


def _error_body(error: HTTPError) -> str:
    import http.client

    try:
        text = error.read(MAX_ERROR_BODY).decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        return ""
    return " ".join(text.split())


def _warn_push_failed(target: PushTarget, detail: str) -> None:
    logger.warning("pushing metrics to the Pushgateway at %s failed: %s "
                   "(the exit code is not affected)", target.url, detail)


# -- the reporter ------------------------------------------------------------------------


class MetricsReporter:
    """Writes and pushes the metrics when the run finishes."""

    def __init__(self, path: Path | None, push: PushTarget | None) -> None:
        self.path = path
        self.push = push

    @hookimpl
    def shipline_run_finish(self, result: RunResult, context: RunContext) -> None:
        registry = build_registry(result, context.clock.time())
        if self.path is not None:
            try:
                write_metrics(self.path, registry)
            except OSError as exc:
                logger.error("writing the metrics file %s failed: %s", self.path, exc)
            else:
                logger.info("wrote metrics file %s", self.path)
        if self.push is not None:
            push_metrics(registry, self.push, result.plan.name)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got '{text}'")
    return value


@hookimpl
def shipline_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics", metavar="PATH",
        help="write Prometheus metrics of the run (durations, steps by outcome, analysis "
        "values, rollbacks) to PATH in the OpenMetrics text format when the run ends",
    )
    parser.add_argument(
        "--push", metavar="URL",
        help="push the same metrics to the Prometheus Pushgateway at URL (job 'shipline', "
        "grouped by pipeline); a failed push is a warning",
    )
    parser.add_argument(
        "--push-timeout", metavar="SECONDS", type=_positive_seconds,
        default=DEFAULT_PUSH_TIMEOUT,
        help=f"seconds --push may wait to connect and for the response "
        f"(default: {DEFAULT_PUSH_TIMEOUT:g})",
    )


@hookimpl
def shipline_configure(config: Config) -> None:
    metrics = config.option("metrics")
    push = config.option("push")
    if not metrics and not push:
        return
    if importlib.util.find_spec("prometheus_client") is None:
        raise UsageError("--metrics and --push need the Python package prometheus-client: "
                         "install it with 'pip install prometheus-client'")

    target = None
    if push:
        target = parse_push_url(str(push), float(config.option("push_timeout")))
        if target.password:
            config.masker.add(target.password)
    path = config.invocation_dir / Path(str(metrics)) if metrics else None
    if path is not None:
        # Checked as given, so the message shows it as the other report options do. A
        # relative path is resolved against the folder shipline runs in.
        check_report_path(Path(str(metrics)), "--metrics")
    config.pluginmanager.register(MetricsReporter(path, target), name=REPORTER_NAME)


@hookimpl
def shipline_unconfigure(config: Config) -> None:
    reporter = config.pluginmanager.get_plugin(REPORTER_NAME)
    if reporter is not None:
        config.pluginmanager.unregister(reporter)
