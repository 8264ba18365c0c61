"""The SQLite state backend: one file, for one machine or a state file kept as a CI cache.

The database runs in WAL mode with ``synchronous=FULL``, so a process killed during a
write, or a power cut, loses at most the transaction in flight and leaves a readable
file. Write transactions start with ``BEGIN IMMEDIATE``, which takes the database's
write lock before the first read: two processes that race for an environment's lock
are serialized, and the second one sees the first one's row.

Opening checks the file with ``PRAGMA quick_check`` before anything is written, so a
file that is not an SQLite database, or a truncated or damaged one, is reported
(StateCorruptError) and left as it was.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.clock import Clock
from pipeline.state.errors import (
    StateBusyError,
    StateConnectionError,
    StateCorruptError,
    StateError,
)
from pipeline.state.migrations import Dialect
from pipeline.state.sqlstore import Cursor, SqlStore

logger = logging.getLogger("shipline")

#: The oldest SQLite library with DELETE ... RETURNING, which forced lock releases use.
MIN_SQLITE = (3, 35, 0)

#: Seconds a write waits for another process's write transaction before StateBusyError.
BUSY_TIMEOUT = 30.0

# Error texts of sqlite3_errstr(), which name the result codes on every Python version;
# sqlite3.Error.sqlite_errorname exists only from Python 3.11.
_BUSY_TEXTS = ("database is locked", "database table is locked")
_CORRUPT_TEXTS = ("file is not a database", "database disk image is malformed")


def create_database_file(path: Path) -> None:
    """Create an empty SQLite database in WAL mode at ``path``, whose directory must
    exist, unless a file is already there.

    The database is written to a temporary file in the same directory and then linked
    to ``path``, which fails when another process created ``path`` first. On a file
    system without hard links the bytes are copied into a file opened with O_EXCL.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.new")
    try:
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            # Changing the journal mode writes the database header.
            connection.execute("PRAGMA journal_mode=WAL").fetchall()
        finally:
            connection.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
        except OSError:
            _copy_exclusive(temporary, path)
    except (OSError, sqlite3.Error) as error:
        raise StateConnectionError(f"cannot create state database {path}: {error}") from error
    finally:
        temporary.unlink(missing_ok=True)


def _copy_exclusive(source: Path, target: Path) -> None:
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())


class SqliteStore(SqlStore):
    """The state in the SQLite file ``path``, created with its directory if missing."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, clock: Clock, busy_timeout: float = BUSY_TIMEOUT) -> None:
        super().__init__(clock)
        self.path = Path(path)
        self.location = str(self.path)
        self._busy_timeout = busy_timeout
        self._closed = False
        self._connection = self._connect()
        try:
            self._check_integrity()
            # Before journal_mode=WAL, which writes to a file in another journal mode.
            self._read_schema_version()
            self._configure()
            self._migrate()
        except BaseException:
            self._connection.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StateConnectionError(
                f"the SQLite library of this Python is version {sqlite3.sqlite_version}, but "
                f"the state store needs {'.'.join(map(str, MIN_SQLITE))} or newer: use a "
                f"newer Python build, or a postgresql:// state URL"
            )
        if self.path.is_dir():
            raise StateConnectionError(
                f"state database {self.location} is a directory: point --state at a file"
            )
        parent = self.path.parent
        if parent.exists() and not parent.is_dir():
            raise StateConnectionError(
                f"cannot create the directory of state database {self.location}: "
                f"{parent} is not a directory"
            )
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateConnectionError(
                f"cannot create the directory of state database {self.location}: "
                f"{error.strerror}"
            ) from error

        self._create_or_check_size()
        # mode=rw: never create the file here, so every file this store opens has a header.
        uri = f"file:{quote(str(self.path.absolute()))}?mode=rw"
        try:
            # isolation_level=None: transactions are begun explicitly by _begin.
            return sqlite3.connect(uri, uri=True, timeout=self._busy_timeout,
                                   isolation_level=None)
        except sqlite3.Error as error:
            raise self._translate(error) from error

    def _create_or_check_size(self) -> None:
        """Create a missing database file, or reject an existing empty one.

        SQLite would take a 0-byte file as a new, empty database and write to it. Such a
        file is more often a lost history (an empty CI cache, a failed copy) than a new
        one, so it is rejected and left as it is. The file is created with its header
        already written, so no other process ever sees an empty file that shipline made.
        """
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            create_database_file(self.path)
            return
        except OSError as error:
            raise StateConnectionError(
                f"cannot read state database {self.location}: {error.strerror}") from error
        if size == 0:
            raise StateCorruptError(
                f"state database {self.location} is an empty file (0 bytes), so it contains "
                f"no history: the file was left as it is; restore it from a backup, or "
                f"delete it to start a new history"
            )

    def _check_integrity(self) -> None:
        """Raise StateCorruptError unless quick_check passes. Reads the file and writes nothing."""
        try:
            rows = self._connection.execute("PRAGMA quick_check").fetchall()
        except sqlite3.Error as error:
            raise self._translate(error) from error
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        if problems:
            raise self._corrupt(f"{problems[0]}" + (f" and {len(problems) - 1} more problems"
                                                    if len(problems) > 1 else ""))

    def _configure(self) -> None:
        try:
            self._connection.execute("PRAGMA journal_mode=WAL").fetchall()
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as error:
            raise self._translate(error) from error

    def close(self) -> None:
        # sqlite3 rejects close() from another thread even on a closed connection.
        if not self._closed:
            self._connection.close()
            self._closed = True

    def _begin(self, *, write: bool, key: str | None) -> None:
        self._connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _commit(self) -> None:
        self._connection.execute("COMMIT")

    def _rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self._connection.execute(sql, params)

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def _translate(self, error: Exception) -> StateError:
        text = str(error)
        if any(busy in text for busy in _BUSY_TEXTS):
            return StateBusyError(
                f"state database {self.location} is busy: another process kept it locked "
                f"for more than {self._busy_timeout:g} s; try again"
            )
        if any(corrupt in text for corrupt in _CORRUPT_TEXTS):
            return self._corrupt(text)
        if "unable to open database file" in text:
            return StateConnectionError(
                f"cannot open state database {self.location}: check that the file and its "
                f"directory exist and are readable and writable"
            )
        if "readonly database" in text:
            return StateConnectionError(
                f"state database {self.location} is read-only: make the file and its "
                f"directory writable, since shipline records each run"
            )
        return StateError(f"state database {self.location} failed: {text}")

    def _corrupt(self, detail: str) -> StateCorruptError:
        return StateCorruptError(
            f"state database {self.location} cannot be read ({detail}): the file was left "
            f"as it is; restore it from a backup, or move it away to start a new history"
        )

    def _encode_time(self, moment: datetime) -> str:
        return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")

    def _decode_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def _version_table_exists(self) -> bool:
        row = self._connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shipline_schema'"
        ).fetchone()
        return row is not None
