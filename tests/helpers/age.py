"""Run the real ``age`` and ``age-keygen`` binaries (Debian package ``age``).

age reads a passphrase only from a terminal, so :func:`age_with_passphrase` runs it
on a pseudo-terminal and types the passphrase at each prompt. When a binary is
missing the test fails with a message to run ``scripts/install-system-deps``.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

_PROMPTS = (b"Enter passphrase", b"Confirm passphrase")
_TIMEOUT = 60.0


@dataclass(frozen=True)
class AgeKey:
    """An identity file written by age-keygen and its public key."""

    identity: Path
    recipient: str


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"the {name} binary is missing; run scripts/install-system-deps")
    return path


def age(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``age ARGS`` without a terminal and return the completed process."""
    return subprocess.run([binary("age"), *args], capture_output=True, timeout=_TIMEOUT)


def keygen(folder: Path, name: str = "identity.txt") -> AgeKey:
    """Create an identity with age-keygen and read its public key with ``age-keygen -y``."""
    path = folder / name
    subprocess.run([binary("age-keygen"), "-o", str(path)], check=True, capture_output=True,
                   timeout=_TIMEOUT)
    public = subprocess.run([binary("age-keygen"), "-y", str(path)], check=True,
                            capture_output=True, text=True, timeout=_TIMEOUT)
    return AgeKey(path, public.stdout.strip())


def age_with_passphrase(*args: str, passphrase: str) -> tuple[int, str]:
    """Run ``age ARGS`` on a pseudo-terminal, answering each passphrase prompt.

    Returns the exit code and what age wrote to the terminal.
    """
    executable = binary("age")
    pid, terminal = pty.fork()
    if pid == 0:
        # The child must never return into pytest, even when exec fails.
        try:
            os.execv(executable, [executable, *args])
        finally:
            os._exit(127)

    output = b""
    answered = 0
    while True:
        ready, _, _ = select.select([terminal], [], [], _TIMEOUT)
        if not ready:
            os.kill(pid, 9)
            break
        try:
            data = os.read(terminal, 1024)
        except OSError:
            break
        if not data:
            break
        output += data
        prompts = sum(output.count(prompt) for prompt in _PROMPTS)
        while answered < prompts:
            os.write(terminal, passphrase.encode() + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
