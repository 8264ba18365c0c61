"""The SQLite backend: file handling, damaged files, busy databases and crashes."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.exitcodes import ExitCode
from pipeline.state import (
    DeploymentOutcome,
    StateBusyError,
    StateConnectionError,
    StateCorruptError,
    StateSchemaError,
)
from pipeline.state.sqlite import SqliteStore, create_database_file

HERE = Path(__file__).parent


def fingerprint(path: Path) -> tuple[str, int]:
    """Return the SHA-256 and modification time of a file, to show it was not written."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def fill(path: Path, deployments: int) -> None:
    with SqliteStore(path, FakeClock()) as store:
        for index in range(deployments):
            deployment = store.start_deployment(
                pipeline="shop", environment="production", version=f"1.{index}",
                previous_version=None, strategy="rolling",
            )
            store.append_journal(deployment.id, stage="s", step="d", operation="deploy",
                                 instances=[f"web-{n}" for n in range(50)], version="1")


def test_sqlite_creates_file_and_directory(tmp_path: Path):
    path = tmp_path / ".shipline" / "state.db"

    with SqliteStore(path, FakeClock()):
        pass

    assert path.is_file()


def test_sqlite_uses_wal_mode(tmp_path: Path):
    path = tmp_path / "state.db"
    SqliteStore(path, FakeClock()).close()

    with sqlite3.connect(path) as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]

    assert mode == "wal"


def test_sqlite_garbage_file_untouched(tmp_path: Path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    before = fingerprint(path)

    with pytest.raises(StateCorruptError) as raised:
        SqliteStore(path, FakeClock())

    assert str(raised.value) == (
        f"state database {path} cannot be read (file is not a database): the file was "
        f"left as it is; restore it from a backup, or move it away to start a new history"
    )
    assert raised.value.exit_code == ExitCode.INVALID
    assert fingerprint(path) == before


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_sqlite_truncated_file_untouched(tmp_path: Path, fraction: float):
    path = tmp_path / "state.db"
    fill(path, 200)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    before = fingerprint(path)

    with pytest.raises(StateCorruptError) as raised:
        SqliteStore(path, FakeClock())

    assert str(raised.value) == (
        f"state database {path} cannot be read (database disk image is malformed): the "
        f"file was left as it is; restore it from a backup, or move it away to start a "
        f"new history"
    )
    assert raised.value.exit_code == ExitCode.INVALID
    assert fingerprint(path) == before


def test_sqlite_empty_file_untouched(tmp_path: Path):
    path = tmp_path / "state.db"
    path.touch()

    with pytest.raises(StateCorruptError) as raised:
        SqliteStore(path, FakeClock())

    assert str(raised.value) == (
        f"state database {path} is an empty file (0 bytes), so it contains no history: "
        f"the file was left as it is; restore it from a backup, or delete it to start a "
        f"new history"
    )
    assert raised.value.exit_code == ExitCode.INVALID
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_sqlite_new_file_has_header(tmp_path: Path):
    path = tmp_path / "state.db"

    create_database_file(path)
    first = path.read_bytes()
    create_database_file(path)

    assert first.startswith(b"SQLite format 3\x00")
    assert path.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.db"]


def test_sqlite_header_only_file_untouched(tmp_path: Path):
    path = tmp_path / "state.db"
    fill(path, 1)
    path.write_bytes(path.read_bytes()[:60])
    before = fingerprint(path)

    with pytest.raises(StateCorruptError):
        SqliteStore(path, FakeClock())

    assert fingerprint(path) == before


def test_sqlite_directory_path_rejected(tmp_path: Path):
    with pytest.raises(StateConnectionError) as raised:
        SqliteStore(tmp_path, FakeClock())

    assert str(raised.value) == (
        f"state database {tmp_path} is a directory: point --state at a file"
    )
    assert raised.value.exit_code == ExitCode.INVALID


def test_sqlite_parent_is_file_rejected(tmp_path: Path):
    (tmp_path / "plain").write_text("x", encoding="utf-8")
    path = tmp_path / "plain" / "state.db"

    with pytest.raises(StateConnectionError) as raised:
        SqliteStore(path, FakeClock())

    assert str(raised.value) == (
        f"cannot create the directory of state database {path}: "
        f"{tmp_path / 'plain'} is not a directory"
    )


def test_sqlite_busy_database_exits_locked(tmp_path: Path):
    path = tmp_path / "state.db"
    SqliteStore(path, FakeClock()).close()
    store = SqliteStore(path, FakeClock(), busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StateBusyError) as raised:
            store.acquire_lock("production", "job-1", lease=60)
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert str(raised.value) == (
        f"state database {path} is busy: another process kept it locked for more than "
        f"0.05 s; try again"
    )
    assert raised.value.exit_code == ExitCode.LOCKED
    assert store.lock_status("production") is None
    store.close()


def test_sqlite_failed_transaction_leaves_nothing(tmp_path: Path):
    store = SqliteStore(tmp_path / "state.db", FakeClock())
    deployment = store.start_deployment(pipeline="shop", environment="production",
                                        version="1.1", previous_version=None,
                                        strategy="rolling")

    with pytest.raises(TypeError):
        store.append_journal(deployment.id, stage="s", step="d", operation="deploy",
                             instances=["web-1"], version="1.1",
                             details={"bad": object()})  # type: ignore[dict-item]

    assert store.journal(deployment.id) == []
    store.close()


@pytest.mark.parametrize("rounds", [1, 7, 25])
def test_sqlite_survives_sigkill_during_writes(tmp_path: Path, rounds: int):
    path = tmp_path / "state.db"
    writer = subprocess.Popen([sys.executable, str(HERE / "write_loop.py"), str(path)],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    for _ in range(rounds):
        committed = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)

    with SqliteStore(path, FakeClock()) as store:
        history = store.history("production", limit=1000)
        journals = [store.journal(deployment.id) for deployment in history]

    assert writer.returncode == -signal.SIGKILL
    finished = [d for d in history if d.outcome is DeploymentOutcome.SUCCEEDED]
    assert len(finished) >= committed
    assert len(history) - len(finished) <= 1
    for deployment, journal in zip(history, journals, strict=True):
        assert [entry.seq for entry in journal] == list(range(1, len(journal) + 1))
        if deployment.outcome is DeploymentOutcome.SUCCEEDED:
            assert [entry.done for entry in journal] == [True, True, False]


def test_sqlite_newer_schema_file_untouched(tmp_path: Path):
    path = tmp_path / "state.db"
    fill(path, 3)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE shipline_schema SET version = 1000")
    connection.close()
    before = fingerprint(path)

    with pytest.raises(StateSchemaError):
        SqliteStore(path, FakeClock())

    assert fingerprint(path) == before
