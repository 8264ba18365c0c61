"""The ``probe`` analysis provider: real HTTP requests through the router, per version.

Each measurement sends ``requests`` GET requests to the environment's router endpoint
plus ``path``, ``concurrency`` of them at a time, and attributes every response to a
version by the response header ``version_header``, which the router adds (the local
router does). Options, besides the common analysis options of :mod:`pipeline.analysis`:

``requests`` (integer, default 100)
    Requests per measurement.
``path`` (string, default ``/``)
    Path and query appended to the endpoint.
``request_timeout`` (duration, default 2 s)
    Connect and read timeout of each request.
``concurrency`` (integer, default 4, at most 64)
    Requests in flight at once; each is a thread.
``version_header`` (string, default ``X-Shipline-Version``)
    Response header that names the version that sent the response.
``headers`` (mapping of strings)
    Extra request headers, for example ``Host`` for a router that routes by name.

Metrics of the canary version, and the same for the stable version as
``stable_<name>``:

``requests``
    Responses that named the version.
``success_rate`` and ``error_rate``
    Share of those responses with a status below 500, and the rest.
``p50_ms``, ``p95_ms``, ``p99_ms``
    Latency percentiles in milliseconds, from sending a request to reading the whole
    body, by linear interpolation between the closest ranks (numpy's default method).

A version without responses has ``requests`` 0 and no data for the other metrics, so
conditions on them make the measurement inconclusive.

``unattributed_requests`` counts requests that cannot be attributed: no response
(connection error or timeout), or a response without the header or naming neither
version. They count for neither version, because the probe cannot tell which version
failed. When no request gets any response at all, the measurement is an error naming
the first connection error.

Requests go straight to the endpoint: proxy settings from the environment
(``HTTP_PROXY``, ``NO_PROXY``...) and ``.netrc`` are ignored.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.analysis import COMMON_ANALYSIS_PROPERTIES, AnalysisError, MeasurementRequest
from pipeline.context import Interrupted
from pipeline.diagnostics import Diagnostic
from pipeline.durations import DURATION_PATTERN, parse_duration
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    import requests

    from pipeline.config import Config
    from pipeline.context import RunContext
    from pipeline.plan import Plan

logger = logging.getLogger("shipline")

PROVIDER = "probe"
VERSION_HEADER = "X-Shipline-Version"
MAX_CONCURRENCY = 64

#: Metrics measured for each version; the stable version's get the prefix ``stable_``.
VERSION_METRICS = ("requests", "success_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms")

#: Every metric a probe measurement returns, for conditions to use.
METRIC_NAMES = frozenset(
    (*VERSION_METRICS, *(f"stable_{name}" for name in VERSION_METRICS), "unattributed_requests")
)

_PERCENTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0}

PROBE_PROPERTIES: dict[str, Any] = {
    "requests": {
        "type": "integer",
        "minimum": 1,
        "title": "Requests",
        "description": "Requests sent per measurement (default 100).",
    },
    "path": {
        "type": "string",
        "pattern": "^/",
        "title": "Path",
        "description": "Path and query appended to the router endpoint (default `/`).",
        "examples": ["/", "/healthz", "/api/items?limit=1"],
    },
    "request_timeout": {
        "type": ["number", "string"],
        "minimum": 0,
        "pattern": DURATION_PATTERN,
        "title": "Request timeout",
        "description": "Connect and read timeout of each request (default 2s).",
    },
    "concurrency": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_CONCURRENCY,
        "title": "Concurrency",
        "description": f"Requests in flight at once (default 4, at most {MAX_CONCURRENCY}).",
    },
    "version_header": {
        "type": "string",
        "minLength": 1,
        "title": "Version header",
        "description": "Response header naming the version that sent the response "
        f"(default `{VERSION_HEADER}`).",
    },
    "headers": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "title": "Headers",
        "description": "Extra headers sent with every request, for example `Host`.",
    },
}


@dataclass(frozen=True)
class ProbeOptions:
    """The probe's own options, parsed; ``request_timeout`` is in seconds."""

    requests: int = 100
    path: str = "/"
    request_timeout: float = 2.0
    concurrency: int = 4
    version_header: str = VERSION_HEADER
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ProbeOptions:
        """Parse the probe's keys of an analysis mapping; other keys are ignored.

        The schema has checked them already; this raises AnalysisError, naming the key,
        for plans that were built without it.
        """
        defaults = cls()
        try:
            request_timeout = parse_duration(options.get("request_timeout", 2.0))
        except ValueError as exc:
            raise AnalysisError(f"invalid 'request_timeout': {exc}", "request_timeout") from exc

        headers = options.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise AnalysisError("invalid 'headers': expected a mapping of strings", "headers")

        return cls(
            requests=_integer(options, "requests", defaults.requests, 1, None),
            path=_text(options, "path", defaults.path),
            request_timeout=request_timeout,
            concurrency=_integer(
                options, "concurrency", defaults.concurrency, 1, MAX_CONCURRENCY
            ),
            version_header=_text(options, "version_header", defaults.version_header),
            headers=MappingProxyType(dict(headers)),
        )


def _integer(
    options: Mapping[str, Any], key: str, default: int, minimum: int, maximum: int | None
) -> int:
    value = options.get(key, default)
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if not valid or (maximum is not None and value > maximum):
        bounds = f"of {minimum} or more" if maximum is None else f"from {minimum} to {maximum}"
        raise AnalysisError(f"invalid {key!r}: expected an integer {bounds}, got {value!r}", key)
    return int(value)


def _text(options: Mapping[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or not value:
        raise AnalysisError(f"invalid {key!r}: expected a non-empty string, got {value!r}", key)
    return value


# -- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe request.

    ``version`` is the header value (``None`` without a response or header);
    ``latency_ms`` is ``None`` without a response; ``error`` describes a request that
    got no response.
    """

    version: str | None
    ok: bool
    latency_ms: float | None
    error: str = ""


class _Tickets:
    """Hands out a fixed number of request slots to worker threads."""

    def __init__(self, count: int) -> None:
        self._remaining = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            return True


class ProbeProvider:
    """Sends probe traffic for one analysis run; see the module docstring."""

    def __init__(self, options: ProbeOptions) -> None:
        self.options = options

    def measure(
        self, request: MeasurementRequest, cancel: threading.Event
    ) -> dict[str, float | None]:
        """Send one round of requests and return the metrics of both versions.

        Raises AnalysisError when the environment has no router endpoint,
        ConnectionError when no request got a response, and Interrupted when
        ``cancel`` is set before all requests were sent.
        """
        if request.endpoint is None:
            raise AnalysisError(
                f"analysis {request.analysis!r}: the environment has no router endpoint to "
                f"probe; the probe provider sends traffic through a router, so give the "
                f"environment a 'router:' or use a target that routes traffic"
            )

        url = request.endpoint.rstrip("/") + self.options.path
        results = self.send_all(url, cancel)
        if cancel.is_set():
            raise Interrupted("probe cancelled")

        if results and all(result.latency_ms is None for result in results):
            raise ConnectionError(
                f"none of {len(results)} requests to {url} got a response: {results[0].error}"
            )

        answered = [result for result in results if result.latency_ms is not None]
        if answered and all(result.version is None for result in answered):
            raise AnalysisError(
                f"analysis {request.analysis!r}: none of {len(answered)} responses from {url} "
                f"carried the {self.options.version_header} header, which tells the probe "
                f"which version answered; the local target's router adds it, other routers "
                f"need the service to send it"
            )

        values = summarize(results, request.canary_version, request.stable_version)
        logger.debug(
            "analysis %r: probe sent %d requests to %s: %d canary, %s stable, %d unattributed",
            request.analysis, len(results), url, values["requests"],
            values["stable_requests"], values["unattributed_requests"],
        )
        return values

    def send_all(self, url: str, cancel: threading.Event) -> list[ProbeResult]:
        """Send ``requests`` GET requests to ``url``, ``concurrency`` at a time.

        Stops sending when ``cancel`` is set and returns the results gathered so far.
        """
        from concurrent.futures import ThreadPoolExecutor  # Imported here to keep start-up fast.

        tickets = _Tickets(self.options.requests)
        workers = min(self.options.concurrency, self.options.requests)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
            futures = [pool.submit(self._work, url, tickets, cancel) for _ in range(workers)]
            return [result for future in futures for result in future.result()]

    def _work(self, url: str, tickets: _Tickets, cancel: threading.Event) -> list[ProbeResult]:
        # requests is imported here, so that loading the plugin stays cheap.
        import requests

        results = []
        with requests.Session() as session:
            session.trust_env = False
            while not cancel.is_set() and tickets.take():
                results.append(self._send(session, url))
        return results

    def _send(self, session: requests.Session, url: str) -> ProbeResult:
        import requests

        started = time.perf_counter()
        try:
            response = session.get(
                url,
                headers=dict(self.options.headers),
                timeout=self.options.request_timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return ProbeResult(None, False, None, f"{type(exc).__name__}: {exc}")

        latency_ms = (time.perf_counter() - started) * 1000.0
        version = response.headers.get(self.options.version_header)
        version = version.strip() if version else None
        return ProbeResult(version, response.status_code < 500, latency_ms)


def summarize(
    results: Sequence[ProbeResult], canary_version: str, stable_version: str | None
) -> dict[str, float | None]:
    """Return the probe metrics (see the module docstring) of ``results``.

    When both versions are the same string, its responses count for both.
    """
    versions = {canary_version} if stable_version is None else {canary_version, stable_version}
    canary = [r for r in results if r.version == canary_version]
    stable = [r for r in results if stable_version is not None and r.version == stable_version]

    values = _version_metrics(canary)
    for name, value in _version_metrics(stable).items():
        values[f"stable_{name}"] = value
    unattributed = sum(1 for result in results if result.version not in versions)
    values["unattributed_requests"] = float(unattributed)
    return values


def _version_metrics(results: Sequence[ProbeResult]) -> dict[str, float | None]:
    values: dict[str, float | None] = {name: None for name in VERSION_METRICS}
    values["requests"] = float(len(results))
    if not results:
        return values

    successes = sum(1 for result in results if result.ok)
    values["success_rate"] = successes / len(results)
    values["error_rate"] = 1.0 - successes / len(results)

    latencies = sorted(r.latency_ms for r in results if r.latency_ms is not None)
    if latencies:
        for name, rank in _PERCENTILES.items():
            values[name] = percentile(latencies, rank)
    return values


def percentile(sorted_values: Sequence[float], rank: float) -> float:
    """Return the ``rank`` percentile (0 to 100) of ascending, non-empty ``sorted_values``.

    Interpolates linearly between the two closest ranks, like numpy's default method
    and ``statistics.quantiles(method="inclusive")``.
    """
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= rank <= 100.0:
        raise ValueError(f"percentile rank must be from 0 to 100, got {rank}")

    position = rank / 100.0 * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            kind="analysis",
            type=PROVIDER,
            schema={"properties": {**COMMON_ANALYSIS_PROPERTIES, **PROBE_PROPERTIES}},
            description="Send HTTP requests through the router and measure success rate "
            "and latency of the canary and stable versions.",
        )
    ]


@hookimpl
def shipline_make_provider(
    name: str, options: Mapping[str, Any], context: RunContext
) -> ProbeProvider | None:
    if name != PROVIDER:
        return None
    return ProbeProvider(ProbeOptions.from_options(options))


@hookimpl
def shipline_check_plan(plan: Plan, config: Config) -> list[Diagnostic]:
    """Report conditions of probe analyses that use a metric the probe does not measure.

    Each template is checked where it is defined and each inline analysis where it is
    written. Conditions that do not parse are left to :mod:`pipeline.analysis`.
    """
    from pipeline.analysisuses import uses_analyses

    if not uses_analyses(plan):
        return []
    from pipeline.analysischecks import provider_uses
    from pipeline.analysissettings import AnalysisSettings

    diagnostics = []
    for name, options, path in provider_uses(plan, PROVIDER):
        try:
            settings = AnalysisSettings.from_options(name, options)
        except AnalysisError:
            continue
        for key, conditions in (("success", settings.success), ("failure", settings.failure)):
            for condition in conditions:
                try:
                    condition.check_names(METRIC_NAMES)
                except ValueError as exc:
                    diagnostics.append(Diagnostic(str(exc), None, (*path, key)))
    return diagnostics
