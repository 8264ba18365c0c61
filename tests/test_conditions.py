from __future__ import annotations

import math

import pytest

from pipeline.conditions import MAX_DEPTH, ConditionError, compile_condition


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
        ("x < +2", 1.0, True),
    ],
)
def test_compile_condition_comparisons(text: str, value: float, expected: bool) -> None:
    assert compile_condition(text).evaluate({"x": value}) is expected


def test_compile_condition_and_binds_tighter_than_or() -> None:
    condition = compile_condition("a < 1 or b < 1 and c < 1")

    assert condition.evaluate({"a": 0, "b": 5, "c": 5}) is True


def test_compile_condition_parentheses_override_precedence() -> None:
    condition = compile_condition("(a < 1 or b < 1) and c < 1")

    assert condition.evaluate({"a": 0, "b": 5, "c": 5}) is False


def test_compile_condition_not_binds_tighter_than_and() -> None:
    condition = compile_condition("not a < 1 and b < 1")

    assert condition.evaluate({"a": 5, "b": 0}) is True
    assert condition.evaluate({"a": 0, "b": 0}) is False


def test_compile_condition_not_of_group() -> None:
    condition = compile_condition("not (a < 1 or b < 1)")

    assert condition.evaluate({"a": 5, "b": 5}) is True


def test_compile_condition_chains_of_and_or() -> None:
    condition = compile_condition("a < 1 and b < 1 and c < 1 or d < 1")

    assert condition.evaluate({"a": 0, "b": 0, "c": 5, "d": 5}) is False
    assert condition.evaluate({"a": 0, "b": 0, "c": 5, "d": 0}) is True


def test_compile_condition_collects_names() -> None:
    condition = compile_condition("error_rate < 0.01 and (p99_ms < 500 or not p50_ms > 9)")

    assert condition.names == frozenset({"error_rate", "p99_ms", "p50_ms"})


def test_compile_condition_keeps_text() -> None:
    condition = compile_condition("p95_ms <= 300")

    assert str(condition) == "p95_ms <= 300"


def test_compile_condition_ignores_whitespace() -> None:
    condition = compile_condition("  \tp95_ms<=300 and\n p50_ms < 1  ")

    assert condition.evaluate({"p95_ms": 300, "p50_ms": 0}) is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95_ms <=", "invalid condition 'p95_ms <=': expected a number after '<='"),
        ("", "invalid condition '': expected a metric name"),
        ("   ", "invalid condition '   ': expected a metric name"),
        (">= 0.99", "invalid condition '>= 0.99': expected a metric name, got '>='"),
        (
            "success_rate",
            "invalid condition 'success_rate': expected a comparison operator "
            "(<, <=, >, >=, == or !=) after 'success_rate'",
        ),
        (
            "success_rate 0.99",
            "invalid condition 'success_rate 0.99': expected a comparison operator "
            "(<, <=, >, >=, == or !=) after 'success_rate', got '0.99'",
        ),
        ("a < b", "invalid condition 'a < b': expected a number after '<', got 'b'"),
        ("a < 1 and", "invalid condition 'a < 1 and': expected a metric name after 'and'"),
        ("(a < 1", "invalid condition '(a < 1': expected 'and', 'or' or ')' after '1'"),
        (
            "a < 1)",
            "invalid condition 'a < 1)': expected 'and', 'or' or the end of the condition "
            "after '1', got ')'",
        ),
        (
            "a < 1 b < 2",
            "invalid condition 'a < 1 b < 2': expected 'and', 'or' or the end of the "
            "condition after '1', got 'b'",
        ),
        (
            "a < 1 AND b < 2",
            "invalid condition 'a < 1 AND b < 2': expected 'and', 'or' or the end of the "
            "condition after '1', got 'AND'",
        ),
        ("and < 1", "invalid condition 'and < 1': expected a metric name, got 'and'"),
        ("not", "invalid condition 'not': expected a metric name after 'not'"),
        ("()", "invalid condition '()': expected a metric name after '(', got ')'"),
        (
            "a = 1",
            "invalid condition 'a = 1': unexpected character '=' at column 3 "
            "(use '==' to compare)",
        ),
        ("a < 1 && b < 1", "invalid condition 'a < 1 && b < 1': unexpected character '&' "
         "at column 7"),
        ("a < 1 @", "invalid condition 'a < 1 @': unexpected character '@' at column 7"),
    ],
)
def test_compile_condition_errors(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "__import__('os')",
            "invalid condition \"__import__('os')\": unexpected character \"'\" at column 12",
        ),
        (
            "__import__('os').system('true') or x < 1",
            "invalid condition \"__import__('os').system('true') or x < 1\": unexpected "
            "character \"'\" at column 12",
        ),
        (
            "x.__class__ < 1",
            "invalid condition 'x.__class__ < 1': unexpected character '.' at column 2",
        ),
        ("len(x) < 1", "invalid condition 'len(x) < 1': expected a comparison operator "
         "(<, <=, >, >=, == or !=) after 'len', got '('"),
        ("x < 1 if True else 2", "invalid condition 'x < 1 if True else 2': expected 'and', "
         "'or' or the end of the condition after '1', got 'if'"),
    ],
)
def test_compile_condition_rejects_python(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)

    assert str(caught.value) == message


def test_compile_condition_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="invalid condition"):
        compile_condition("x <")


def test_compile_condition_accepts_max_depth() -> None:
    text = "(" * MAX_DEPTH + "x < 1" + ")" * MAX_DEPTH

    assert compile_condition(text).evaluate({"x": 0}) is True


def test_compile_condition_rejects_deeper_nesting() -> None:
    text = "not " * (MAX_DEPTH + 1) + "x < 1"

    with pytest.raises(ConditionError) as caught:
        compile_condition(text)

    assert str(caught.value) == f"invalid condition {text!r}: nested deeper than 50 levels"


def test_evaluate_missing_value_is_unknown() -> None:
    assert compile_condition("x < 1").evaluate({"x": None}) is None


def test_evaluate_nan_is_unknown() -> None:
    assert compile_condition("x < 1").evaluate({"x": math.nan}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x < 1 and y < 1", False),  # unknown and false
        ("y > 1 and x < 1", None),  # true and unknown
        ("x < 1 or y > 1", True),  # unknown or true
        ("x < 1 or y < 1", None),  # unknown or false
        ("not x < 1", None),
        ("not (x < 1 and y < 1)", True),
    ],
)
def test_evaluate_three_valued_logic(text: str, expected: bool | None) -> None:
    values: dict[str, float | None] = {"x": None, "y": 5.0}

    assert compile_condition(text).evaluate(values) is expected


def test_evaluate_unknown_metric_names_available_ones() -> None:
    condition = compile_condition("p9_ms < 300")

    with pytest.raises(ConditionError) as caught:
        condition.evaluate({"p95_ms": 12.0, "success_rate": 1.0})

    assert str(caught.value) == (
        "condition 'p9_ms < 300' uses unknown metric 'p9_ms' (did you mean 'p95_ms'?): "
        "available metrics are p95_ms, success_rate"
    )


def test_evaluate_unknown_metric_without_close_match() -> None:
    condition = compile_condition("latency < 300")

    with pytest.raises(ConditionError) as caught:
        condition.evaluate({"success_rate": 1.0})

    assert str(caught.value) == (
        "condition 'latency < 300' uses unknown metric 'latency': "
        "available metrics are success_rate"
    )


def test_evaluate_unknown_metric_even_when_other_branch_decides() -> None:
    condition = compile_condition("x < 1 or missing < 1")

    with pytest.raises(ConditionError):
        condition.evaluate({"x": 0.0})


def test_check_names_accepts_known() -> None:
    compile_condition("a < 1 and b < 2").check_names(["a", "b", "c"])


def test_check_names_with_nothing_available() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("a < 1").check_names([])

    assert str(caught.value) == (
        "condition 'a < 1' uses unknown metric 'a': available metrics are none"
    )
