"""The statistical judge of a ``judge: compare`` analysis: compare each metric's series
of the canary with the baseline's, classify it, and score the canary.

Per metric, points without data (``None`` or NaN) are dropped first. With fewer than
``min_points`` points left in either group the metric is ``NoData``. Otherwise a
two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``) tests whether one group's
values tend to be larger than the other's. scipy's default method (1.17) computes the
exact p-value when a group has at most 8 points and no value is tied, and uses the
normal approximation with tie and continuity correction otherwise. The metric is:

- p-value at or above ``1 - confidence``: ``Pass`` (no difference shown);
- a difference shown, but the means differ by at most ``tolerance`` (relative to the
  baseline mean): ``Pass``, because the shift is too small to matter. The mean, not the
  median, measures the shift so that a metric whose median stays 0, such as an error
  count, still shows a shift when its nonzero values become more frequent;
- otherwise ``High`` or ``Low``: the canary's values tend to be larger or smaller,
  read from the U statistic (canary U above ``n1 * n2 / 2`` is ``High``).

A metric's ``direction`` decides which of ``High`` and ``Low`` is a failure (``increase``
for latencies and errors, ``decrease`` for throughput, ``either``). ``NoData`` fails
only a metric with ``must_have_data``, and otherwise leaves the metric out of the score.
The score is the weighted share of passing metrics, in percent. The judgment is:

- ``failed`` when a ``critical`` metric fails, or the score is below ``marginal``;
- ``inconclusive`` (marginal) when the score is below ``pass``, or when no metric
  counts in the score (every metric ``NoData`` and none must have data);
- ``successful`` otherwise.

The U test compares location (whether one group tends to be larger), not spread: a
canary whose variance grew while its median stayed put usually passes. Judge the tail
with its own metric (a p99 latency series, for example) when spread matters.

scipy is imported on the first comparison only, so that commands that never judge
start fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.analysismodel import FAILED, INCONCLUSIVE, SUCCESSFUL, AnalysisError
from pipeline.durations import parse_duration

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_MARGINAL",
    "DEFAULT_MIN_POINTS",
    "DEFAULT_PASS",
    "DEFAULT_TOLERANCE",
    "DEFAULT_WINDOW",
    "DIRECTIONS",
    "HIGH",
    "LOW",
    "NO_DATA",
    "PASSED",
    "Comparison",
    "JudgeSettings",
    "Judgment",
    "MetricSpec",
    "compare_metric",
    "is_comparison",
    "judge_problems",
    "score_comparisons",
]

PASSED = "Pass"
HIGH = "High"
LOW = "Low"
NO_DATA = "NoData"

DEFAULT_CONFIDENCE = 0.98
#: Relative mean shift (0.1 is 10 %) up to which a significant difference passes.
DEFAULT_TOLERANCE = 0.1
DEFAULT_MIN_POINTS = 10
DEFAULT_PASS = 95.0
DEFAULT_MARGINAL = 75.0
#: Seconds of series that each group is judged on.
DEFAULT_WINDOW = 600.0

#: ``direction`` values, and the classes each one counts as a failure.
DIRECTIONS: Mapping[str, frozenset[str]] = {
    "increase": frozenset({HIGH}),
    "decrease": frozenset({LOW}),
    "either": frozenset({HIGH, LOW}),
}


def is_comparison(options: Mapping[str, Any]) -> bool:
    """Tell whether the analysis ``options`` ask for the statistical judge."""
    return options.get("judge") == "compare"


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a judgment: its query and how its comparison counts."""

    name: str
    #: Query passed to the provider; ``{version}`` and ``{group}`` are replaced per group.
    query: str
    weight: float = 1.0
    critical: bool = False
    direction: str = "either"
    tolerance: float = DEFAULT_TOLERANCE
    must_have_data: bool = False
    min_points: int = DEFAULT_MIN_POINTS


@dataclass(frozen=True)
class JudgeSettings:
    """The options of a ``judge: compare`` analysis, parsed; durations in seconds."""

    name: str
    provider: str
    metrics: tuple[MetricSpec, ...]
    window: float = DEFAULT_WINDOW
    confidence: float = DEFAULT_CONFIDENCE
    pass_score: float = DEFAULT_PASS
    marginal_score: float = DEFAULT_MARGINAL
    timeout: float = 60.0

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> JudgeSettings:
        """Parse ``options``; analysis-wide ``tolerance``, ``min_points`` and
        ``must_have_data`` are the defaults of every metric.

        Raises AnalysisError, with ``key`` set, for a missing provider or metric list,
        a value of the wrong type or range, duplicate metric names, or a ``marginal``
        score above ``pass``.
        """
        provider = options.get("provider")
        if not isinstance(provider, str) or not provider:
            raise AnalysisError(f"analysis {name!r} has no 'provider'", "provider")

        confidence = _number(options, "confidence", DEFAULT_CONFIDENCE, low=0.5, high=1.0)
        if confidence >= 1.0:
            raise AnalysisError(
                f"invalid 'confidence': expected a number below 1, got {confidence!r}",
                "confidence",
            )
        pass_score, marginal_score = _score_limits(options.get("score") or {})
        defaults = MetricSpec(
            name="",
            query="",
            tolerance=_number(options, "tolerance", DEFAULT_TOLERANCE, low=0.0),
            must_have_data=_flag(options, "must_have_data", False),
            min_points=_integer(options, "min_points", DEFAULT_MIN_POINTS, minimum=1),
        )
        return cls(
            name=name,
            provider=provider,
            metrics=_metrics(options.get("metrics"), defaults),
            window=_duration(options, "window", DEFAULT_WINDOW),
            confidence=confidence,
            pass_score=pass_score,
            marginal_score=marginal_score,
            timeout=_duration(options, "timeout", 60.0),
        )


#: A problem's path, relative to the analysis's options, and its message.
JudgeProblem = tuple[tuple[str | int, ...], str]


def judge_problems(name: str, options: Mapping[str, Any]) -> list[JudgeProblem]:
    """Check every option of the judge analysis ``name`` and return each problem.

    :meth:`JudgeSettings.from_options` stops at the first problem; this is for
    ``shipline validate``, which reports them all. A problem of one metric is at the
    path of that metric, ``("metrics", N)``, and a repeated name at its ``name``.
    """
    problems = _each_common_problem(name, options)

    metrics = options.get("metrics")
    if not isinstance(metrics, Sequence) or isinstance(metrics, str) or not metrics:
        try:
            _metrics(metrics, MetricSpec("", ""))
        except AnalysisError as exc:
            problems.append((("metrics",), str(exc)))
        return problems

    seen: set[str] = set()
    for index, item in enumerate(metrics):
        try:
            _metric(item, index, MetricSpec("", ""))
        except AnalysisError as exc:
            problems.append((("metrics", index), str(exc)))
            continue
        if item["name"] in seen:
            problems.append((("metrics", index, "name"),
                             f"invalid 'metrics': metric {item['name']!r} appears twice; "
                             f"give each metric its own name"))
        seen.add(item["name"])
    return problems


def _each_common_problem(name: str, options: Mapping[str, Any]) -> list[JudgeProblem]:
    """Check each analysis-wide option of a judge on its own, with the others left out."""
    problems: list[JudgeProblem] = []
    base = {"provider": "p", "metrics": [{"name": "m", "query": "q"}]}
    for key in ("provider", "confidence", "score", "tolerance", "must_have_data",
                "min_points", "window", "timeout"):
        if key not in options and key != "provider":
            continue
        trial = {**base, key: options.get(key)}
        try:
            JudgeSettings.from_options(name, trial)
        except AnalysisError as exc:
            problems.append(((exc.key,) if exc.key else (), str(exc)))
    return problems


def _metrics(value: Any, defaults: MetricSpec) -> tuple[MetricSpec, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise AnalysisError(
            "invalid 'metrics': expected a non-empty list of metrics, each with a "
            "'name' and a 'query'",
            "metrics",
        )

    specs: list[MetricSpec] = []
    for index, item in enumerate(value):
        spec = _metric(item, index, defaults)
        if any(spec.name == earlier.name for earlier in specs):
            raise AnalysisError(
                f"invalid 'metrics': metric {spec.name!r} appears twice; give each "
                f"metric its own name",
                "metrics",
            )
        specs.append(spec)
    return tuple(specs)


def _metric(item: Any, index: int, defaults: MetricSpec) -> MetricSpec:
    where = f"metrics[{index}]"
    if not isinstance(item, Mapping):
        raise AnalysisError(f"invalid '{where}': expected a mapping, got {item!r}", "metrics")

    name = item.get("name")
    query = item.get("query")
    if not isinstance(name, str) or not name or not isinstance(query, str) or not query:
        raise AnalysisError(
            f"invalid '{where}': 'name' and 'query' are required strings", "metrics"
        )
    direction = item.get("direction", "either")
    if direction not in DIRECTIONS:
        raise AnalysisError(
            f"invalid '{where}.direction': expected one of increase, decrease, either, "
            f"got {direction!r}",
            "metrics",
        )

    try:
        weight = _number(item, "weight", 1.0, low=0.0)
        tolerance = _number(item, "tolerance", defaults.tolerance, low=0.0)
        min_points = _integer(item, "min_points", defaults.min_points, minimum=1)
        critical = _flag(item, "critical", False)
        must_have_data = _flag(item, "must_have_data", defaults.must_have_data)
    except AnalysisError as exc:
        raise AnalysisError(f"{where}: {exc}", "metrics") from exc
    return MetricSpec(name, query, weight, critical, direction, tolerance, must_have_data,
                      min_points)


def _score_limits(value: Any) -> tuple[float, float]:
    if not isinstance(value, Mapping):
        raise AnalysisError(
            f"invalid 'score': expected a mapping with 'pass' and 'marginal', got "
            f"{value!r}",
            "score",
        )
    try:
        pass_score = _number(value, "pass", DEFAULT_PASS, low=0.0, high=100.0)
        marginal = _number(value, "marginal", DEFAULT_MARGINAL, low=0.0, high=100.0)
    except AnalysisError as exc:
        raise AnalysisError(f"score: {exc}", "score") from exc
    if marginal > pass_score:
        raise AnalysisError(
            f"invalid 'score': 'marginal' ({marginal:g}) is above 'pass' "
            f"({pass_score:g}); set marginal at or below pass",
            "score",
        )
    return pass_score, marginal


def _number(
    options: Mapping[str, Any], key: str, default: float, *, low: float,
    high: float = math.inf,
) -> float:
    value = options.get(key, default)
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not low <= value <= high:
        limits = f"from {low:g} to {high:g}" if math.isfinite(high) else f"of {low:g} or more"
        raise AnalysisError(f"invalid '{key}': expected a number {limits}, got {value!r}", key)
    return float(value)


def _integer(options: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AnalysisError(
            f"invalid '{key}': expected an integer of {minimum} or more, got {value!r}", key
        )
    return value


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise AnalysisError(f"invalid '{key}': expected true or false, got {value!r}", key)
    return value


def _duration(options: Mapping[str, Any], key: str, default: float) -> float:
    if key not in options:
        return default
    try:
        return parse_duration(options[key])
    except ValueError as exc:
        raise AnalysisError(f"invalid '{key}': {exc}", key) from exc


# -- comparing one metric ----------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The comparison of one metric: class, test results and whether it passed."""

    metric: MetricSpec
    #: ``Pass``, ``High``, ``Low`` or ``NoData``.
    classification: str
    passed: bool
    baseline_points: int
    canary_points: int
    #: Mann-Whitney U of the canary group; ``None`` for ``NoData``.
    statistic: float | None = None
    p_value: float | None = None
    baseline_median: float | None = None
    canary_median: float | None = None
    baseline_mean: float | None = None
    canary_mean: float | None = None
    #: Relative mean shift, ``(canary - baseline) / |baseline|``; ``None`` when the
    #: baseline mean is 0 or there is no data.
    effect: float | None = None

    @property
    def counted(self) -> bool:
        """Whether the metric counts in the score: all but ``NoData`` without
        ``must_have_data``."""
        return self.classification != NO_DATA or self.metric.must_have_data

    @property
    def verdict(self) -> str:
        """The metric's result in analysis terms, for the measurement list."""
        if not self.counted:
            return INCONCLUSIVE
        return SUCCESSFUL if self.passed else FAILED

    def values(self) -> dict[str, float | None]:
        """Return the numbers of the comparison by name, for reports and JSON output."""
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "baseline_points": float(self.baseline_points),
            "canary_points": float(self.canary_points),
            "baseline_median": self.baseline_median,
            "canary_median": self.canary_median,
            "baseline_mean": self.baseline_mean,
            "canary_mean": self.canary_mean,
            "effect": self.effect,
        }

    def describe(self) -> str:
        """Format one line with the class and every number behind it."""
        spec = self.metric
        sizes = f"baseline n={self.baseline_points}, canary n={self.canary_points}"
        if self.classification == NO_DATA:
            text = f"{spec.name}: NoData ({sizes}, at least {spec.min_points} needed)"
        else:
            text = (
                f"{spec.name}: {self.classification} (U={self.statistic:g}, "
                f"p={self.p_value:.4g}, {sizes}, mean {self.baseline_mean:g} -> "
                f"{self.canary_mean:g}{_effect_text(self.effect)})"
            )
        if self.passed:
            return text
        return f"{text}, fails{' (critical)' if spec.critical else ''}"


def _effect_text(effect: float | None) -> str:
    return "" if effect is None else f", {effect:+.1%}"


def compare_metric(
    spec: MetricSpec,
    baseline: Sequence[float | None],
    canary: Sequence[float | None],
    confidence: float,
) -> Comparison:
    """Classify the canary's series of ``spec`` against the baseline's.

    Drops points without data, then applies the rules in this module's docstring.
    """
    base = _clean(baseline)
    new = _clean(canary)
    if len(base) < spec.min_points or len(new) < spec.min_points:
        return Comparison(spec, NO_DATA, not spec.must_have_data, len(base), len(new))

    import statistics

    from scipy.stats import mannwhitneyu

    test = mannwhitneyu(new, base, alternative="two-sided")
    statistic = float(test.statistic)
    p_value = float(test.pvalue)
    base_mean = statistics.fmean(base)
    new_mean = statistics.fmean(new)
    effect = None if base_mean == 0 else (new_mean - base_mean) / abs(base_mean)

    classification = PASSED
    if p_value < 1.0 - confidence and not _within(effect, new_mean, base_mean, spec):
        classification = HIGH if statistic > len(base) * len(new) / 2 else LOW
    passed = classification not in DIRECTIONS[spec.direction]
    return Comparison(
        spec, classification, passed, len(base), len(new), statistic, p_value,
        baseline_median=statistics.median(base), canary_median=statistics.median(new),
        baseline_mean=base_mean, canary_mean=new_mean, effect=effect,
    )


def _within(effect: float | None, new: float, base: float, spec: MetricSpec) -> bool:
    """Tell whether the mean shift is within the metric's tolerance.

    With a baseline mean of 0 no relative shift exists, so only equal means are
    within it.
    """
    if effect is None:
        return new == base
    return abs(effect) <= spec.tolerance


def _clean(series: Sequence[float | None]) -> list[float]:
    return [float(value) for value in series if value is not None and not math.isnan(value)]


# -- scoring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgment:
    """The verdict over every metric: ``successful``, ``inconclusive`` or ``failed``."""

    verdict: str
    message: str
    #: Weighted share of passing metrics in percent; ``None`` when no metric counted.
    score: float | None
    comparisons: tuple[Comparison, ...]


def score_comparisons(
    comparisons: Sequence[Comparison], pass_score: float, marginal_score: float
) -> Judgment:
    """Score ``comparisons`` and decide the verdict by the rules of this module."""
    counted = [c for c in comparisons if c.counted]
    total = sum(c.metric.weight for c in counted)
    passing = sum(c.metric.weight for c in counted if c.passed)
    critical = [c.metric.name for c in counted if c.metric.critical and not c.passed]
    score = 100.0 * passing / total if total > 0 else None
    summary = _summary(counted, score)

    if critical:
        names = ", ".join(repr(name) for name in critical)
        return Judgment(FAILED, f"critical metric {names} failed; {summary}", score,
                        tuple(comparisons))
    if score is None:
        message = "no metric has data to compare, so the canary cannot be judged"
        if counted:
            message = "every scored metric has weight 0, so the canary cannot be judged"
        return Judgment(INCONCLUSIVE, message, None, tuple(comparisons))
    if score >= pass_score:
        return Judgment(SUCCESSFUL, f"{summary}, at or above pass {pass_score:g}", score,
                        tuple(comparisons))
    if score >= marginal_score:
        return Judgment(INCONCLUSIVE, f"{summary}, marginal: below pass {pass_score:g}",
                        score, tuple(comparisons))
    return Judgment(FAILED, f"{summary}, below marginal {marginal_score:g}", score,
                    tuple(comparisons))


def _summary(counted: Sequence[Comparison], score: float | None) -> str:
    passed = sum(1 for c in counted if c.passed)
    score_text = "none" if score is None else f"{score:.1f}"
    return f"score {score_text} ({passed} of {len(counted)} scored metrics passed)"
