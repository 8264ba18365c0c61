"""Tests of pipeline.cel: CEL expressions compiled and evaluated through cel-python."""

from __future__ import annotations

import math
import threading

import pytest

from pipeline.cel import CelError, compile_expression, evaluate, evaluate_bool, is_nan


def test_evaluate_condition_over_number_and_list() -> None:
    expression = compile_expression("result >= 0.99 && size(samples) > 0")

    assert evaluate(expression, {"result": 0.995, "samples": [1, 2]}) is True


def test_evaluate_returns_python_values() -> None:
    expression = compile_expression('{"a": [1, 2.5, null, "x", true]}')

    assert evaluate(expression, {}) == {"a": [1, 2.5, None, "x", True]}


def test_evaluate_reads_map_fields() -> None:
    expression = compile_expression("result.errors / result.total < 0.01")

    assert evaluate(expression, {"result": {"errors": 1.0, "total": 1000.0}}) is True


def test_evaluate_nan_compares_false() -> None:
    expression = compile_expression("result > 1.0 || result <= 1.0")

    assert evaluate(expression, {"result": math.nan}) is False


def test_evaluate_macro_binds_its_own_name() -> None:
    expression = compile_expression("result.all(x, x < 300)")

    assert evaluate(expression, {"result": [120, 180]}) is True


def test_evaluate_calls_given_function() -> None:
    expression = compile_expression("double_it(21)")

    assert evaluate(expression, {}, {"double_it": lambda value: value * 2}) == 42


def test_evaluate_is_safe_to_share_between_threads() -> None:
    expression = compile_expression("result * 2")
    results: dict[int, int] = {}

    def work(index: int) -> None:
        results[index] = evaluate(expression, {"result": index})

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {index: index * 2 for index in range(8)}


def test_compile_syntax_error_names_column() -> None:
    with pytest.raises(CelError) as caught:
        compile_expression("a +* b")

    assert str(caught.value) == "CEL expression 'a +* b' at column 4: syntax error"


def test_compile_empty_expression() -> None:
    with pytest.raises(CelError) as caught:
        compile_expression("  ")

    assert str(caught.value) == "CEL expression '  ': the expression is empty"


def test_evaluate_unknown_name() -> None:
    expression = compile_expression("resultx > 1")

    with pytest.raises(CelError) as caught:
        evaluate(expression, {"result": 1})

    assert str(caught.value) == "CEL expression 'resultx > 1': undeclared reference to 'resultx'"


def test_evaluate_division_by_zero() -> None:
    with pytest.raises(CelError) as caught:
        evaluate(compile_expression("1 / 0"), {})

    assert str(caught.value) == "CEL expression '1 / 0': modulus or divide by zero"


def test_evaluate_type_mismatch() -> None:
    with pytest.raises(CelError) as caught:
        evaluate(compile_expression('1 + "a"'), {})

    assert caught.value.reason == (
        "an operator or function got values of types it does not accept"
    )


def test_evaluate_bool_rejects_other_results() -> None:
    with pytest.raises(CelError) as caught:
        evaluate_bool(compile_expression("result + 1"), {"result": 1})

    assert caught.value.reason == "the result must be true or false, got int 2"


def test_is_nan() -> None:
    assert is_nan(math.nan)
    assert not is_nan(1.0)
    assert not is_nan("nan")
