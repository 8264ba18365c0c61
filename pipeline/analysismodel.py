"""The types that every part of an analysis uses: verdicts, option defaults, the error that
ends an analysis, measurements, results and the :class:`MetricProvider` interface.

:mod:`pipeline.analysis` describes how an analysis runs and re-exports these names.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from pipeline.errors import ShiplineError

__all__ = [
    "DEFAULT_CONSECUTIVE_ERROR_LIMIT",
    "DEFAULT_COUNT",
    "DEFAULT_FAILURE_LIMIT",
    "DEFAULT_INCONCLUSIVE_LIMIT",
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_INTERVAL",
    "DEFAULT_TIMEOUT",
    "ERROR",
    "ERROR_RETRY_INTERVAL",
    "FAILED",
    "INCONCLUSIVE",
    "SUCCESSFUL",
    "AnalysisError",
    "AnalysisResult",
    "Measurement",
    "MeasurementRequest",
    "MetricProvider",
    "ProviderError",
]

SUCCESSFUL = "successful"
FAILED = "failed"
INCONCLUSIVE = "inconclusive"
ERROR = "error"

DEFAULT_INTERVAL = 60.0
DEFAULT_COUNT = 1
DEFAULT_INITIAL_DELAY = 0.0
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 0
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_TIMEOUT = 60.0
#: Seconds before retrying after an error when the analysis sets no ``interval``.
ERROR_RETRY_INTERVAL = 10.0


class AnalysisError(ShiplineError):
    """A problem with an analysis that no retry can fix; ends the analysis with ``error``.

    Providers raise it (from creation or from ``measure``) for options or an
    environment that cannot work, for example a probe without a router endpoint.
    ``key`` names the offending option, when there is one.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ProviderError(RuntimeError):
    """A measurement that failed, with a message written for users.

    The measurement counts as an ``error`` and is retried like any other. Its message is
    shown as it is, while other exceptions are shown with their class name.
    """


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One measurement: when it started (Unix seconds), the values and their verdict."""

    time: float
    #: Metric name to a JSON value; ``None`` means the metric had no data.
    values: Mapping[str, Any]
    verdict: str
    message: str
    #: True when missing data left the conditions undecided (``on_no_data`` applied).
    no_data: bool = False
    #: False for a measurement that ``on_no_data: {retry: N}`` took again.
    counted: bool = True


@dataclass
class AnalysisResult:
    """The outcome of one analysis run and every measurement it took."""

    name: str
    #: One of ``successful``, ``failed``, ``inconclusive`` or ``error``.
    verdict: str
    message: str
    measurements: list[Measurement] = field(default_factory=list)
    #: The policy action taken after the verdict: ``continue`` after success, ``abort``,
    #: ``pass``, ``retry`` or ``pause``; empty until a policy applied.
    action: str = ""
    #: What the policy did, for reports: ``on_failure is retry: 2: running again (1 of 2)``.
    action_message: str = ""
    #: True for an inconclusive judgment in which no metric had data, so that
    #: ``on_no_data`` decides what happens next instead of ``on_inconclusive``.
    no_data: bool = False

    @property
    def ok(self) -> bool:
        return self.verdict == SUCCESSFUL

    def details(self) -> str:
        """Format one line per measurement (UTC time, verdict, message) for reports."""
        lines = []
        for number, measurement in enumerate(self.measurements, start=1):
            stamp = datetime.fromtimestamp(measurement.time, timezone.utc)
            lines.append(
                f"{number}. {stamp:%Y-%m-%dT%H:%M:%SZ} {measurement.verdict}: "
                f"{measurement.message}"
            )
        if self.action_message:
            lines.append(f"policy: {self.action_message}")
        return "\n".join(lines)

    def to_data(self) -> dict[str, Any]:
        """Return the result as JSON-compatible data, for a step report's ``data``."""
        return {
            "name": self.name,
            "verdict": self.verdict,
            "message": self.message,
            "action": self.action,
            "action_message": self.action_message,
            "measurements": [
                {
                    "time": m.time,
                    "values": dict(m.values),
                    "verdict": m.verdict,
                    "message": m.message,
                    "no_data": m.no_data,
                    "counted": m.counted,
                }
                for m in self.measurements
            ],
        }


# -- providers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasurementRequest:
    """The input of one measurement: which analysis, versions and endpoint."""

    #: Name of the analysis template, or a label for an inline analysis.
    analysis: str
    canary_version: str
    #: ``None`` when nothing was deployed before (a first deploy).
    stable_version: str | None
    #: URL that clients use, from the environment's router; ``None`` when unknown.
    endpoint: str | None
    #: Measurement number, from 1, counting measurements that had errors too.
    number: int = 1
    #: Seconds this measurement may take before it is cancelled.
    timeout: float = DEFAULT_TIMEOUT
    #: Argument values of the analysis use, the built-in ones included.
    args: Mapping[str, str] = field(default_factory=dict)


class MetricProvider(Protocol):
    """Takes measurements for one analysis run; created by ``shipline_make_provider``.

    A provider may also define ``close()``, which is called once when the analysis ends.
    """

    def measure(
        self, request: MeasurementRequest, cancel: threading.Event
    ) -> Mapping[str, Any]:
        """Measure and return metric values by name; ``None`` for a metric without data.

        A value is a number, a list or a map of JSON values. A provider with one value
        names it ``result``; NaN anywhere counts as no data.

        Runs in a worker thread. ``cancel`` is set when the run is interrupted or the
        measurement's timeout passes: stop soon after, by returning or raising. Raise
        :class:`AnalysisError` for a problem that a retry cannot fix; any other
        exception makes this one measurement an ``error``.
        """
        ...

