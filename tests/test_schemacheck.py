"""Tests for pipeline.schemacheck: the fast check gives jsonschema's verdict or declines.

Each keyword case compares the compiled check with jsonschema's Draft202012Validator on
one small schema, and a schema with a keyword that the check does not implement must get
no check. tests/test_schema.py compares the two on the full pipeline schema.
"""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.schemacheck import DRAFT_2020_12_KEYWORDS, compile_fast_check

#: (schema, instance) pairs covering each keyword the fast check implements.
KEYWORD_CASES: list[tuple[Any, Any]] = [
    ({"type": "integer"}, 2.0),
    ({"type": "integer"}, 2.5),
    ({"type": "integer"}, True),
    ({"type": "number"}, False),
    ({"type": ["string", "null"]}, None),
    ({"type": "object"}, []),
    ({"enum": [1, "a"]}, True),
    ({"enum": [1, "a"]}, 1.0),
    ({"enum": [[1], {"a": True}]}, {"a": 1}),
    ({"enum": [[1], {"a": True}]}, {"a": True}),
    ({"const": False}, 0),
    ({"const": [1, 2]}, [1, 2]),
    ({"uniqueItems": True}, [1, True]),
    ({"uniqueItems": True}, [1, 1.0]),
    ({"uniqueItems": True}, [{"a": 1}, {"a": 1}]),
    ({"uniqueItems": True}, ["a", "b"]),
    ({"multipleOf": 0.1}, 0.3),
    ({"multipleOf": 3}, 9),
    ({"multipleOf": 3}, 10),
    ({"multipleOf": 0.5}, 1e308),
    ({"pattern": "b"}, "abc"),
    ({"pattern": "^b"}, "abc"),
    ({"pattern": "^b"}, 5),
    ({"minimum": 1, "exclusiveMaximum": 3}, 3),
    ({"minimum": 1, "exclusiveMaximum": 3}, 2),
    ({"maximum": 1}, True),
    ({"minLength": 2}, "é"),
    ({"maxItems": 1}, [1, 2]),
    ({"minProperties": 1}, {}),
    ({"required": ["a"]}, {"b": 1}),
    ({"required": ["a"]}, "a"),
    ({"dependentRequired": {"a": ["b"]}}, {"a": 1}),
    ({"dependentRequired": {"a": ["b"]}}, {"b": 1}),
    ({"properties": {"a": {"type": "string"}}}, {"a": 1}),
    ({"patternProperties": {"^x": {"type": "string"}}}, {"xa": 1}),
    ({"patternProperties": {"^x": True}, "additionalProperties": False}, {"xa": 1, "y": 2}),
    ({"additionalProperties": {"type": "string"}}, {"a": "b"}),
    ({"propertyNames": {"maxLength": 1}}, {"ab": 1}),
    ({"items": {"type": "string"}}, ["a", 1]),
    ({"prefixItems": [{"type": "string"}], "items": False}, ["a"]),
    ({"prefixItems": [{"type": "string"}], "items": False}, ["a", 1]),
    ({"contains": {"type": "string"}}, [1, 2]),
    ({"contains": {"type": "string"}, "minContains": 2}, ["a", 1, "b"]),
    ({"contains": {"type": "string"}, "maxContains": 1}, ["a", "b"]),
    ({"allOf": [{"minimum": 1}, {"maximum": 3}]}, 4),
    ({"anyOf": [{"type": "string"}, {"minimum": 3}]}, 2),
    ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 2),
    ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 2.5),
    ({"not": {"type": "string"}}, "a"),
    ({"if": {"minimum": 5}, "then": {"multipleOf": 5}, "else": {"maximum": 0}}, 7),
    ({"if": {"minimum": 5}, "then": {"multipleOf": 5}, "else": {"maximum": 0}}, 3),
    ({"dependentSchemas": {"a": {"required": ["b"]}}}, {"a": 1}),
    ({"$ref": "#/$defs/s", "$defs": {"s": {"type": "string"}}}, 1),
    ({"$ref": "#/$defs/tree", "$defs": {"tree": {"type": "array", "items": {"$ref": "#"}}}}, [[1]]),
    ({"$ref": "#/$defs/tree", "$defs": {"tree": {"type": "array", "items": {"$ref": "#"}}}}, [[]]),
    ({"format": "email"}, "not an address"),
    (
        {"properties": {"a": True}, "allOf": [{"properties": {"b": True}}],
         "unevaluatedProperties": False},
        {"a": 1, "b": 2},
    ),
    (
        {"properties": {"a": True}, "allOf": [{"properties": {"b": True}}],
         "unevaluatedProperties": False},
        {"a": 1, "c": 2},
    ),
    (
        {"anyOf": [{"properties": {"a": True}}, {"properties": {"b": True}, "required": ["b"]}],
         "unevaluatedProperties": False},
        {"a": 1, "b": 2},
    ),
    (
        {"oneOf": [{"properties": {"a": True}, "required": ["a"]},
                   {"properties": {"b": True}, "required": ["b"]}],
         "unevaluatedProperties": False},
        {"a": 1, "b": 2},
    ),
    (
        {"if": {"properties": {"k": {"const": 1}}}, "then": {"properties": {"t": True}},
         "else": {"properties": {"e": True}}, "unevaluatedProperties": False},
        {"k": 2, "t": 1},
    ),
    (
        {"if": {"properties": {"k": {"const": 1}}}, "then": {"properties": {"t": True}},
         "unevaluatedProperties": False},
        {"k": 1, "t": 1},
    ),
    (
        {"$ref": "#/$defs/base", "unevaluatedProperties": {"type": "integer"},
         "$defs": {"base": {"properties": {"a": {"type": "string"}}}}},
        {"a": "x", "b": 2},
    ),
    (
        {"$ref": "#/$defs/base", "unevaluatedProperties": {"type": "integer"},
         "$defs": {"base": {"properties": {"a": {"type": "string"}}}}},
        {"a": "x", "b": "y"},
    ),
    (
        {"dependentSchemas": {"a": {"properties": {"b": True}}}, "properties": {"a": True},
         "unevaluatedProperties": False},
        {"a": 1, "b": 2},
    ),
    (
        {"not": {"properties": {"a": {"type": "string"}}}, "unevaluatedProperties": False},
        {"a": 1},
    ),
    (True, 1),
    (False, 1),
]


@pytest.mark.parametrize(("schema", "instance"), KEYWORD_CASES)
def test_fast_check_matches_jsonschema_per_keyword(schema: Any, instance: Any) -> None:
    fast = compile_fast_check(schema if isinstance(schema, dict) else {"allOf": [schema]})
    assert fast is not None
    expected = Draft202012Validator(schema).is_valid(instance)
    assert (fast.check(instance) is not None) == expected


def test_fast_check_cases_include_both_verdicts() -> None:
    verdicts = {Draft202012Validator(s).is_valid(i) for s, i in KEYWORD_CASES}
    assert verdicts == {True, False}


@pytest.mark.parametrize(
    "schema",
    [
        {"unevaluatedItems": False},
        {"$dynamicRef": "#meta"},
        {"properties": {"a": {"$id": "https://example.com/a", "type": "string"}}},
        {"$ref": "https://example.com/other.json"},
    ],
)
def test_fast_check_declines_unsupported(schema: dict[str, Any]) -> None:
    assert compile_fast_check(schema) is None


def test_draft_2020_12_keywords_match_jsonschema() -> None:
    # A keyword that jsonschema applies but the list lacks would be ignored by the
    # fast check, which could then accept a document that jsonschema rejects.
    assert frozenset(Draft202012Validator.VALIDATORS) == DRAFT_2020_12_KEYWORDS
