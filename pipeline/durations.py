"""Durations as pipeline files write them, and as messages print them.

A duration is either a number of seconds (``30``, ``0.5``) or a string of units in
decreasing order: hours, minutes, seconds, milliseconds (``1h``, ``5m``, ``1m30s``,
``500ms``, ``1.5h``). Each unit may appear at most once. The JSON Schema of the
pipeline file uses :data:`DURATION_PATTERN`, so a value the schema accepts always parses.
"""

from __future__ import annotations

import math
import re

#: The regular expression that a duration string must match (ECMA-262 and Python ``re``).
DURATION_PATTERN = (
    r"^(?=\d)(?:\d+(?:\.\d+)?h)?(?:\d+(?:\.\d+)?m)?(?:\d+(?:\.\d+)?s)?(?:\d+(?:\.\d+)?ms)?$"
)

#: The fix for an invalid duration, shared with the schema's error messages.
DURATION_HELP = "use a number of seconds or a value like 500ms, 30s, 5m, 1h"

_PARTS = re.compile(
    r"(?=\d)(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?"
)
_SECONDS_PER_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: float | int | str) -> float:
    """Return ``value`` in seconds.

    Raises ValueError, naming the value, for a negative or non-finite number, a string
    that does not match :data:`DURATION_PATTERN`, or any other type (a boolean too,
    although ``bool`` is a subclass of ``int``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a valid duration: {DURATION_HELP}")

    if isinstance(value, str):
        return _parse_text(value)

    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a valid duration: use a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"{value!r} is not a valid duration: it must not be negative")
    return seconds


def parse_duration_text(text: str) -> float:
    """Return a duration typed on the command line, in seconds.

    A bare number (``5``, ``0``, ``1.5``) is a number of seconds, as a number is in a
    pipeline file, where YAML reads it as a number rather than as text. Raises
    ValueError, naming the value and the fix.
    """
    stripped = text.strip()
    if _BARE_NUMBER.fullmatch(stripped):
        return float(stripped)
    if stripped.startswith("-"):
        raise ValueError(f"{text!r} is negative: give 0 or a longer duration")
    return _parse_text(stripped)


def duration_option(text: str) -> float:
    """Parse a duration option, as the ``type`` of an argparse argument.

    Raises argparse.ArgumentTypeError with :func:`parse_duration_text`'s message, which
    argparse prints after the option's name, exit status 2.
    """
    import argparse

    try:
        return parse_duration_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_text(text: str) -> float:
    match = _PARTS.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a valid duration: {DURATION_HELP}")

    total = 0.0
    for unit, amount in match.groupdict().items():
        if amount is not None:
            total += float(amount) * _SECONDS_PER_UNIT[unit]
    return total


def format_duration(seconds: float) -> str:
    """Format ``seconds`` in the string form that :func:`parse_duration` reads back.

    The value is rounded to the nearest millisecond, zero units are left out
    (``90`` gives ``1m30s``, ``0.5`` gives ``500ms``, ``7200`` gives ``2h``), and a value
    below half a millisecond gives ``0s``. Raises ValueError for a negative or
    non-finite value.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format {seconds!r} as a duration: expected 0 or more seconds")

    remaining = round(seconds * 1000)
    if remaining == 0:
        return "0s"

    text = ""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            text += f"{count}{unit}"
    return text
