"""Scalar values by the YAML 1.2 core schema, and the standard tags of that schema.

A plain scalar becomes null, a boolean, an int or a float only when its whole text spells
one in the core schema, so ``on``, ``yes``, ``no`` and ``2026-01-01`` stay strings. A scalar
with an explicit standard tag must spell a value of that tag.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "MAP_TAG",
    "NON_SPECIFIC_TAG",
    "SEQ_TAG",
    "STR_TAG",
    "TAGGED_SCALAR_TAGS",
    "InvalidScalar",
    "quote_text",
    "resolve_plain",
    "resolve_tagged",
    "show_tag",
]

_CORE_TAG_PREFIX = "tag:yaml.org,2002:"
STR_TAG = _CORE_TAG_PREFIX + "str"
_INT_TAG = _CORE_TAG_PREFIX + "int"
_FLOAT_TAG = _CORE_TAG_PREFIX + "float"
_BOOL_TAG = _CORE_TAG_PREFIX + "bool"
_NULL_TAG = _CORE_TAG_PREFIX + "null"
MAP_TAG = _CORE_TAG_PREFIX + "map"
SEQ_TAG = _CORE_TAG_PREFIX + "seq"
NON_SPECIFIC_TAG = "!"
#: The scalar tags that :func:`resolve_tagged` accepts.
TAGGED_SCALAR_TAGS = frozenset({_INT_TAG, _FLOAT_TAG, _BOOL_TAG, _NULL_TAG})

_NULL_WORDS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL_WORDS = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
# A plain scalar that starts with any other character can only be a string or a null/bool word.
_NUMBER_START = frozenset("0123456789+-.")
_DECIMAL_INT = re.compile(r"[-+]?[0-9]+")
_OCTAL_INT = re.compile(r"0o[0-7]+")
_HEX_INT = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")

_MESSAGE_TEXT_LIMIT = 40


def quote_text(text: str) -> str:
    """Quote source text for a message, shortened so that one message stays one line."""
    if len(text) > _MESSAGE_TEXT_LIMIT:
        text = text[: _MESSAGE_TEXT_LIMIT - 3] + "..."
    return repr(text)


def show_tag(tag: str) -> str:
    """Write a resolved tag the way it is usually written: ``!!int`` instead of the full URI."""
    if tag.startswith(_CORE_TAG_PREFIX):
        return "!!" + tag[len(_CORE_TAG_PREFIX) :]
    return tag


class InvalidScalar(Exception):
    """A scalar whose text does not fit its tag. The composer turns it into a Diagnostic."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def resolve_plain(text: str) -> Any:
    """Resolve an untagged plain scalar by the YAML 1.2 core schema."""
    if text in _NULL_WORDS:
        return None
    boolean = _BOOL_WORDS.get(text)
    if boolean is not None:
        return boolean
    if text[0] not in _NUMBER_START:
        return text
    number = _parse_number(text)
    if number is None:
        return text
    return number


def _parse_number(text: str) -> int | float | None:
    """Return the core-schema int or float that ``text`` spells, or None if it is no number."""
    if _DECIMAL_INT.fullmatch(text):
        return _decimal_int(text)
    if _OCTAL_INT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX_INT.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INFINITY.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return None


def _decimal_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # Python 3.11 (and 3.10.7) raise ValueError past sys.get_int_max_str_digits() digits.
        raise InvalidScalar(
            f"the integer {quote_text(text)} has too many digits",
            "quote it to keep it as a string",
        ) from None


def resolve_tagged(text: str, tag: str) -> Any:
    """Resolve a scalar with an explicit standard tag, raising InvalidScalar on a misfit."""
    value: Any = None
    if tag == _INT_TAG:
        value = _parse_number(text)
        valid = isinstance(value, int)
    elif tag == _FLOAT_TAG:
        value = _to_float(_parse_number(text))
        valid = value is not None
    elif tag == _BOOL_TAG:
        value = _BOOL_WORDS.get(text)
        valid = value is not None
    else:
        valid = text in _NULL_WORDS
    if not valid:
        raise InvalidScalar(
            f"{quote_text(text)} is not a valid {show_tag(tag)} value",
            "fix the value or remove the tag",
        )
    return value


def _to_float(number: float | None) -> float | None:
    """Convert an int or float to float, or return None for no number or one out of range."""
    if number is None:
        return None
    try:
        return float(number)
    except OverflowError:
        return None

