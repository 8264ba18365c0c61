"""Tests for pipeline.durations: parsing and formatting durations."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from pipeline.durations import (
    DURATION_PATTERN,
    format_duration,
    parse_duration,
    parse_duration_text,
)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "pipeline.schema.json"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (0.25, 0.25),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5h", 5400.0),
        ("0.5s", 0.5),
        ("0s", 0.0),
        ("90m", 5400.0),
    ],
)
def test_parse_duration_valid(value: float | str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


def test_parse_duration_returns_float_for_int() -> None:
    assert isinstance(parse_duration(5), float)


@pytest.mark.parametrize(
    "text",
    ["5 minutes", "", "5", "m", "1s1m", "5d", "-5s", "1h 30m", " 5s", "5s ", "1.s", ".5s", "5mss"],
)
def test_parse_duration_invalid_text(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert str(raised.value) == (
        f"{text!r} is not a valid duration: use a number of seconds or a value like "
        "500ms, 30s, 5m, 1h"
    )


def test_parse_duration_negative_number() -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(-1)
    assert str(raised.value) == "-1 is not a valid duration: it must not be negative"


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_parse_duration_not_finite(value: float) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(value)
    assert str(raised.value) == (
        f"{value!r} is not a valid duration: use a finite number of seconds"
    )


@pytest.mark.parametrize("value", [True, None, [5]])
def test_parse_duration_wrong_type(value: object) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"{value!r} is not a valid duration: use a number of seconds or a value like "
        "500ms, 30s, 5m, 1h"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.5, "500ms"),
        (1, "1s"),
        (30, "30s"),
        (90, "1m30s"),
        (300, "5m"),
        (7200, "2h"),
        (3661.5, "1h1m1s500ms"),
        (1.0015, "1s2ms"),
        (180000, "50h"),
    ],
)
def test_format_duration_values(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, 0.001, 0.5, 59.999, 60, 61.25, 3599, 3600, 86400.5])
def test_format_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("seconds", [-1, math.inf, math.nan])
def test_format_duration_invalid(seconds: float) -> None:
    with pytest.raises(ValueError) as raised:
        format_duration(seconds)
    assert str(raised.value) == (
        f"cannot format {seconds!r} as a duration: expected 0 or more seconds"
    )


def test_duration_pattern_matches_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$defs"]["duration"]["pattern"] == DURATION_PATTERN


@pytest.mark.parametrize("text", ["500ms", "30s", "5m", "1h", "1m30s", "2.5m", "1h1m1s1ms"])
def test_duration_pattern_accepts_what_parses(text: str) -> None:
    assert re.search(DURATION_PATTERN, text) is not None
    assert parse_duration(text) >= 0


@pytest.mark.parametrize("text", ["5 minutes", "5", "1s1m", "ms", ""])
def test_duration_pattern_rejects_what_fails(text: str) -> None:
    assert re.search(DURATION_PATTERN, text) is None


@pytest.mark.parametrize(("text", "seconds"),
                         [("5", 5.0), ("0", 0.0), (" 1.5 ", 1.5), ("2s", 2.0), ("1m30s", 90.0)])
def test_parse_duration_text_takes_bare_seconds(text: str, seconds: float) -> None:
    assert parse_duration_text(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("-5", "'-5' is negative: give 0 or a longer duration"),
    ("soon", "'soon' is not a valid duration: use a number of seconds or a value like 500ms, "
             "30s, 5m, 1h"),
])
def test_parse_duration_text_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_duration_text(text)
