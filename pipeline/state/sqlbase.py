"""The primitives, transactions and schema handling that every SQL backend shares.

:class:`SqlBase` declares what a backend provides (begin, commit and roll back a
transaction, execute a statement, convert times, turn driver errors into StateError)
and builds transactions and schema migrations on it. :mod:`pipeline.state.sqlstore`
puts the record and lock queries on top.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar

from pipeline.clock import Clock
from pipeline.state.errors import StateError, StateSchemaError
from pipeline.state.migrations import CREATE_VERSION_TABLE, SCHEMA_VERSION, Dialect, pending
from pipeline.state.records import utc_from_timestamp

logger = logging.getLogger("shipline")

_Store = TypeVar("_Store", bound="SqlBase")

#: The transaction key that serializes schema migrations in PostgreSQL.
SCHEMA_KEY = "shipline_schema"


class Cursor(Protocol):
    """The part of a DB-API cursor that the store uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlBase(abc.ABC):
    """A connection to a state database: the backend's primitives, transactions, schema."""

    dialect: Dialect
    location: str

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    # -- primitives of a backend -------------------------------------------------------

    @abc.abstractmethod
    def _begin(self, *, write: bool, key: str | None) -> None:
        """Start a transaction. A write transaction excludes other writers of ``key``."""

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _rollback(self) -> None: ...

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...

    @abc.abstractmethod
    def _driver_errors(self) -> tuple[type[Exception], ...]:
        """Return the exception classes of the driver, which _translate converts."""

    @abc.abstractmethod
    def _translate(self, error: Exception) -> StateError:
        """Return the StateError that explains a driver error to the user."""

    @abc.abstractmethod
    def _encode_time(self, moment: datetime) -> object: ...

    @abc.abstractmethod
    def _decode_time(self, value: Any) -> datetime: ...

    @abc.abstractmethod
    def _version_table_exists(self) -> bool: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- transactions and schema --------------------------------------------------------

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool = False, key: str | None = None) -> Iterator[None]:
        """Run the block in one transaction: commit at the end, roll back on any error.

        Driver errors leave as StateError subclasses, and other exceptions pass unchanged.
        """
        errors = self._driver_errors()
        try:
            self._begin(write=write, key=key)
        except errors as error:
            # PostgreSQL may fail after BEGIN, while waiting for the advisory lock.
            self._quiet_rollback()
            raise self._translate(error) from error

        try:
            yield
            self._commit()
        except errors as error:
            self._quiet_rollback()
            raise self._translate(error) from error
        except BaseException:
            self._quiet_rollback()
            raise

    def _execute_alone(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement as a transaction of its own and return its row count.

        Both backends keep their connection in autocommit mode outside _transaction.
        """
        try:
            return self._execute(sql, params).rowcount
        except self._driver_errors() as error:
            raise self._translate(error) from error

    def _quiet_rollback(self) -> None:
        try:
            self._rollback()
        except self._driver_errors() as error:
            # The error that caused the rollback is the one worth reporting.
            logger.warning("rollback of a state transaction on %s failed: %s",
                           self.location, error)

    def _migrate(self) -> None:
        """Create or upgrade the schema; raise StateSchemaError for a newer one.

        Reads the version first, so an up-to-date database is not written to.
        """
        if self._read_schema_version() == SCHEMA_VERSION:
            return

        with self._transaction(write=True, key=SCHEMA_KEY):
            current = self._schema_version()
            self._check_version(current)
            if not self._version_table_exists():
                self._execute(CREATE_VERSION_TABLE)
                self._execute("INSERT INTO shipline_schema (version) VALUES (0)")
            for migration in pending(current):
                logger.info("migrating the state schema of %s to version %d: %s",
                            self.location, migration.version, migration.description)
                for statement in migration.statements(self.dialect):
                    self._execute(statement)
            self._execute("UPDATE shipline_schema SET version = ?", (SCHEMA_VERSION,))

    def _read_schema_version(self) -> int:
        """Read the schema version in a read-only transaction and raise StateSchemaError if
        it is newer than this shipline understands."""
        with self._transaction():
            current = self._schema_version()
        self._check_version(current)
        return current

    def _schema_version(self) -> int:
        if not self._version_table_exists():
            return 0
        row = self._execute("SELECT version FROM shipline_schema").fetchone()
        return int(row[0]) if row is not None else 0

    def _check_version(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise StateSchemaError(
                f"state database {self.location} has schema version {current}, but this "
                f"shipline understands versions up to {SCHEMA_VERSION}: upgrade shipline, "
                f"or point --state at another database"
            )

    def _now(self) -> datetime:
        return utc_from_timestamp(self._clock.time())

    def _decode_optional_time(self, value: Any) -> datetime | None:
        return None if value is None else self._decode_time(value)
