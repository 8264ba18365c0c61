"""Dotenv reports within GitLab's rules."""

from __future__ import annotations

from pipeline.dotenv import (
    MAX_DOTENV_BYTES,
    MAX_DOTENV_VARIABLES,
    dotenv_key,
    render_dotenv,
)


def test_dotenv_key_upper_and_underscores() -> None:
    assert dotenv_key("deployed-version") == "SHIPLINE_DEPLOYED_VERSION"
    assert dotenv_key("a.b c/é") == "SHIPLINE_A_B_C__"


def test_render_dotenv_lines_in_order() -> None:
    report = render_dotenv({"exit-code": "0", "outcome": "passed", "empty": ""})

    assert report.text == "SHIPLINE_EXIT_CODE=0\nSHIPLINE_OUTCOME=passed\nSHIPLINE_EMPTY=\n"
    assert report.problems == []


def test_render_dotenv_value_kept_as_is() -> None:
    report = render_dotenv({"url": "https://x.example/?a=b&c='d' #e"})

    assert report.text == "SHIPLINE_URL=https://x.example/?a=b&c='d' #e\n"


def test_render_dotenv_strips_spaces() -> None:
    assert render_dotenv({"v": " \t1.2 "}).text == "SHIPLINE_V=1.2\n"


def test_render_dotenv_line_break_left_out() -> None:
    report = render_dotenv({"a": "1", "b": "x\nC=2", "c": "y\rz"})

    assert report.text == "SHIPLINE_A=1\n"
    assert report.problems == [
        "output 'b' left out of the dotenv report: GitLab does not support values with "
        "line breaks",
        "output 'c' left out of the dotenv report: GitLab does not support values with "
        "line breaks",
    ]


def test_render_dotenv_duplicate_key_left_out() -> None:
    report = render_dotenv({"a-b": "1", "a_b": "2"})

    assert report.text == "SHIPLINE_A_B=1\n"
    assert report.problems == [
        "output 'a_b' left out of the dotenv report: its key SHIPLINE_A_B is already used "
        "by another output",
    ]


def test_render_dotenv_size_limit() -> None:
    big = "x" * 3000
    report = render_dotenv({"a": big, "b": big, "c": "1"})

    assert report.text == f"SHIPLINE_A={big}\nSHIPLINE_C=1\n"
    assert len(report.text.encode("utf-8")) <= MAX_DOTENV_BYTES
    assert report.problems == [
        "output 'b' left out of the dotenv report: the file would exceed GitLab's limit "
        "of 5120 bytes",
    ]


def test_render_dotenv_size_counts_bytes() -> None:
    value = "é" * 2600
    report = render_dotenv({"a": value})

    assert report.text == ""
    assert len(report.problems) == 1


def test_render_dotenv_variable_limit() -> None:
    outputs = {f"o{number}": "1" for number in range(MAX_DOTENV_VARIABLES + 2)}
    report = render_dotenv(outputs)

    assert report.text.count("\n") == MAX_DOTENV_VARIABLES
    assert report.problems[0] == (
        "output 'o20' left out of the dotenv report: the report already has 20 variables"
    )


def test_render_dotenv_long_key_left_out() -> None:
    report = render_dotenv({"k" * 300: "1"})

    assert report.text == ""
    assert report.problems == [
        f"output {'k' * 300!r} left out of the dotenv report: its key is longer than "
        "GitLab's limit of 255 characters",
    ]
