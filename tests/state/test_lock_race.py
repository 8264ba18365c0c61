"""Processes that race for one environment's lock: exactly one of them gets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RACERS = 4


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_lock_race_has_one_winner(state_url: str, tmp_path: Path, attempt: int):
    go_file = tmp_path / f"go-{attempt}"
    racers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "race_lock.py"), state_url, str(go_file), f"racer-{n}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(RACERS)
    ]
    for racer in racers:
        assert racer.stdout is not None
        line = racer.stdout.readline()
        if line != "ready\n":
            pytest.fail(f"a racer did not start: {line!r} {racer.communicate()[1]}")

    go_file.touch()
    results = [racer.communicate(timeout=60) for racer in racers]

    lines = [stdout.strip() for stdout, _ in results]
    assert [stderr for _, stderr in results] == [""] * RACERS
    assert [racer.returncode for racer in racers] == [0] * RACERS
    assert sum(line.startswith("won ") for line in lines) == 1
    assert sum(line.startswith("held ") for line in lines) == RACERS - 1
