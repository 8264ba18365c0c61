"""The statistical judge: scipy's Mann-Whitney U test against published examples, the
classification of one metric, scoring, and the parsing of the options."""

from __future__ import annotations

import math

import pytest

from pipeline.analysis import FAILED, INCONCLUSIVE, SUCCESSFUL, AnalysisError
from pipeline.judge import (
    HIGH,
    LOW,
    NO_DATA,
    PASSED,
    Comparison,
    JudgeSettings,
    MetricSpec,
    compare_metric,
    is_comparison,
    score_comparisons,
)

# -- scipy against published worked examples ---------------------------------------------


def test_mannwhitneyu_matches_montgomery_axial_stress_example() -> None:
    """Axial stress (psi) of two alloys, ten specimens each, from D. C. Montgomery and
    G. C. Runger, Applied Statistics and Probability for Engineers, 3rd ed., section 15-4
    (Wilcoxon rank-sum test), page 587, as shown at
    https://issuhub.com/view/index?id=5218&pageIndex=703. The book ranks the 20 values,
    finds rank sums w1 = 99 and w2 = 111, and does not reject equal means at 0.05.
    """
    from scipy.stats import mannwhitneyu, rankdata

    alloy_1 = [3238, 3195, 3246, 3190, 3204, 3254, 3229, 3225, 3217, 3241]
    alloy_2 = [3261, 3187, 3209, 3212, 3258, 3215, 3226, 3240, 3234, 3248]

    ranks = rankdata(alloy_1 + alloy_2)
    result = mannwhitneyu(alloy_1, alloy_2, alternative="two-sided")

    assert sum(ranks[:10]) == 99
    assert sum(ranks[10:]) == 111
    # U of a group is its rank sum minus n(n+1)/2 = 55.
    assert result.statistic == 99 - 55
    assert result.pvalue > 0.05


def test_mannwhitneyu_matches_small_published_u() -> None:
    """Group A = 3, 4, 22, 101 and group B = 1, 2, 90, worked by hand to U = 3 in
    "How to Calculate the Mann-Whitney U Test", https://verydays.net/articles_6h14ga.html
    (U = n1 * n2 + n1 (n1 + 1) / 2 - R1 = 12 + 10 - 19). That U is group B's; scipy
    returns the first group's, 12 - 3 = 9.
    """
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu([3, 4, 22, 101], [1, 2, 90], alternative="two-sided")

    assert result.statistic == 9
    assert 4 * 3 - result.statistic == 3
    # Exact: 14 of the 35 equally likely rank splits are at least as extreme.
    assert result.pvalue == pytest.approx(14 / 35)


def test_mannwhitneyu_normal_approximation_matches_formula() -> None:
    """Pulse rates of athletes (72, 78, 80, 85, 90) and runners (60, 65, 68, 70, 75),
    from a Pearson exam-prep problem that gives z = (U - n1 n2 / 2) /
    sqrt(n1 n2 (n1 + n2 + 1) / 12) with U = n1 n2 + n1 (n1 + 1) / 2 - R1:
    https://www.pearson.com/channels/statistics/exam-prep/set/default/two-means-unknown-unequal-variance/the-mann-whitney-u-test-is-a-nonparametric-test-used-to-compare-two-independent-
    By hand: R1 = 39, U = 25 + 15 - 39 = 1, z = -11.5 / sqrt(275 / 12) = -2.402.
    """
    from scipy.stats import mannwhitneyu, norm

    result = mannwhitneyu([72, 78, 80, 85, 90], [60, 65, 68, 70, 75],
                          alternative="two-sided", method="asymptotic", use_continuity=False)
    z = (1 - 12.5) / math.sqrt(25 * 11 / 12)

    assert z == pytest.approx(-2.402, abs=5e-4)
    assert 25 - result.statistic == 1
    assert result.pvalue == pytest.approx(2 * norm.cdf(z))


# -- one metric --------------------------------------------------------------------------

#: Thirty latencies around 100 ms, without ties.
BASELINE = [100 + ((i * 7) % 30) / 3 - 5 for i in range(30)]


def spec(**options: object) -> MetricSpec:
    return MetricSpec("latency", "latency_{group}", **options)  # type: ignore[arg-type]


def test_compare_metric_same_series_passes() -> None:
    comparison = compare_metric(spec(), BASELINE, list(reversed(BASELINE)), 0.98)

    assert comparison.classification == PASSED
    assert comparison.passed
    assert comparison.p_value == pytest.approx(1.0)
    assert comparison.statistic == 450
    assert comparison.effect == 0
    assert comparison.describe() == (
        "latency: Pass (U=450, p=1, baseline n=30, canary n=30, mean 99.8333 -> "
        "99.8333, +0.0%)"
    )


def test_compare_metric_higher_canary_is_high() -> None:
    canary = [value * 1.3 for value in BASELINE]

    comparison = compare_metric(spec(direction="increase"), BASELINE, canary, 0.98)

    assert comparison.classification == HIGH
    assert not comparison.passed
    assert comparison.p_value is not None
    assert comparison.p_value < 0.02
    assert comparison.effect == pytest.approx(0.3)
    assert comparison.verdict == FAILED
    assert comparison.describe().endswith(", +30.0%), fails")


def test_compare_metric_lower_canary_is_low() -> None:
    canary = [value * 0.7 for value in BASELINE]

    comparison = compare_metric(spec(), BASELINE, canary, 0.98)

    assert comparison.classification == LOW
    assert not comparison.passed


def test_compare_metric_direction_decides_failure() -> None:
    higher = [value * 1.3 for value in BASELINE]

    throughput = compare_metric(spec(direction="decrease"), BASELINE, higher, 0.98)
    latency = compare_metric(spec(direction="increase"), BASELINE, higher, 0.98)

    assert throughput.classification == HIGH
    assert throughput.passed
    assert not latency.passed


def test_compare_metric_shift_within_tolerance_passes() -> None:
    # Every canary point is 4 % higher: significant with 30 points each, but small.
    canary = [value * 1.04 for value in BASELINE]

    within = compare_metric(spec(tolerance=0.05), BASELINE, canary, 0.98)
    beyond = compare_metric(spec(tolerance=0.01), BASELINE, canary, 0.98)

    assert within.p_value is not None
    assert within.p_value < 0.02
    assert within.classification == PASSED
    assert beyond.classification == HIGH


def test_compare_metric_confidence_sets_threshold() -> None:
    canary = [value + 1 for value in BASELINE]

    comparison = compare_metric(spec(tolerance=0.0), BASELINE, canary, 0.98)
    lenient = compare_metric(spec(tolerance=0.0), BASELINE, canary, 0.5)

    assert comparison.p_value is not None
    assert 0.02 < comparison.p_value < 0.5
    assert comparison.classification == PASSED
    assert lenient.classification == HIGH


def test_compare_metric_sparse_series_drops_gaps() -> None:
    """A sparse series with NaN and null gaps is judged on the points it has."""
    gappy = [value if i % 3 else None for i, value in enumerate(BASELINE)]
    gappy[1] = math.nan

    comparison = compare_metric(spec(), BASELINE, gappy, 0.98)

    assert comparison.canary_points == 19
    assert comparison.baseline_points == 30
    assert comparison.classification == PASSED
    assert all(not math.isnan(v) for v in comparison.values().values() if v is not None)


def test_compare_metric_too_few_points_is_no_data() -> None:
    comparison = compare_metric(spec(min_points=10), BASELINE, BASELINE[:9] + [None] * 5, 0.98)

    assert comparison.classification == NO_DATA
    assert comparison.passed
    assert not comparison.counted
    assert comparison.verdict == INCONCLUSIVE
    assert comparison.statistic is None
    assert comparison.describe() == (
        "latency: NoData (baseline n=30, canary n=9, at least 10 needed)"
    )


def test_compare_metric_no_data_fails_when_required() -> None:
    comparison = compare_metric(spec(must_have_data=True, critical=True), [], BASELINE, 0.98)

    assert comparison.classification == NO_DATA
    assert not comparison.passed
    assert comparison.counted
    assert comparison.verdict == FAILED
    assert comparison.describe() == (
        "latency: NoData (baseline n=0, canary n=30, at least 10 needed), fails (critical)"
    )


def test_compare_metric_variance_grew_median_same_passes() -> None:
    """A canary whose spread tripled around the same median passes.

    The U test tests whether one group tends to be larger than the other. Values spread
    evenly on both sides of the same median are larger than a baseline value about as
    often as they are smaller, so U stays near n1 * n2 / 2 and the p-value stays high.
    This is the documented limit: judge the tail with its own metric, such as p99.
    """
    median = 99.8333
    spread = [median + (value - median) * 3 for value in BASELINE]

    comparison = compare_metric(spec(), BASELINE, spread, 0.98)

    assert comparison.classification == PASSED
    assert comparison.p_value is not None
    assert comparison.p_value > 0.5
    assert comparison.baseline_median == pytest.approx(comparison.canary_median, abs=1e-3)


def test_compare_metric_tail_metric_catches_grown_variance() -> None:
    """The same canary judged on a p99 series: each point is a window's tail, which
    moved up, so that metric fails."""
    baseline_p99 = [120 + (i % 5) for i in range(20)]
    canary_p99 = [160 + (i % 5) for i in range(20)]

    comparison = compare_metric(spec(direction="increase"), baseline_p99, canary_p99, 0.98)

    assert comparison.classification == HIGH


def test_compare_metric_zero_baseline_median() -> None:
    errors_before = [0.0] * 20
    errors_after = [0.0] * 10 + [1.0] * 10

    comparison = compare_metric(spec(direction="increase"), errors_before, errors_after, 0.98)

    assert comparison.effect is None
    assert comparison.classification == HIGH
    assert comparison.describe() == (
        "latency: High (U=300, p=0.0003338, baseline n=20, canary n=20, mean 0 -> 0.5), "
        "fails"
    )


def test_compare_metric_zero_median_error_counts() -> None:
    """Errors stay 0 in most windows before and after, so both medians are 0, but the
    canary has errors three times as often. The mean shift shows it."""
    before = [1.0 if i % 10 == 0 else 0.0 for i in range(60)]
    after = [1.0 if i % 10 < 3 else 0.0 for i in range(60)]

    comparison = compare_metric(spec(direction="increase"), before, after, 0.98)

    assert comparison.baseline_median == comparison.canary_median == 0
    assert comparison.effect == pytest.approx(2.0)
    assert comparison.classification == HIGH


# -- scoring -----------------------------------------------------------------------------


def outcome(name: str, passed: bool, *, weight: float = 1.0, critical: bool = False,
            no_data: bool = False, must_have_data: bool = False) -> Comparison:
    metric = MetricSpec(name, "q", weight=weight, critical=critical,
                        must_have_data=must_have_data)
    if no_data:
        return Comparison(metric, NO_DATA, passed, 0, 0)
    return Comparison(metric, PASSED if passed else HIGH, passed, 20, 20, 10.0, 0.001,
                      1.0, 2.0, 1.0)


def test_score_all_pass_is_successful() -> None:
    judgment = score_comparisons([outcome("a", True), outcome("b", True)], 95, 75)

    assert judgment.verdict == SUCCESSFUL
    assert judgment.score == 100
    assert judgment.message == (
        "score 100.0 (2 of 2 scored metrics passed), at or above pass 95"
    )


def test_score_weights_share_of_passing() -> None:
    comparisons = [outcome("a", True, weight=3), outcome("b", False, weight=1)]

    judgment = score_comparisons(comparisons, 95, 75)

    assert judgment.score == 75
    assert judgment.verdict == INCONCLUSIVE
    assert judgment.message == (
        "score 75.0 (1 of 2 scored metrics passed), marginal: below pass 95"
    )


def test_score_below_marginal_fails() -> None:
    comparisons = [outcome("a", True), outcome("b", False)]

    judgment = score_comparisons(comparisons, 95, 75)

    assert judgment.verdict == FAILED
    assert judgment.message == "score 50.0 (1 of 2 scored metrics passed), below marginal 75"


def test_score_critical_failure_fails_whole_judgment() -> None:
    comparisons = [outcome(str(i), True, weight=10) for i in range(5)]
    comparisons.append(outcome("errors", False, weight=1, critical=True))

    judgment = score_comparisons(comparisons, 95, 75)

    assert judgment.score == pytest.approx(98.04, abs=0.01)
    assert judgment.verdict == FAILED
    assert judgment.message == (
        "critical metric 'errors' failed; score 98.0 (5 of 6 scored metrics passed)"
    )


def test_score_no_data_left_out_unless_required() -> None:
    optional = [outcome("a", True), outcome("b", True, no_data=True)]
    required = [outcome("a", True), outcome("b", False, no_data=True, must_have_data=True)]

    assert score_comparisons(optional, 95, 75).score == 100
    assert score_comparisons(required, 95, 75).score == 50


def test_score_without_any_data_is_inconclusive() -> None:
    judgment = score_comparisons([outcome("a", True, no_data=True)], 95, 75)

    assert judgment.verdict == INCONCLUSIVE
    assert judgment.score is None
    assert judgment.message == "no metric has data to compare, so the canary cannot be judged"


def test_score_all_weights_zero_is_inconclusive() -> None:
    judgment = score_comparisons([outcome("a", True, weight=0)], 95, 75)

    assert judgment.verdict == INCONCLUSIVE
    assert judgment.message == (
        "every scored metric has weight 0, so the canary cannot be judged"
    )


# -- options -----------------------------------------------------------------------------

OPTIONS = {
    "provider": "recorded",
    "judge": "compare",
    "metrics": [{"name": "latency", "query": "latency_{group}"}],
}


def test_is_comparison() -> None:
    assert is_comparison(OPTIONS)
    assert not is_comparison({"provider": "probe"})


def test_judge_settings_defaults() -> None:
    settings = JudgeSettings.from_options("j", OPTIONS)

    assert settings.confidence == 0.98
    assert settings.pass_score == 95
    assert settings.marginal_score == 75
    assert settings.window == 600
    assert settings.metrics == (MetricSpec("latency", "latency_{group}"),)


def test_judge_settings_analysis_defaults_apply_to_metrics() -> None:
    options = {**OPTIONS, "tolerance": 0.2, "min_points": 5, "must_have_data": True,
               "metrics": [{"name": "a", "query": "a"},
                           {"name": "b", "query": "b", "tolerance": 0, "weight": 2,
                            "critical": True, "direction": "increase"}]}

    a, b = JudgeSettings.from_options("j", options).metrics

    assert a == MetricSpec("a", "a", tolerance=0.2, must_have_data=True, min_points=5)
    assert b == MetricSpec("b", "b", weight=2, critical=True, direction="increase",
                           tolerance=0, must_have_data=True, min_points=5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"confidence": 1}, "invalid 'confidence': expected a number below 1, got 1.0"),
        ({"confidence": 0.2}, "invalid 'confidence': expected a number from 0.5 to 1, got 0.2"),
        ({"score": {"pass": 70, "marginal": 80}},
         "invalid 'score': 'marginal' (80) is above 'pass' (70); set marginal at or "
         "below pass"),
        ({"score": {"pass": 101}},
         "score: invalid 'pass': expected a number from 0 to 100, got 101"),
        ({"metrics": []},
         "invalid 'metrics': expected a non-empty list of metrics, each with a 'name' and a "
         "'query'"),
        ({"metrics": [{"name": "a", "query": "q"}, {"name": "a", "query": "r"}]},
         "invalid 'metrics': metric 'a' appears twice; give each metric its own name"),
        ({"metrics": [{"name": "a"}]},
         "invalid 'metrics[0]': 'name' and 'query' are required strings"),
        ({"metrics": [{"name": "a", "query": "q", "direction": "up"}]},
         "invalid 'metrics[0].direction': expected one of increase, decrease, either, got 'up'"),
        ({"metrics": [{"name": "a", "query": "q", "weight": -1}]},
         "metrics[0]: invalid 'weight': expected a number of 0 or more, got -1"),
        ({"window": "soon"},
         "invalid 'window': 'soon' is not a valid duration: use a number of seconds or a "
         "value like 500ms, 30s, 5m, 1h"),
    ],
)
def test_judge_settings_invalid(change: dict[str, object], message: str) -> None:
    with pytest.raises(AnalysisError) as caught:
        JudgeSettings.from_options("j", {**OPTIONS, **change})

    assert str(caught.value) == message
