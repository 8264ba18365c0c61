"""Tests for pipeline.checkspec: splitting check specs, estimates and the schema."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.checkspec import CHECK_SCHEMA, estimate_seconds, split_spec


@pytest.mark.parametrize("spec", [{}, {"http": {}, "command": "x"}, {"shell": True}])
def test_split_spec_rejects_wrong_keys(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="a check needs exactly one key, 'http' or 'command'"):
        split_spec(spec)


def test_split_spec_command_string() -> None:
    assert split_spec({"command": "true"}) == ("command", {"command": "true"})


def test_estimate_seconds_http_defaults() -> None:
    assert estimate_seconds({"http": {"url": "http://127.0.0.1/"}}) == 18.0


def test_estimate_seconds_command_defaults() -> None:
    assert estimate_seconds({"command": "true"}) == 60.0


def test_estimate_seconds_with_retries() -> None:
    spec = {"command": {"command": "true", "timeout": "10s", "retries": 3, "backoff": 20}}

    assert estimate_seconds(spec) == 4 * 10 + 20 + 30 + 30


def test_check_schema_is_valid() -> None:
    Draft202012Validator.check_schema(CHECK_SCHEMA)


@pytest.mark.parametrize(
    "spec",
    [{"http": {"url": "http://127.0.0.1/", "status": [200, 204], "timeout": "2s"}},
     {"command": "true"},
     {"command": {"command": "true", "retries": 1, "shell": True}}],
)
def test_check_schema_accepts(spec: dict[str, Any]) -> None:
    assert list(Draft202012Validator(CHECK_SCHEMA).iter_errors(spec)) == []


@pytest.mark.parametrize(
    "spec",
    [{}, {"http": {"url": "x"}, "command": "true"}, {"http": {"url": "x", "retry": 1}},
     {"http": {"url": "x", "timeout": "soon"}}, {"command": {"retries": 1}}],
)
def test_check_schema_rejects(spec: dict[str, Any]) -> None:
    assert list(Draft202012Validator(CHECK_SCHEMA).iter_errors(spec)) != []


def _properties(schema: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(schema, Mapping):
        yield from schema.get("properties", {}).items()
        for value in schema.values():
            yield from _properties(value)
    elif isinstance(schema, (list, tuple)):
        for item in schema:
            yield from _properties(item)


def test_check_schema_documents_every_property() -> None:
    undocumented = [name for name, subschema in _properties(CHECK_SCHEMA)
                    if "title" not in subschema or "description" not in subschema]

    assert undocumented == []
