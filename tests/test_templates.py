"""Tests for pipeline.templates: placeholders, splitting and shell quoting."""

from __future__ import annotations

import pytest

from pipeline.templates import TemplateError, build_argv, check_template, template_fields

ALL_NAMES = {"instance": "web-1", "version": "1.2", "weight": "20", "slot": "blue"}


def test_build_argv_substitutes_inside_argument() -> None:
    argv = build_argv("deploy.sh --tag=v{version} {instance}", ALL_NAMES)

    assert argv == ("deploy.sh", "--tag=v1.2", "web-1")


def test_build_argv_value_stays_one_argument() -> None:
    argv = build_argv("deploy.sh {version}", {"version": "1.0; rm -rf / $(id)"})

    assert argv == ("deploy.sh", "1.0; rm -rf / $(id)")


def test_build_argv_accepts_list_template() -> None:
    argv = build_argv(["deploy.sh", "{instance} x"], ALL_NAMES)

    assert argv == ("deploy.sh", "web-1 x")


def test_build_argv_literal_braces() -> None:
    argv = build_argv("awk '{{print $1}}' {instance}", ALL_NAMES)

    assert argv == ("awk", "{print $1}", "web-1")


def test_build_argv_unknown_placeholder() -> None:
    with pytest.raises(TemplateError) as caught:
        build_argv("deploy.sh {foo}", ALL_NAMES)

    assert str(caught.value) == (
        "unknown placeholder '{foo}' in command 'deploy.sh {foo}' "
        "(available: instance, version, weight, slot)"
    )


def test_build_argv_unknown_placeholder_with_none_available() -> None:
    with pytest.raises(TemplateError) as caught:
        build_argv("list.sh {instance}", {})

    assert str(caught.value) == (
        "unknown placeholder '{instance}' in command 'list.sh {instance}' (available: none)"
    )


@pytest.mark.parametrize(
    ("template", "shown"),
    [("run {version!r}", "{version!r}"), ("run {version:>5}", "{version:>5}"),
     ("run {a.b}", "{a.b}"), ("run {0}", "{0}")],
)
def test_template_fields_rejects_invalid_placeholder(template: str, shown: str) -> None:
    with pytest.raises(TemplateError) as caught:
        template_fields(template)

    assert str(caught.value) == (
        f"invalid placeholder '{shown}' in command '{template}': placeholders are plain "
        "names such as {instance} (write {{ and }} for literal braces)"
    )


def test_template_fields_rejects_unmatched_brace() -> None:
    with pytest.raises(TemplateError) as caught:
        template_fields("awk '{print}' {instance")

    assert str(caught.value) == (
        "invalid command \"awk '{print}' {instance\": expected '}' before end of string "
        "(write {{ and }} for literal braces)"
    )


def test_template_fields_lists_names_in_order() -> None:
    assert template_fields("x {version} {instance} {version}") == [
        "version", "instance", "version",
    ]


def test_check_template_names_what() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template("http://{host}/", ["instance"], "URL")

    assert str(caught.value) == (
        "unknown placeholder '{host}' in URL 'http://{host}/' (available: instance)"
    )


def test_build_argv_rejects_empty_command() -> None:
    with pytest.raises(TemplateError) as caught:
        build_argv("   ", {})

    assert str(caught.value) == "empty command"


def test_build_argv_rejects_unbalanced_quote() -> None:
    with pytest.raises(TemplateError) as caught:
        build_argv("echo 'oops", {})

    assert str(caught.value) == "invalid command \"echo 'oops\": No closing quotation"


def test_build_argv_shell_quotes_values() -> None:
    argv = build_argv("echo {version} | wc -c", {"version": "a'b; c"}, shell=True)

    assert argv == ("/bin/sh", "-c", "echo 'a'\"'\"'b; c' | wc -c")


def test_build_argv_shell_rejects_list() -> None:
    with pytest.raises(TemplateError) as caught:
        build_argv(["echo", "x"], {}, shell=True)

    assert str(caught.value) == "a command with 'shell: true' must be one string, not a list"


def test_build_argv_same_template_new_values() -> None:
    first = build_argv("deploy.sh {instance}", {"instance": "web-1"})
    second = build_argv("deploy.sh {instance}", {"instance": "web-2"})

    assert first == ("deploy.sh", "web-1")
    assert second == ("deploy.sh", "web-2")
