"""Tests of pipeline.conditions: analysis conditions as CEL expressions over one measurement."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pipeline.conditions import (
    ConditionError,
    ConditionEvaluationError,
    compile_condition,
    contains_no_data,
    variables_for,
    without_nan,
)


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("x < 1", 0.5, True),
        ("x < 1", 1.0, False),
        ("x <= 1", 1.0, True),
        ("x > 1", 1.0, False),
        ("x >= 1", 1.0, True),
        ("x == 1", 1.0, True),
        ("x != 1", 1.0, False),
        ("x>=0.99", 0.995, True),
        ("x < -1", -2.0, True),
        ("x < 1e3", 999.0, True),
        ("x < .5", 0.25, True),
        ("x >= 0.99", 1, True),
        ("x == 1.0", 1, True),
    ],
)
def test_condition_comparisons_of_named_metric(text: str, value: float, expected: bool) -> None:
    assert compile_condition(text).evaluate({"x": value}) is expected


def test_condition_probe_style_still_valid() -> None:
    condition = compile_condition("success_rate >= 0.99")

    assert condition.names == frozenset({"success_rate"})
    assert condition.evaluate({"success_rate": 0.995, "p95_ms": 12.0}) is True
    assert condition.evaluate({"success_rate": 0.9, "p95_ms": 12.0}) is False


def test_condition_cel_operators() -> None:
    condition = compile_condition("error_rate < 0.01 && (p99_ms < 500 || !(p50_ms > 9))")

    assert condition.names == frozenset({"error_rate", "p99_ms", "p50_ms"})
    assert condition.evaluate({"error_rate": 0.0, "p99_ms": 900.0, "p50_ms": 3.0}) is True
    assert condition.evaluate({"error_rate": 0.0, "p99_ms": 900.0, "p50_ms": 30.0}) is False


def test_condition_result_number() -> None:
    assert compile_condition("result < 0.01").evaluate({"result": 0.001}) is True


def test_condition_result_list() -> None:
    condition = compile_condition("size(result) == 3 && result.all(x, x < 300)")

    assert condition.evaluate({"result": [120, 180.5, 299]}) is True
    assert condition.evaluate({"result": [120, 380, 299]}) is False


def test_condition_result_map() -> None:
    condition = compile_condition('result.errors / result.total < 0.01 && result.region == "eu"')

    assert condition.evaluate({"result": {"errors": 1.0, "total": 1000.0, "region": "eu"}})


def test_condition_result_is_map_of_named_metrics() -> None:
    condition = compile_condition("result.success_rate >= 0.99")

    assert condition.evaluate({"success_rate": 1.0, "requests": 10.0}) is True


def test_condition_reads_args() -> None:
    condition = compile_condition("result < double(args.max_error_rate)")

    assert condition.evaluate({"result": 0.02}, {"max_error_rate": "0.05"}) is True
    assert condition.evaluate({"result": 0.02}, {"max_error_rate": "0.01"}) is False


def test_condition_str_is_text() -> None:
    assert str(compile_condition("p95_ms <= 300")) == "p95_ms <= 300"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95_ms <=", "invalid condition 'p95_ms <=': CEL syntax error at column 8"),
        ("", "invalid condition '': the expression is empty"),
        ("a = 1", "invalid condition 'a = 1': CEL syntax error at column 3 "
         "(use '==' to compare)"),
        ("a < 1 and b < 2", "invalid condition 'a < 1 and b < 2': CEL syntax error at "
         "column 7 (CEL writes '&&' for 'and')"),
        ("not a < 1 or b", "invalid condition 'not a < 1 or b': CEL syntax error at "
         "column 5 (CEL writes '!' for 'not', '||' for 'or')"),
        ("a < 1 && b <", "invalid condition 'a < 1 && b <': CEL syntax error at column 12"),
        ("defualt(result, 0.0) < 1", "invalid condition 'defualt(result, 0.0) < 1': unknown "
         "function 'defualt' (did you mean 'default'?); the helpers for no data are "
         "no_data, is_nan, default"),
        ("result.startwith('a')", "invalid condition \"result.startwith('a')\": unknown "
         "function 'startwith' (did you mean 'startsWith'?); the helpers for no data are "
         "no_data, is_nan, default"),
        ("percentile(result) < 1", "invalid condition 'percentile(result) < 1': unknown "
         "function 'percentile'; the helpers for no data are no_data, is_nan, default"),
    ],
)
def test_compile_condition_errors(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)

    assert str(caught.value) == message


def test_compile_condition_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="invalid condition"):
        compile_condition("x <")


def test_condition_python_call_is_rejected() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("__import__('os').system('false') == 0")

    assert str(caught.value).startswith(
        "invalid condition \"__import__('os').system('false') == 0\": unknown function "
        "'__import__'"
    )


def test_condition_type_mismatch_is_evaluation_error() -> None:
    with pytest.raises(ConditionEvaluationError) as caught:
        compile_condition('result > "a"').evaluate({"result": 1.0})

    assert str(caught.value) == (
        "condition 'result > \"a\"' failed: an operator or function got values of types "
        "it does not accept"
    )


def test_condition_non_boolean_result() -> None:
    with pytest.raises(ConditionEvaluationError) as caught:
        compile_condition("result + 1.0").evaluate({"result": 1.0})

    assert str(caught.value) == "condition 'result + 1.0' must be true or false, got 2.0"


def test_evaluate_missing_value_is_unknown() -> None:
    assert compile_condition("x < 1").evaluate({"x": None}) is None


def test_evaluate_nan_is_unknown() -> None:
    assert compile_condition("x < 1").evaluate({"x": math.nan}) is None
    assert compile_condition("!(x < 1)").evaluate({"x": math.nan}) is None


def test_evaluate_nan_inside_map_is_unknown() -> None:
    condition = compile_condition("result.rate < 1")

    assert condition.evaluate({"result": {"rate": math.nan}}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x < 1 && y < 1", False),  # unknown and false
        ("y > 1 && x < 1", None),  # true and unknown
        ("x < 1 || y > 1", True),  # unknown or true
        ("x < 1 || y < 1", None),  # unknown or false
        ("!(x < 1)", None),
        ("!(x < 1 && y < 1)", True),
    ],
)
def test_evaluate_three_valued_logic(text: str, expected: bool | None) -> None:
    values: dict[str, float | None] = {"x": None, "y": 5.0}

    assert compile_condition(text).evaluate(values) is expected


@pytest.mark.parametrize(
    ("text", "result", "expected"),
    [
        ("no_data(result)", None, True),
        ("no_data(result)", math.nan, True),
        ("no_data(result)", [], True),
        ("no_data(result)", {}, True),
        ("no_data(result)", 0.0, False),
        ("no_data(result)", [1.0], False),
        ("is_nan(result)", math.nan, True),
        ("is_nan(result)", 1.0, False),
        ("default(result, 0.0) < 0.01", math.nan, True),
        ("default(result, 0.0) < 0.01", None, True),
        ("default(result, 0.0) < 0.01", 0.5, False),
        ("no_data(result) || result < 0.01", None, True),
    ],
)
def test_no_data_helpers(text: str, result: Any, expected: bool) -> None:
    assert compile_condition(text).evaluate({"result": result}) is expected


def test_evaluate_unknown_metric_names_available_ones() -> None:
    condition = compile_condition("p9_ms < 300")

    with pytest.raises(ConditionError) as caught:
        condition.evaluate({"p95_ms": 12.0, "success_rate": 1.0})

    assert str(caught.value) == (
        "condition 'p9_ms < 300' uses unknown metric 'p9_ms' (did you mean 'p95_ms'?): "
        "available metrics are args, p95_ms, result, success_rate"
    )


def test_evaluate_unknown_metric_even_when_other_branch_decides() -> None:
    condition = compile_condition("x < 1 || missing < 1")

    with pytest.raises(ConditionError):
        condition.evaluate({"x": 0.0})


def test_condition_names_leave_out_macro_variables() -> None:
    condition = compile_condition("result.exists(sample, sample > 300) && default(other, 1) > 0")

    assert condition.names == frozenset({"result", "other"})


def test_check_names_accepts_known() -> None:
    compile_condition("a < 1 && b < 2 && result > 0").check_names(["a", "b", "c"])


def test_check_names_with_nothing_available() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("a < 1").check_names([])

    assert str(caught.value) == (
        "condition 'a < 1' uses unknown metric 'a': available metrics are args, result"
    )


def test_variables_for_named_metrics() -> None:
    variables = variables_for({"rate": math.nan, "count": 3.0}, {"service": "shop"})

    assert variables == {
        "rate": None,
        "count": 3.0,
        "result": {"rate": None, "count": 3.0},
        "args": {"service": "shop"},
    }


def test_without_nan_at_any_depth() -> None:
    assert without_nan({"a": [1.0, math.nan], "b": {"c": math.nan}}) == {
        "a": [1.0, None], "b": {"c": None},
    }


def test_contains_no_data() -> None:
    assert contains_no_data({"a": [1.0, None]})
    assert contains_no_data(math.nan)
    assert not contains_no_data({"a": [1.0, 2.0]})


def test_evaluate_macro_over_no_data_is_unknown() -> None:
    assert compile_condition("result.all(x, x < 300)").evaluate({"result": None}) is None


def test_condition_arg_names() -> None:
    condition = compile_condition('result < double(args.limit) && args.mode.size() > 0')

    assert condition.arg_names == frozenset({"limit", "mode"})


def test_compile_condition_known_functions() -> None:
    text = ("result.all(x, x.startsWith('a')) && size(result) > 0 && has(result.x) && "
            "result.exists_one(x, int(x) > 1) && !no_data(result) && default(result, 1) != 2")

    assert compile_condition(text).text == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("result.total < 1", "the map has no key 'total' (read as result.total)"),
        ("result.errors / result.total < 0.01",
         "the map has no key 'total' (read as result.total)"),
        ("result.errors.count > 1", "the map has no key 'count' (read as result.errors.count)"),
        ("result['total'] < 1", "the map has no key 'total'"),
    ],
)
def test_condition_missing_key_named(text: str, reason: str) -> None:
    values = {"result": {"errors": {"five": 5}} if "count" in text else {"errors": 5}}

    with pytest.raises(ConditionEvaluationError) as caught:
        compile_condition(text).evaluate(values)

    assert str(caught.value) == f"condition {text!r} failed: {reason}"
