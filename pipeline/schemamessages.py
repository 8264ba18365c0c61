"""Wording of schema errors: each jsonschema error becomes a diagnostic a YAML user can act on.

:func:`describe` turns one :class:`~jsonschema.exceptions.ValidationError` into one
:class:`~pipeline.diagnostics.Diagnostic` per problem, marked at the failing key or
value, with a hint where the fix is obvious. Messages use the words of YAML (mapping,
list, ``null``) rather than those of JSON Schema (object, array). Which errors reach
:func:`describe` is decided by :func:`pipeline.schema.validate`, whose module docstring
shows the format of a diagnostic.

:func:`is_key_check`, :func:`expected_types` and :func:`alternative_keys` classify an
error, and :func:`join_quoted` words a list of names. :mod:`pipeline.schema` uses them
too, to choose the errors to report and to word its plugin errors.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.amounts import AMOUNT_HELP, PERCENT_PATTERN
from pipeline.diagnostics import Diagnostic, DocPath
from pipeline.durations import DURATION_HELP, DURATION_PATTERN
from pipeline.signing.options import SHA256_PATTERN

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

    from pipeline.loader import Document


# -- messages ----------------------------------------------------------------------------


def describe(
    error: ValidationError, document: Document, validator: Validator
) -> Iterator[Diagnostic]:
    """Turn one jsonschema error into diagnostics: one per key for key errors."""
    path: DocPath = tuple(error.absolute_path)
    source = document.source
    keyword = error.validator

    if keyword == "required":
        for key in _missing_keys(error):
            mark = source.key_mark(path) or source.value_mark(path)
            yield Diagnostic(f"missing required key {_show(key)}", mark, path)
    elif keyword in ("additionalProperties", "unevaluatedProperties") and (
        error.validator_value is False
    ):
        yield from _unknown_keys(error, path, document, validator)
    elif is_key_check(error):
        bad_key = str(error.instance)
        mark = source.key_mark((*path, bad_key)) or source.value_mark(path)
        message, hint = _value_message(error)
        yield Diagnostic(message, mark, path, hint)
    elif keyword == "uniqueItems":
        yield _duplicate_item(error, path, document)
    else:
        message, hint = _value_message(error)
        yield Diagnostic(message, source.value_mark(path), path, hint)


def is_key_check(error: ValidationError) -> bool:
    """Tell whether the error is about a mapping key (``propertyNames``)."""
    return "propertyNames" in error.absolute_schema_path


def _missing_keys(error: ValidationError) -> list[str]:
    required = error.validator_value
    instance = error.instance
    if not isinstance(required, list) or not isinstance(instance, Mapping):
        return []
    return [key for key in required if key not in instance]


def _unknown_keys(
    error: ValidationError, path: DocPath, document: Document, validator: Validator
) -> Iterator[Diagnostic]:
    instance = error.instance
    if not isinstance(instance, Mapping):
        return
    declared = _declared_keys(error.schema, instance, validator)

    if error.validator == "additionalProperties":
        unknown = [key for key in instance if key not in declared]
    else:
        unknown = _unevaluated_keys(error.message, instance, declared)

    candidates = sorted(key for key in declared if key not in instance)
    for key in unknown:
        mark = document.source.key_mark((*path, key)) or document.source.value_mark(path)
        yield Diagnostic(f"unknown key {_show(key)}", mark, path, _did_you_mean(key, candidates))


def _declared_keys(schema: Any, instance: Mapping[str, Any], validator: Validator) -> set[str]:
    """Return the keys that ``schema`` declares for ``instance``, fragments included.

    The fragment of the selected type counts. When no fragment is selected (the
    selector is missing or unknown, which is reported on its own), the keys of every
    fragment count, so that options of a mistyped type are not reported as unknown too.
    ``patternProperties`` matches count; keys behind a ``$ref`` inside a fragment do not.
    """
    if not isinstance(schema, Mapping):
        return set(instance)

    declared = set(schema.get("properties", {}))
    for pattern in schema.get("patternProperties", {}):
        declared.update(key for key in instance if re.search(pattern, key))

    branches = [b for b in schema.get("allOf", []) if isinstance(b, Mapping) and "if" in b]
    selected = [b for b in branches if validator.evolve(schema=b["if"]).is_valid(instance)]
    for branch in selected or branches:
        then = branch.get("then")
        if isinstance(then, Mapping):
            declared.update(then.get("properties", {}))
    return declared


_UNEVALUATED = re.compile(
    r"Unevaluated properties are not allowed \((.*) (?:was|were) unexpected\)"
)


def _unevaluated_keys(message: str, instance: Mapping[str, Any], declared: set[str]) -> list[str]:
    """Return the unknown keys that jsonschema lists in an unevaluatedProperties message.

    jsonschema also lists declared keys when the fragment that declares them failed
    for another reason, because a failed subschema evaluates nothing. Those keys are
    dropped here: the other error is reported.
    """
    # NOTE: jsonschema 4.x gives the keys only inside the message text, as reprs.
    # If that text changes, every undeclared key of the mapping is reported instead.
    match = _UNEVALUATED.fullmatch(message)
    listed: list[Any] = list(instance)
    if match is not None:
        try:
            listed = ast.literal_eval(f"[{match.group(1)}]")
        except (ValueError, SyntaxError):
            listed = list(instance)
    return [key for key in listed if key in instance and key not in declared]


def _duplicate_item(error: ValidationError, path: DocPath, document: Document) -> Diagnostic:
    items = error.instance if isinstance(error.instance, list) else []
    seen: set[str] = set()
    for index, item in enumerate(items):
        fingerprint = json.dumps(item, sort_keys=True, default=repr)
        if fingerprint in seen:
            mark = document.source.value_mark((*path, index))
            return Diagnostic(f"{_show(item)} appears more than once", mark, path)
        seen.add(fingerprint)
    return Diagnostic("contains duplicate items", document.source.value_mark(path), path)


def _value_message(error: ValidationError) -> tuple[str, str | None]:
    """Return the message and hint for an error about one value."""
    keyword = error.validator
    value = error.validator_value
    instance = error.instance

    if keyword == "type":
        return _type_message(error)
    if keyword == "enum":
        return _enum_message(instance, value)
    if keyword == "const":
        return f"must be {_show(value)}, got {_show(instance)}", None
    if keyword == "pattern":
        return _pattern_message(instance, value), None
    if keyword in ("oneOf", "anyOf"):
        return _alternatives_message(error)
    return _bounds_message(error) or (error.message, None)


def _type_message(error: ValidationError) -> tuple[str, str | None]:
    expected = expected_types(error)
    names = [_TYPE_NAMES.get(name, name) for name in expected]
    message = f"expected {_with_article(_join(names, 'or'))}, got {_describe_type(error.instance)}"

    hint = None
    if "string" in expected and (error.instance is None or isinstance(error.instance, bool)):
        hint = f'quote the value: "{_show(error.instance)}"'
    return message, hint


def expected_types(error: ValidationError) -> list[str]:
    """Return the type names that a ``type`` error expected, from a string or a list."""
    value = error.validator_value
    if isinstance(value, str):
        return [value]
    return [name for name in value if isinstance(name, str)] if isinstance(value, list) else []


def _enum_message(instance: Any, allowed: Any) -> tuple[str, str | None]:
    allowed = list(allowed)
    if not allowed:
        return f"{_show(instance)} is not registered by any loaded plugin", None

    message = f"{_show(instance)} is not one of {', '.join(_show(item) for item in allowed)}"
    if not isinstance(instance, str):
        return message, None
    return message, _did_you_mean(instance, [item for item in allowed if isinstance(item, str)])


#: Pattern of a string that must contain more than whitespace, such as the reason of a
#: scan ignore entry. It matches any non-whitespace character, so ``""`` and ``"   "``
#: both fail it with one message.
NONBLANK_PATTERN = r"\S"

#: Patterns of the core schema and what they mean, for messages.
_PATTERN_HELP = {
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": (
        "name",
        "use letters, digits, '.', '_' and '-', starting with a letter or digit",
    ),
    "^[A-Za-z_][A-Za-z0-9_]*$": (
        "variable name",
        "use letters, digits and '_', starting with a letter or '_'",
    ),
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$": (
        "module name",
        "use a Python module name such as shipline_nginx or company.hooks",
    ),
    DURATION_PATTERN: ("duration", DURATION_HELP),
    PERCENT_PATTERN: ("count or percentage", AMOUNT_HELP),
    SHA256_PATTERN: ("SHA-256 digest", "use 64 hex digits or a ${VAR} reference"),
}


def _pattern_message(instance: Any, pattern: Any) -> str:
    if pattern == NONBLANK_PATTERN:
        return "must not be empty or only whitespace"
    known = _PATTERN_HELP.get(pattern)
    if known is None:
        return f"{_show(instance)} does not match the pattern {pattern}"
    noun, help_text = known
    return f"{_show(instance)} is not a valid {noun}: {help_text}"


def _alternatives_message(error: ValidationError) -> tuple[str, str | None]:
    keys = alternative_keys(error)
    types = alternative_types(error)
    if not keys and types:
        names = [_TYPE_NAMES.get(name, name) for name in types]
        expected = _with_article(_join(names, "or"))
        message = f"expected {expected}, got {_describe_type(error.instance)}"
        return message, _pattern_hint(error.validator_value)
    if not keys:
        return "matches more than one of the allowed forms", None

    title = error.schema.get("title", "") if isinstance(error.schema, Mapping) else ""
    subject = f"{_with_article(title.lower())} needs" if title else "needs"
    choices = _join([_show(key) for key in keys], "or")
    if error.validator == "anyOf":
        return f"{subject} one of {choices}", None
    present = [key for key in keys if isinstance(error.instance, Mapping) and key in error.instance]
    found = _join([_show(key) for key in present], "and") if present else "none"
    return f"{subject} exactly one of {choices}", f"found {found}"


def _pattern_hint(branches: Any) -> str | None:
    """Return the fix that a known pattern among ``branches`` gives (a duration, an
    amount), or None."""
    pending = list(branches) if isinstance(branches, list) else []
    while pending:
        branch = pending.pop(0)
        if not isinstance(branch, Mapping):
            continue
        known = _PATTERN_HELP.get(str(branch.get("pattern")))
        if known is not None:
            return known[1]
        for keyword in ("anyOf", "oneOf"):
            nested = branch.get(keyword)
            if isinstance(nested, list):
                pending.extend(nested)
    return None


def alternative_types(error: ValidationError) -> list[str]:
    """Return the types that a ``oneOf`` or ``anyOf`` accepts.

    Each branch must declare a ``type``, directly or through its own anyOf or oneOf.
    Returns [] otherwise.
    """
    if error.validator not in ("oneOf", "anyOf") or not isinstance(error.validator_value, list):
        return []
    found: list[str] = []
    for branch in error.validator_value:
        names = _declared_types(branch)
        if not names:
            return []
        found.extend(name for name in names if name not in found)
    return found


def _declared_types(schema: Any) -> list[str]:
    if not isinstance(schema, Mapping):
        return []
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [name for name in declared if isinstance(name, str)]
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            nested = [_declared_types(branch) for branch in branches]
            if all(nested):
                return [name for names in nested for name in names]
    return []


def alternative_keys(error: ValidationError) -> list[str]:
    """Return K1..Kn if the error is a ``oneOf`` or ``anyOf`` of ``[{required: [K1]},
    ...]``, else [].

    Such a mapping needs exactly one (oneOf), or at least one (anyOf), of these keys.
    """
    if error.validator not in ("oneOf", "anyOf") or not isinstance(error.validator_value, list):
        return []
    keys = []
    for branch in error.validator_value:
        required = branch.get("required") if isinstance(branch, Mapping) else None
        if not isinstance(required, list) or len(branch) != 1 or len(required) != 1:
            return []
        keys.append(required[0])
    return keys


def _bounds_message(error: ValidationError) -> tuple[str, str | None] | None:
    keyword = error.validator
    limit = error.validator_value
    instance = error.instance
    messages = {
        "minimum": f"must be {limit} or more, got {_show(instance)}",
        "exclusiveMinimum": f"must be more than {limit}, got {_show(instance)}",
        "maximum": f"must be {limit} or less, got {_show(instance)}",
        "exclusiveMaximum": f"must be less than {limit}, got {_show(instance)}",
        "multipleOf": f"must be a multiple of {limit}, got {_show(instance)}",
    }
    if keyword in messages:
        return messages[keyword], None

    sized = {
        "minItems": ("at least", "item"),
        "maxItems": ("at most", "item"),
        "minLength": ("at least", "character"),
        "maxLength": ("at most", "character"),
        "minProperties": ("at least", "key"),
        "maxProperties": ("at most", "key"),
    }
    if keyword not in sized or not isinstance(limit, int):
        return None
    if keyword in ("minItems", "minLength", "minProperties") and limit == 1:
        return "must not be empty", None
    bound, unit = sized[keyword]
    size = len(instance) if hasattr(instance, "__len__") else 0
    return f"must contain {bound} {_count(limit, unit)}, got {size}", None


# -- wording helpers ---------------------------------------------------------------------

#: JSON Schema type names as YAML users know them.
_TYPE_NAMES = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "null": "null",
}


def _describe_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    """Format a value for a message the way YAML users read it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return repr(value)
    return _describe_type(value)


def _with_article(phrase: str) -> str:
    if not phrase or phrase.startswith("null"):
        return phrase
    article = "an" if phrase[0] in "aeiou" else "a"
    return f"{article} {phrase}"


def _join(items: Sequence[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def join_quoted(items: Sequence[str], conjunction: str) -> str:
    """Join the reprs of ``items`` as in "'a', 'b' or 'c'"."""
    return _join([repr(item) for item in items], conjunction)


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def _did_you_mean(word: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1)
    return f"did you mean {_show(close[0])}?" if close else None
