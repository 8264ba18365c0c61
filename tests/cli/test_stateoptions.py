"""Options shared by the state commands: durations such as --lock-wait."""

from __future__ import annotations

import argparse

import pytest

from pipeline.durations import duration_option


@pytest.mark.parametrize(("value", "seconds"), [
    ("2", 2.0), ("0", 0.0), ("1.5", 1.5), ("0s", 0.0), ("500ms", 0.5), ("2m", 120.0),
])
def test_duration_option_accepted(value: str, seconds: float):
    assert duration_option(value) == seconds


@pytest.mark.parametrize("value", ["-1", "-5s"])
def test_duration_option_negative(value: str):
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        duration_option(value)

    assert str(raised.value) == f"{value!r} is negative: give 0 or a longer duration"


@pytest.mark.parametrize("value", ["two", "2 minutes", ""])
def test_duration_option_rejected(value: str):
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        duration_option(value)

    assert str(raised.value) == (
        f"{value.strip()!r} is not a valid duration: use a number of seconds or a value like "
        "500ms, 30s, 5m, 1h")


def test_stateoptions_lock_wait_bare_number(shipline_cli, tmp_path, write_pipeline):
    write_pipeline("""\
        version: 1
        name: shop
        stages:
          - name: check
            steps:
              - gate: {uses: command, command: "true"}
        """)

    for value in ("2", "0"):
        result = shipline_cli("run", "--lock-wait", value, cwd=tmp_path)

        assert result.exit_code == 0, result.stderr
