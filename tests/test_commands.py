from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import commands
from pipeline.cancel import CancelEvent
from pipeline.commands import last_line, run_command
from pipeline.templates import TemplateError

PYTHON = shlex.quote(sys.executable)
PRINT_ARGS = f"{PYTHON} -c 'import sys; print(sys.argv[1:])'"


def group_members(group: int, within: float = 0.5) -> list[int]:
    """Return the live (not zombie) processes of process group ``group``, from /proc.

    Waits up to ``within`` seconds for the group to empty: a killed process can still
    be tearing down for a moment after it closed its output pipes.
    """
    deadline = time.monotonic() + within
    members = _live_members(group)
    while members and time.monotonic() < deadline:
        time.sleep(0.01)
        members = _live_members(group)
    return members


def _live_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, pgid = fields[0], int(fields[2])
        if pgid == group and state != "Z":
            members.append(int(entry.name))
    return members


# -- running -----------------------------------------------------------------------------


def test_run_command_passes_value_as_one_argument() -> None:
    value = "two words; echo injected $(id) `id`"

    result = run_command(PRINT_ARGS + " {version}", {"version": value}, timeout=10,
                         cancel=None)

    assert result.ok
    assert result.output == f"{[value]!r}\n"


def test_run_command_shell_mode_keeps_value_literal() -> None:
    result = run_command("printf '%s\\n' {version} | tr a-z A-Z", {"version": "x; echo y"},
                         timeout=10, cancel=None, shell=True)

    assert result.ok
    assert result.output == "X; ECHO Y\n"


def test_run_command_shell_mode_runs_shell_syntax() -> None:
    result = run_command("echo a && echo b", {}, timeout=10, cancel=None, shell=True)

    assert result.output == "a\nb\n"


def test_run_command_exit_code_fails() -> None:
    result = run_command("sh -c 'echo working; echo disk full >&2; exit 3'", {}, timeout=10,
                         cancel=None)

    assert not result.ok
    assert result.exit_code == 3
    assert result.message == "exit code 3: disk full"
    assert result.output == "working\ndisk full\n"
    assert result.stdout == "working\n"


def test_run_command_success_message() -> None:
    result = run_command("true", {}, timeout=10, cancel=None)

    assert result.ok
    assert result.message == "exit code 0"


def test_run_command_not_found() -> None:
    result = run_command("no-such-command-for-shipline {instance}", {"instance": "a"},
                         timeout=10, cancel=None)

    assert not result.ok
    assert result.not_found
    assert result.exit_code is None
    assert result.message == "command not found: 'no-such-command-for-shipline'"


def test_run_command_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)

    result = run_command(str(script), {}, timeout=10, cancel=None)

    assert not result.ok
    assert not result.not_found
    assert result.message == f"permission denied: '{script}'"


def test_run_command_timeout_kills_process_group() -> None:
    started = time.monotonic()

    result = run_command("sh -c 'sleep 60 & sleep 60'", {}, timeout=0.2, cancel=None)

    assert time.monotonic() - started < 1.0
    assert result.timed_out
    assert result.exit_code is None
    assert result.message == "timed out after 200ms"
    assert result.pid is not None
    assert group_members(result.pid) == []


def test_run_command_timeout_kills_sleep() -> None:
    started = time.monotonic()

    result = run_command("sleep 60", {}, timeout=0.2, cancel=None)

    assert time.monotonic() - started < 1.0
    assert result.timed_out
    assert result.pid is not None
    assert group_members(result.pid) == []


def test_run_command_timeout_kills_process_ignoring_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(commands, "KILL_GRACE", 0.3)
    started = time.monotonic()

    result = run_command("sh -c 'trap \"\" TERM; echo ready; sleep 60'", {}, timeout=0.3,
                         cancel=None)

    assert time.monotonic() - started < 1.5
    assert result.timed_out
    assert result.output == "ready\n"
    assert result.pid is not None
    assert group_members(result.pid) == []


@pytest.mark.parametrize("make_event", [threading.Event, CancelEvent])
def test_run_command_cancel_stops_command(make_event: Callable[[], threading.Event]) -> None:
    cancel = make_event()
    timer = threading.Timer(0.1, cancel.set)
    timer.start()
    started = time.monotonic()

    result = run_command("sleep 60", {}, timeout=30, cancel=cancel)

    assert time.monotonic() - started < 1.0
    assert result.cancelled
    assert not result.timed_out
    assert result.message == "cancelled"
    assert result.pid is not None
    assert group_members(result.pid) == []


@pytest.mark.parametrize("make_event", [threading.Event, CancelEvent])
def test_run_command_cancel_set_before_start(make_event: Callable[[], threading.Event]) -> None:
    cancel = make_event()
    cancel.set()

    result = run_command("sleep 60", {}, timeout=30, cancel=cancel)

    assert result.cancelled
    assert not result.ok


def test_run_command_ignores_stale_cancel_wakeup() -> None:
    cancel = CancelEvent()
    cancel.fileno()
    cancel.set()
    # The state a set() racing with clear() can leave: the pipe readable, the event clear.
    threading.Event.clear(cancel)

    result = run_command("sh -c 'sleep 0.3; echo done'", {}, timeout=10, cancel=cancel)

    assert result.ok, result.message
    assert result.output == "done\n"


def test_run_command_keeps_output_tail() -> None:
    script = "import sys; sys.stdout.write('a' * 200000 + 'END\\n'); sys.stdout.flush()"

    result = run_command([sys.executable, "-c", script], {}, timeout=10, cancel=None,
                         max_output=1000)

    assert result.ok
    assert result.output.startswith("[... 199004 bytes of earlier output omitted ...]\n")
    assert result.output.endswith("a" * 996 + "END\n")
    assert result.stdout_truncated


def test_run_command_large_output_on_both_pipes() -> None:
    script = (
        "import sys\n"
        "for i in range(2000):\n"
        "    sys.stdout.write('o' * 1000 + '\\n'); sys.stderr.write('e' * 1000 + '\\n')\n"
    )

    result = run_command([sys.executable, "-c", script], {}, timeout=10, cancel=None)

    assert result.ok
    assert len(result.output.encode()) < 2 * commands.DEFAULT_MAX_OUTPUT
    assert result.output.startswith("[... ")


def test_run_command_returns_while_background_process_holds_output() -> None:
    started = time.monotonic()

    result = run_command("sh -c 'sleep 1 & echo started'", {}, timeout=10, cancel=None)

    assert time.monotonic() - started < 0.9
    assert result.ok
    assert result.output == "started\n"


def test_run_command_background_output_gets_drain_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With a CancelEvent, the poll waits up to a cancel check between wake-ups. Made
    # long here, it shows whether the drain grace or the cancel check ends the wait.
    monkeypatch.setattr(commands, "_CANCEL_CHECK", 30.0)
    started = time.monotonic()

    result = run_command("sh -c 'sleep 20 & echo started'", {}, timeout=60,
                         cancel=CancelEvent())

    elapsed = time.monotonic() - started
    assert result.pid is not None
    os.killpg(result.pid, signal.SIGKILL)
    assert elapsed < 10
    assert result.ok
    assert result.output == "started\n"


def test_run_command_uses_cwd_and_env(tmp_path: Path) -> None:
    result = run_command("sh -c 'pwd; echo $SHIPLINE_TEST_VALUE; echo $HOME'", {},
                         timeout=10, cancel=None, cwd=tmp_path,
                         env={"SHIPLINE_TEST_VALUE": "from env"})

    assert result.output == f"{tmp_path}\nfrom env\n{os.environ.get('HOME', '')}\n"


def test_run_command_missing_cwd(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    result = run_command("true", {}, timeout=10, cancel=None, cwd=missing)

    assert not result.ok
    assert result.message == f"working directory not found: '{missing}'"


def test_run_command_stdin_and_descriptors() -> None:
    # cat ends at once on /dev/null. ls lists the child's own descriptors: 0, 1 and 2,
    # and the one that ls opens to read the folder.
    read_stdin = run_command("cat", {}, timeout=10, cancel=None)
    descriptors = run_command("ls /proc/self/fd", {}, timeout=10, cancel=None)

    assert read_stdin.ok
    assert read_stdin.output == ""
    assert sorted(int(fd) for fd in descriptors.stdout.split())[:3] == [0, 1, 2]
    assert len(descriptors.stdout.split()) == 4


def test_run_command_closes_its_descriptors(tmp_path: Path) -> None:
    before = _pipes_and_pidfds()

    run_command("true", {}, timeout=10, cancel=None)
    run_command("sh -c 'echo out; echo err >&2; exit 3'", {}, timeout=10, cancel=None)
    run_command("no-such-command-shipline", {}, timeout=10, cancel=None)
    run_command("true", {}, timeout=10, cancel=None, cwd=tmp_path / "missing")
    run_command("sleep 5", {}, timeout=0.1, cancel=None)

    assert _pipes_and_pidfds() == before


def _pipes_and_pidfds() -> int:
    """Count this process's descriptors of the kinds that a command uses."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(("pipe:", "anon_inode:[pidfd]"))
    return count


def test_run_command_cwd_is_file(tmp_path: Path) -> None:
    not_folder = tmp_path / "file"
    not_folder.write_text("", encoding="utf-8")

    result = run_command("true", {}, timeout=10, cancel=None, cwd=not_folder)

    assert not result.ok
    assert result.message == f"working directory is not a folder: '{not_folder}'"


def test_run_command_unknown_placeholder_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    with pytest.raises(TemplateError):
        run_command(f"touch {marker} {{foo}}", {}, timeout=10, cancel=None)

    assert not marker.exists()


def test_run_command_parallel_runs_overlap() -> None:
    results = []

    def run() -> None:
        results.append(run_command("sleep 0.2", {}, timeout=10, cancel=None))

    threads = [threading.Thread(target=run) for _ in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started < 1.0
    assert all(result.ok for result in results)


def test_last_line_skips_blank_lines() -> None:
    assert last_line("first\nsecond  \n\n  \n") == "second"


def test_last_line_cuts_long_line() -> None:
    assert last_line("x" * 300, limit=10) == "xxxxxxx..."


def test_run_command_env_adds_to_base_env() -> None:
    base = {"PATH": os.environ["PATH"], "SHIPLINE_BASE": "base", "SHIPLINE_OVER": "base"}

    result = run_command("sh -c 'echo $SHIPLINE_BASE $SHIPLINE_OVER $HOME'", {}, timeout=10,
                         cancel=None, base_env=base, env={"SHIPLINE_OVER": "added"})

    assert result.output == "base added\n"


def test_run_command_finds_command_on_each_path(tmp_path: Path) -> None:
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        script = folder / "shipline-which-test"
        script.write_text(f"#!/bin/sh\necho {name}\n")
        script.chmod(0o755)

    outputs = [
        run_command("shipline-which-test", {}, timeout=10, cancel=None,
                    env={"PATH": str(tmp_path / name)}).output
        for name in ("first", "second", "first")
    ]

    assert outputs == ["first\n", "second\n", "first\n"]


def test_run_command_relative_path_entry_follows_cwd(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "shipline-relative-test"
    script.write_text("#!/bin/sh\necho relative\n")
    script.chmod(0o755)

    result = run_command("shipline-relative-test", {}, timeout=10, cancel=None,
                         cwd=tmp_path, env={"PATH": "bin"})

    assert result.output == "relative\n"
