"""Workflow command formatting and GITHUB_OUTPUT entries."""

from __future__ import annotations

import itertools

import pytest

from pipeline.workflowcommands import (
    command,
    escape_data,
    escape_property,
    mask_values,
    output_entry,
)


def test_escape_data_percent_and_line_breaks() -> None:
    assert escape_data("50% a\r\nb: c, d") == "50%25 a%0D%0Ab: c, d"


def test_escape_data_percent_first() -> None:
    assert escape_data("%0A") == "%250A"


def test_escape_property_colon_and_comma() -> None:
    assert escape_property("a: b, 5%\n") == "a%3A b%2C 5%25%0A"


def test_command_without_properties() -> None:
    assert command("group", "stage deploy") == "::group::stage deploy"
    assert command("endgroup") == "::endgroup::"


def test_command_properties_in_order_empty_left_out() -> None:
    line = command("error", "bad: 1, 2", {"title": "t: x", "file": "", "line": "3"})

    assert line == "::error title=t%3A x,line=3::bad: 1, 2"


def test_mask_values_single_line() -> None:
    assert mask_values("s3cret-value") == ["s3cret-value"]


def test_mask_values_multi_line_adds_lines() -> None:
    assert mask_values("-----BEGIN-----\n  abcdef  \nxy\n") == [
        "-----BEGIN-----\n  abcdef  \nxy\n", "-----BEGIN-----", "abcdef",
    ]


def test_output_entry_heredoc() -> None:
    assert output_entry("deployed-version", "1.2\n3", lambda: "EOF") == (
        "deployed-version<<EOF\n1.2\n3\nEOF\n"
    )


def test_output_entry_delimiter_in_value_replaced() -> None:
    delimiters = iter(["EOF", "EOF2"])

    assert output_entry("out", "a\nEOF\nb", lambda: next(delimiters)) == (
        "out<<EOF2\na\nEOF\nb\nEOF2\n"
    )


def test_output_entry_every_delimiter_taken() -> None:
    with pytest.raises(ValueError) as error:
        output_entry("out", "EOF", lambda: "EOF")

    assert str(error.value) == "output 'out': every delimiter tried occurs in the value"


def test_output_entry_random_delimiters_differ() -> None:
    entries = [output_entry("out", "x") for _ in range(3)]
    delimiters = {entry.split("\n")[0] for entry in entries}

    assert len(delimiters) == 3


@pytest.mark.parametrize("name", ["", "1st", "a b", "a<<b", "a\nb", "é"])
def test_output_entry_invalid_name(name: str) -> None:
    with pytest.raises(ValueError) as error:
        output_entry(name, "x")

    assert str(error.value) == (
        f"output name {name!r} is invalid: use letters, digits, '_' and '-', starting "
        "with a letter or '_'"
    )


def test_output_entry_counts_tries() -> None:
    calls = itertools.count()

    def delimiter() -> str:
        return "EOF" if next(calls) < 9 else "LAST"

    assert output_entry("out", "EOF", delimiter).endswith("\nLAST\n")
