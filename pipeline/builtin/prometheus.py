"""The ``prometheus`` analysis provider: one PromQL instant query per measurement.

Each measurement sends ``GET {address}/api/v1/query?query=...`` (the Prometheus HTTP API,
evaluated at the server's current time) and returns the value as ``result``. Options,
besides the common analysis options of :mod:`pipeline.analysis` and the HTTP options of
:mod:`pipeline.providerhttp`:

``address`` (required)
    Base URL of the Prometheus server, for example ``http://prometheus:9090``.
``query`` (required)
    The PromQL expression. Template arguments (``{{ args.NAME }}``) are filled in.
``series`` (``one`` or ``all``, default ``one``)
    With ``one``, the query must return one series or a scalar, and ``result`` is its
    number. A vector with more series is a measurement error that names them, because
    a condition on "the" value would otherwise judge an arbitrary one. With ``all``,
    ``result`` is a map from each series, written as in PromQL
    (``http_requests_total{code="500"}``), to its number.

An empty vector and the value NaN (what ``0/0`` gives, for example a rate of errors over
a rate of requests with no requests) are *no data*: ``result`` is ``null`` and the
analysis's ``on_no_data`` policy applies. A range vector (``x[5m]`` without a function
around it) or a string is a configuration error, as are an invalid query (status 400)
and rejected authentication (401, 403).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline import hookimpl
from pipeline.analysis import (
    COMMON_ANALYSIS_PROPERTIES,
    AnalysisError,
    MeasurementRequest,
    ProviderError,
)
from pipeline.providerhttp import HTTP_PROVIDER_PROPERTIES, HttpOptions, get_json
from pipeline.schema import StepSchema

if TYPE_CHECKING:
    from pipeline.context import RunContext

PROVIDER = "prometheus"
SERIES_MODES = ("one", "all")

#: Series listed by name in the error for a vector with too many series.
MAX_LISTED_SERIES = 5

PROMETHEUS_PROPERTIES: dict[str, Any] = {
    "address": {
        "type": "string", "minLength": 1, "title": "Address",
        "description": "Base URL of the Prometheus server, for example "
        "`http://prometheus:9090`.",
    },
    "query": {
        "type": "string", "minLength": 1, "title": "Query",
        "description": "PromQL expression evaluated as an instant query at each "
        "measurement; `{{ args.NAME }}` is filled in.",
        "examples": ['sum(rate(http_requests_total{code=~"5.."}[1m])) / '
                     'sum(rate(http_requests_total[1m]))'],
    },
    "series": {
        "enum": list(SERIES_MODES), "title": "Series",
        "description": "one (default): the query must return one series or a scalar, "
        "and result is its number; all: result maps each series to its number.",
    },
}


class PrometheusQueryError(ProviderError):
    """A query result that this measurement cannot use; the measurement is an error."""


@dataclass(frozen=True)
class PrometheusProvider:
    """Runs the analysis's query at each measurement; see the module docstring."""

    address: str
    query: str
    series: str
    http: HttpOptions

    def measure(self, request: MeasurementRequest, cancel: threading.Event) -> dict[str, Any]:
        """Run the query once and return ``{"result": value}``.

        Raises AnalysisError for a problem a retry cannot fix (invalid query, refused
        authentication, range vector), PrometheusQueryError for an unusable response,
        and ProviderHttpError when the server did not respond.
        """
        url = f"{self.address.rstrip('/')}/api/v1/query"
        status, body = get_json(url, {"query": self.query}, self.http, cancel)
        data = _check_answer(status, body, self.address)
        return {"result": self._value(data)}

    def _value(self, data: Mapping[str, Any]) -> Any:
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return _number(result)
        if kind == "vector" and isinstance(result, list):
            return self._vector(result)
        if kind == "matrix":
            raise AnalysisError(
                f"query {self.query!r} returns a range vector; an instant query needs one "
                f"value per series: wrap the range in a function such as rate() or "
                f"avg_over_time()", "query")
        raise AnalysisError(f"query {self.query!r} returns a {kind}, expected a number",
                            "query")

    def _vector(self, samples: list[Any]) -> Any:
        if not samples:
            return None
        values = {series_name(s.get("metric", {})): _number(s.get("value")) for s in samples}
        if self.series == "all":
            return values
        if len(values) > 1:
            names = sorted(values)
            listed = ", ".join(names[:MAX_LISTED_SERIES])
            more = (f" and {len(names) - MAX_LISTED_SERIES} more"
                    if len(names) > MAX_LISTED_SERIES else "")
            raise PrometheusQueryError(
                f"query returned {len(names)} series where one value was expected: "
                f"{listed}{more}; aggregate them (for example with sum()) or set "
                f"series: all"
            )
        return next(iter(values.values()))


def _check_answer(status: int, body: Any, address: str) -> Mapping[str, Any]:
    """Return the ``data`` of a successful response, or raise for the status and error."""
    reason = ""
    if isinstance(body, Mapping) and body.get("status") == "error":
        reason = f": {body.get('errorType', 'error')}: {body.get('error', '')}"
    if status == 400:
        raise AnalysisError(f"Prometheus rejected the query{reason}", "query")
    if status in (401, 403):
        raise AnalysisError(
            f"Prometheus at {address} rejected the request with status {status}: check "
            f"'bearer_token' or 'basic_auth'", "bearer_token")
    if status != 200 or not isinstance(body, Mapping) or body.get("status") != "success":
        raise PrometheusQueryError(f"Prometheus returned status {status}{reason}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise PrometheusQueryError("Prometheus returned a response without 'data'")
    return data


def _number(sample: Any) -> float | None:
    """Return the number of a ``[time, "value"]`` pair; NaN is no data."""
    if not isinstance(sample, list) or len(sample) != 2:
        raise PrometheusQueryError(f"unexpected sample {sample!r}, expected [time, value]")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise PrometheusQueryError(f"unexpected sample value {sample[1]!r}") from None
    return None if math.isnan(value) else value


def series_name(labels: Mapping[str, Any]) -> str:
    """Write a series as PromQL does: ``name{label="value",...}``, labels sorted."""
    name = str(labels.get("__name__", ""))
    pairs = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items())
                     if key != "__name__")
    return f"{name}{{{pairs}}}" if pairs or not name else name


# -- hooks -------------------------------------------------------------------------------


@hookimpl
def shipline_step_schemas() -> list[StepSchema]:
    return [
        StepSchema(
            kind="analysis",
            type=PROVIDER,
            schema={
                "required": ["address", "query"],
                "properties": {**COMMON_ANALYSIS_PROPERTIES, **HTTP_PROVIDER_PROPERTIES,
                               **PROMETHEUS_PROPERTIES},
            },
            description="Run a PromQL instant query per measurement; result is its value.",
        )
    ]


@hookimpl
def shipline_make_provider(
    name: str, options: Mapping[str, Any], context: RunContext
) -> PrometheusProvider | None:
    if name != PROVIDER:
        return None
    address = options.get("address")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise AnalysisError(f"invalid 'address': expected an http or https URL, got "
                            f"{address!r}", "address")
    query = options.get("query")
    if not isinstance(query, str) or not query.strip():
        raise AnalysisError("missing 'query': give the PromQL expression to measure", "query")
    series = options.get("series", "one")
    if series not in SERIES_MODES:
        raise AnalysisError(f"invalid 'series': expected one or all, got {series!r}",
                            "series")
    http = HttpOptions.from_options(options, context.plan.file.parent)
    return PrometheusProvider(address, query, str(series), http)
