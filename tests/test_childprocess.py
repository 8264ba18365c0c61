"""Tests of pipeline.childprocess: starting commands with posix_spawn or Popen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.childprocess import Child, start_child

PYTHON = sys.executable


def finish(child: Child) -> tuple[int | None, bytes, bytes]:
    """Read both pipes to the end, wait for the exit and close the pipes."""
    out = _read_all(child.stdout)
    err = _read_all(child.stderr)
    code = child.wait(10)
    child.close_pipes()
    return code, out, err


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_start_child_spawn_captures_both_pipes() -> None:
    child = start_child([PYTHON, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])

    code, out, err = finish(child)

    assert code == 0
    assert out == b"out\n"
    assert err == b"err\n"


def test_start_child_other_directory_uses_it(tmp_path: Path) -> None:
    child = start_child(["pwd"], cwd=tmp_path)

    _code, out, _err = finish(child)

    assert out.decode().strip() == str(tmp_path)


def test_start_child_current_directory_by_path() -> None:
    child = start_child(["pwd"], cwd=Path.cwd())

    _code, out, _err = finish(child)

    assert out.decode().strip() == os.getcwd()


def test_start_child_runs_in_own_session() -> None:
    child = start_child([PYTHON, "-c", "import os; print(os.getsid(0), os.getpgid(0))"])

    _code, out, _err = finish(child)

    assert out.split() == [str(child.pid).encode()] * 2


def test_start_child_stdin_is_empty() -> None:
    child = start_child([PYTHON, "-c", "import sys; print(repr(sys.stdin.read()))"])

    _code, out, _err = finish(child)

    assert out == b"''\n"


def test_start_child_restores_sigpipe() -> None:
    # `yes` dies of SIGPIPE once `head` exits; with SIGPIPE ignored it would report
    # write errors instead.
    child = start_child(["sh", "-c", "yes | head -n 1"])

    code, out, err = finish(child)

    assert code == 0
    assert out == b"y\n"
    assert err == b""


def test_start_child_looks_up_path_of_given_environment(tmp_path: Path) -> None:
    script = tmp_path / "only-here"
    script.write_text("#!/bin/sh\necho found\n")
    script.chmod(0o755)

    child = start_child(["only-here"], env={**os.environ, "PATH": str(tmp_path)})

    _code, out, _err = finish(child)

    assert out == b"found\n"


def test_start_child_shares_no_descriptor() -> None:
    read_end, write_end = os.pipe()
    try:
        child = start_child([PYTHON, "-c", f"import os; os.fstat({write_end})"])

        code, _out, err = finish(child)
    finally:
        os.close(read_end)
        os.close(write_end)

    assert code == 1
    assert b"Bad file descriptor" in err


def test_start_child_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        start_child(["no-such-command-for-shipline"])


def test_start_child_not_found_in_other_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        start_child(["no-such-command-for-shipline"], cwd=tmp_path)


def test_child_exit_code_of_signal() -> None:
    child = start_child(["sh", "-c", "kill -TERM $$"])

    code, _out, _err = finish(child)

    assert code == -15


def test_child_wait_times_out_while_running() -> None:
    child = start_child(["sleep", "10"])
    try:
        assert child.wait(0.01) is None
        assert child.poll() is None
    finally:
        os.kill(child.pid, 9)
        child.wait(10)
        child.close_pipes()


def test_child_close_pipes_twice() -> None:
    child = start_child(["true"])
    child.wait(10)

    child.close_pipes()
    child.close_pipes()

    assert (child.stdout, child.stderr) == (-1, -1)
