"""Run the real ``minisign`` binary (Debian package ``minisign``) for interop tests.

The binary is not optional: when it is missing the test fails with a message to run
``scripts/install-system-deps``. minisign reads a password from standard input when
that is not a terminal, so passwords go through ``input``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = "minisign"


@dataclass(frozen=True)
class MinisignKeys:
    """Paths of a key pair that the minisign binary generated."""

    secret: Path
    public: Path


def minisign(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``minisign ARGS`` and return the completed process (it is not checked)."""
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail("the minisign binary is missing; run scripts/install-system-deps")
    stdin = None if password is None else f"{password}\n{password}\n"
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def generate(directory: Path, password: str | None = None) -> MinisignKeys:
    """Generate a key pair with minisign, without a password (``-W``) unless one is given."""
    keys = MinisignKeys(directory / "minisign.key", directory / "minisign.pub")
    flags = ["-W"] if password is None else []
    result = minisign("-G", *flags, "-p", str(keys.public), "-s", str(keys.secret),
                      password=password)
    assert result.returncode == 0, result.stderr
    return keys
