"""Tests of the command analysis provider with real subprocesses."""

from __future__ import annotations

import math
import shlex
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers.providers import provider_context
from pipeline.analysis import (
    ERROR,
    SUCCESSFUL,
    AnalysisError,
    MeasurementRequest,
    run_analysis,
)
from pipeline.builtin import command_provider as plugin
from pipeline.builtin.command_provider import CommandProviderError, parse_output

PYTHON = shlex.quote(sys.executable)


class _Empty:
    """An empty plugin, because provider_context registers one."""


def measure(tmp_path: Path, command: Any, args: dict[str, str] | None = None) -> Any:
    context = provider_context({}, _Empty(), file=tmp_path / "x.yml")
    provider = plugin.shipline_make_provider(name="command", options={"command": command},
                                             context=context)
    assert provider is not None
    request = MeasurementRequest("cmd", canary_version="2", stable_version="1",
                                 endpoint=None, timeout=30.0, args=args or {})
    return provider.measure(request, threading.Event())["result"]


def printing(text: str) -> str:
    """Return a command line that prints ``text``; braces are doubled, as templates need."""
    command = f"{PYTHON} -c {shlex.quote(f'print({text!r})')}"
    return command.replace("{", "{{").replace("}", "}}")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("0.25", 0.25),
        ("[1, 2]", [1, 2]),
        ('{"p99": 210}', {"p99": 210}),
        ("null", None),
        ("", None),
    ],
)
def test_command_provider_output(tmp_path: Path, output: str, expected: Any) -> None:
    assert measure(tmp_path, printing(output)) == expected


def test_command_provider_nan_is_no_data(tmp_path: Path) -> None:
    assert measure(tmp_path, printing("NaN")) is None


def test_parse_output_nan_spellings() -> None:
    assert math.isnan(parse_output("[NaN]")[0])
    assert parse_output("nan\n") is None
    assert parse_output("-nan") is None


def test_command_provider_placeholders_stay_one_argument(tmp_path: Path) -> None:
    script = "import json, sys; print(json.dumps(sys.argv[1:]))"
    command = [sys.executable, "-c", script, "{canary_version}", "{service}"]

    result = measure(tmp_path, command, {"canary_version": "2", "service": "a b; rm x"})

    assert result == ["2", "a b; rm x"]


def test_command_provider_runs_in_pipeline_folder(tmp_path: Path) -> None:
    (tmp_path / "value.txt").write_text("42\n", encoding="utf-8")
    script = "print(open('value.txt').read())"

    assert measure(tmp_path, [sys.executable, "-c", script]) == 42


def test_command_provider_exit_code_is_measurement_error(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('query failed'); sys.exit(3)"]

    with pytest.raises(CommandProviderError) as caught:
        measure(tmp_path, command)

    assert str(caught.value) == "command failed: exit code 3: query failed"


def test_command_provider_not_found_ends_analysis(tmp_path: Path) -> None:
    template = {"provider": "command", "command": "./no-such-script", "success": "result > 0"}
    context = provider_context({"cmd": template}, plugin, file=tmp_path / "x.yml")

    result = run_analysis("cmd", context, stable_version=None, canary_version="2",
                          endpoint=None)

    assert result.verdict == ERROR
    assert len(result.measurements) == 1
    assert result.message.startswith("invalid 'command': ")


def test_command_provider_in_analysis(tmp_path: Path) -> None:
    template = {"provider": "command", "command": printing("0.001"), "success": "result < 0.01"}
    context = provider_context({"cmd": template}, plugin, file=tmp_path / "x.yml")

    result = run_analysis("cmd", context, stable_version=None, canary_version="2",
                          endpoint=None)

    assert result.verdict == SUCCESSFUL


def test_parse_output_rejects_text() -> None:
    with pytest.raises(CommandProviderError) as caught:
        parse_output("error rate: high\n")

    assert str(caught.value) == "command printed 'error rate: high', expected JSON or a number"


def test_command_provider_invalid_option(tmp_path: Path) -> None:
    context = provider_context({}, _Empty(), file=tmp_path / "x.yml")

    with pytest.raises(AnalysisError) as caught:
        plugin.shipline_make_provider(name="command", options={"command": []}, context=context)

    assert str(caught.value) == (
        "invalid 'command': expected a command line or a list of arguments, got []"
    )
