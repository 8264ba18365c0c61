"""Options shared by the state commands: durations given on the command line."""

from __future__ import annotations

import pytest

from pipeline.cli.stateoptions import duration_argument
from pipeline.errors import UsageError


@pytest.mark.parametrize(("value", "seconds"), [
    ("2", 2.0), ("0", 0.0), ("1.5", 1.5), ("0s", 0.0), ("500ms", 0.5), ("2m", 120.0),
])
def test_stateoptions_duration_accepted(value: str, seconds: float):
    assert duration_argument("--lock-wait", value) == seconds


@pytest.mark.parametrize("value", ["-1", "-5s"])
def test_stateoptions_duration_negative(value: str):
    with pytest.raises(UsageError) as raised:
        duration_argument("--lock-wait", value)

    assert str(raised.value) == (
        f"--lock-wait: {value!r} is negative: give 0 or a longer duration")


@pytest.mark.parametrize("value", ["two", "2 minutes", ""])
def test_stateoptions_duration_rejected(value: str):
    with pytest.raises(UsageError) as raised:
        duration_argument("--lock-wait", value)

    assert str(raised.value) == (
        f"--lock-wait: {value!r} is not a valid duration: use a number of seconds or a "
        f"value like 500ms, 30s, 5m, 1h")


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
