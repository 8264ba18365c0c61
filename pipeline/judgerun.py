"""Run a ``judge: compare`` analysis: wait for the window, fetch each metric's series for
the baseline and the canary through the provider, and judge them (:mod:`pipeline.judge`).

The provider is created with ``shipline_make_provider`` like any other and must also
have the method of :class:`SeriesProvider`. In each metric's ``query`` the text
``{version}`` becomes the group's version and ``{group}`` becomes ``baseline`` or
``canary``. Only these two exact tokens are replaced, so braces of a query language
(PromQL label matchers, for example) stay as written.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.analysismodel import (
    ERROR,
    AnalysisError,
    AnalysisResult,
    Measurement,
    ProviderError,
)
from pipeline.context import Interrupted
from pipeline.durations import format_duration
from pipeline.judge import NO_DATA, JudgeSettings, compare_metric, score_comparisons

if TYPE_CHECKING:
    from pipeline.context import RunContext
    from pipeline.judge import Comparison, MetricSpec

__all__ = [
    "BASELINE",
    "CANARY",
    "SeriesProvider",
    "SeriesRequest",
    "estimate_comparison",
    "format_query",
    "run_comparison",
]

logger = logging.getLogger("shipline")

BASELINE = "baseline"
CANARY = "canary"


@dataclass(frozen=True)
class SeriesRequest:
    """One series to fetch: a metric of one group over a window of Unix seconds."""

    analysis: str
    metric: str
    #: The metric's query with ``{version}`` and ``{group}`` already replaced.
    query: str
    #: ``baseline`` or ``canary``.
    group: str
    version: str
    start: float
    end: float
    #: Seconds the fetch may take.
    timeout: float


@runtime_checkable
class SeriesProvider(Protocol):
    """A metric provider that can also return a series of values for a window."""

    def fetch_series(
        self, request: SeriesRequest, cancel: threading.Event
    ) -> Sequence[float | None]:
        """Return the values of ``request.query`` between ``start`` and ``end``.

        ``None`` or NaN is a point without data. Raise AnalysisError for a problem that
        a retry cannot fix; other exceptions end the judgment with ``error`` too.
        """
        ...


def format_query(query: str, group: str, version: str) -> str:
    """Replace ``{version}`` and ``{group}`` in ``query``; other braces stay."""
    return query.replace("{version}", version).replace("{group}", group)


def estimate_comparison(options: Mapping[str, Any]) -> float:
    """Return the longest a judgment can take in seconds: the window, then one fetch
    per metric and group, each up to its timeout."""
    settings = JudgeSettings.from_options("judge", options)
    return settings.window + 2 * len(settings.metrics) * settings.timeout


def run_comparison(
    name: str,
    options: Mapping[str, Any],
    context: RunContext,
    *,
    stable_version: str | None,
    canary_version: str,
) -> AnalysisResult:
    """Judge the canary against the baseline with the analysis ``name``.

    Waits ``window`` through ``context.sleep`` first, so that the series cover only
    time when the canary ran. Returns a result with one measurement per metric; a
    configuration problem or a failed fetch gives the verdict ``error``. Raises
    Interrupted when the run is cancelled.
    """
    try:
        settings = JudgeSettings.from_options(name, options)
        if stable_version is None:
            raise AnalysisError(
                f"analysis {name!r} compares with a baseline, but nothing was deployed "
                f"before this version: use a condition-based analysis for a first deploy"
            )
        provider = _make_series_provider(settings, options, context)
    except AnalysisError as exc:
        logger.warning("analysis %r cannot run: %s", name, exc)
        return AnalysisResult(name, ERROR, str(exc))

    logger.info("analysis %r: judging %d metric(s) of %s against %s", name,
                len(settings.metrics), canary_version, stable_version)
    context.progress(f"analysis '{name}': collecting {format_duration(settings.window)} of "
                     f"series")
    if not context.sleep(settings.window):
        raise Interrupted("interrupted")

    end = context.clock.time()
    versions = {BASELINE: stable_version, CANARY: canary_version}
    try:
        comparisons = [
            _compare(settings, spec, provider, versions, end=end, context=context)
            for spec in settings.metrics
        ]
    except (AnalysisError, _FetchFailed) as exc:
        logger.warning("analysis %r: %s", name, exc)
        return AnalysisResult(name, ERROR, str(exc))
    finally:
        _close(provider, name)

    return _result(settings, comparisons, end)


class _FetchFailed(Exception):
    """A provider raised something other than AnalysisError while fetching."""


def _make_series_provider(
    settings: JudgeSettings, options: Mapping[str, Any], context: RunContext
) -> SeriesProvider:
    provider = context.hook.shipline_make_provider(
        name=settings.provider, options=options, context=context
    )
    if provider is None:
        raise AnalysisError(
            f"analysis {settings.name!r}: no plugin provides analysis provider "
            f"{settings.provider!r}"
        )
    if not isinstance(provider, SeriesProvider):
        raise AnalysisError(
            f"analysis {settings.name!r}: provider {settings.provider!r} cannot return "
            f"series, which 'judge: compare' needs; use a provider with series support "
            f"such as 'command' or 'recorded'"
        )
    return provider


def _compare(
    settings: JudgeSettings,
    spec: MetricSpec,
    provider: SeriesProvider,
    versions: Mapping[str, str],
    *,
    end: float,
    context: RunContext,
) -> Comparison:
    series = {}
    for group, version in versions.items():
        context.check_cancelled()
        request = SeriesRequest(
            analysis=settings.name, metric=spec.name,
            query=format_query(spec.query, group, version), group=group, version=version,
            start=end - settings.window, end=end, timeout=settings.timeout,
        )
        series[group] = _fetch(provider, request, context)
    return compare_metric(spec, series[BASELINE], series[CANARY], settings.confidence)


def _fetch(
    provider: SeriesProvider, request: SeriesRequest, context: RunContext
) -> list[float | None]:
    """Fetch one series and check that it is a list of numbers or ``None``."""
    label = f"metric {request.metric!r} of the {request.group} ({request.version})"
    try:
        raw = provider.fetch_series(request, context.cancel)
    except (AnalysisError, Interrupted):
        raise
    except Exception as exc:
        shown = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
        raise _FetchFailed(f"fetching {label} failed: {shown}") from exc

    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise _FetchFailed(f"fetching {label} returned {type(raw).__name__}, expected a list")
    points: list[float | None] = []
    for value in raw:
        if value is None:
            points.append(None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            points.append(None if math.isnan(value) else float(value))
        else:
            raise _FetchFailed(
                f"fetching {label} returned {value!r}, expected numbers or null"
            )
    return points


def _close(provider: object, name: str) -> None:
    close = getattr(provider, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        logger.exception("analysis %r: closing its provider failed", name)


def _result(
    settings: JudgeSettings, comparisons: Sequence[Comparison], end: float
) -> AnalysisResult:
    judgment = score_comparisons(comparisons, settings.pass_score, settings.marginal_score)
    measurements = [
        Measurement(end, comparison.values(), comparison.verdict, comparison.describe())
        for comparison in comparisons
    ]
    no_data = judgment.score is None and all(c.classification == NO_DATA for c in comparisons)
    logger.info("analysis %r %s: %s", settings.name, judgment.verdict, judgment.message)
    return AnalysisResult(settings.name, judgment.verdict, judgment.message, measurements,
                          no_data=no_data)
