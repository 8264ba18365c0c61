"""The PostgreSQL state backend, with psycopg 3: for many runners that deploy the same
environments.

Every statement runs on one connection in explicit transactions. A write transaction
on an environment first takes a transaction-level advisory lock on the environment's
name (``pg_advisory_xact_lock``), so the lock methods read and write the lock row
without another process in between, on any isolation level. Waits for such a lock end
after LOCK_TIMEOUT with StateBusyError. The session time zone is UTC.

When the connection breaks (a server restart, a network loss), the call that meets it
raises StateConnectionError, and the next call opens a new connection. So a heartbeat
keeps renewing its lock after a short outage.

This module imports psycopg, so it is imported only when a PostgreSQL store is opened.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from pipeline.clock import Clock
from pipeline.state.errors import (
    LockHeld,
    StateBusyError,
    StateConnectionError,
    StateError,
)
from pipeline.state.migrations import Dialect
from pipeline.state.records import Lock
from pipeline.state.sqllocks import lease_delta
from pipeline.state.sqlstore import Cursor, SqlStore
from pipeline.state.urlsecrets import redact_url

logger = logging.getLogger("shipline")

#: Seconds to wait for the server to accept a connection.
CONNECT_TIMEOUT = 10

#: Seconds a write waits for another process's write on the same environment.
LOCK_TIMEOUT = 30

#: Times acquire_lock tries again when the lock is released between its two statements.
ACQUIRE_ATTEMPTS = 3

_UPSERT_LOCK = """
WITH previous AS (SELECT owner, expires FROM locks WHERE environment = %s)
INSERT INTO locks (environment, owner, token, acquired, expires, heartbeat)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (environment) DO UPDATE SET
    owner = EXCLUDED.owner, token = EXCLUDED.token, acquired = EXCLUDED.acquired,
    expires = EXCLUDED.expires, heartbeat = EXCLUDED.heartbeat
WHERE locks.expires <= EXCLUDED.acquired
RETURNING (SELECT owner FROM previous), (SELECT expires FROM previous)
"""


class PostgresStore(SqlStore):
    """The state in the PostgreSQL database at ``url``, in the connection's search path."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, clock: Clock, lock_timeout: float = LOCK_TIMEOUT) -> None:
        super().__init__(clock)
        self.location = redact_url(url)
        self._url = url
        self._lock_timeout = lock_timeout
        self._sql_cache: dict[str, str] = {}
        self._closed = False
        self._connection = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._connection.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        """Connect and configure the session. Raises StateConnectionError on failure."""
        url = self._url
        try:
            connection = psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                application_name="shipline",
            )
        except psycopg.ProgrammingError as error:
            # libpq quotes the URL in some of these messages, password included.
            detail = _first_line(error).replace(url, self.location)
            raise StateConnectionError(
                f"invalid state database URL {self.location}: {detail}: write "
                f"postgresql://USER@HOST[:PORT]/DATABASE"
            ) from error
        except psycopg.Error as error:
            raise self._translate(error) from error

        try:
            self._configure(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _reconnect_if_broken(self) -> None:
        """Open a new connection when the last one broke (server restart, network loss).

        Only called before a transaction or statement starts, so no statement whose
        outcome is unknown is sent twice. The call that met the broken connection has
        already raised StateConnectionError.
        """
        if self._closed or not self._connection.broken:
            return
        logger.warning("connection to state database %s was lost, reconnecting",
                       self.location)
        self._connection.close()
        self._connection = self._connect()

    def acquire_lock(self, environment: str, owner: str, lease: float) -> Lock:
        """Take the lock with one INSERT ... ON CONFLICT statement: one round trip.

        PostgreSQL applies the conflict branch atomically: of two sessions that insert
        at once, the second waits for the first to commit and then sees its row, which
        has not expired, so it gets no row back. The CTE reads the replaced lock, for
        the takeover message, from the statement's snapshot.
        """
        now = self._now()
        lock = Lock(environment, owner, uuid.uuid4().hex, now, now + lease_delta(lease), now)
        for _ in range(ACQUIRE_ATTEMPTS):
            row = self._fetch_alone(_UPSERT_LOCK, (environment, environment, owner, lock.token,
                                                   now, lock.expires, now))
            if row is not None:
                self._log_acquired(lock, self._replaced_lock(environment, row))
                return lock
            current = self.lock_status(environment)
            if current is not None:
                raise LockHeld(current)
            # The holder released the lock between the two statements: try again.
        raise StateBusyError(
            f"state database {self.location} is busy: the lock of '{environment}' changed "
            f"hands {ACQUIRE_ATTEMPTS} times while shipline tried to take it; try again"
        )

    def _replaced_lock(self, environment: str, row: Sequence[Any]) -> Lock | None:
        """Return the expired lock that the upsert replaced, from its RETURNING row."""
        if row[0] is None:
            return None
        expires = self._decode_time(row[1])
        # Only the owner and the expiry are read back, because only the log uses them.
        return Lock(environment, row[0], "", expires, expires, expires)

    def _fetch_alone(self, sql: str, params: Sequence[object]) -> Any:
        self._reconnect_if_broken()
        try:
            return self._connection.execute(sql, params).fetchone()
        except psycopg.Error as error:
            raise self._translate(error) from error

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        try:
            connection.execute("SET TIME ZONE 'UTC'")
            milliseconds = max(1, round(self._lock_timeout * 1000))
            connection.execute(f"SET lock_timeout = {milliseconds}")
        except psycopg.Error as error:
            raise self._translate(error) from error

    def close(self) -> None:
        self._closed = True
        self._connection.close()

    def _execute_alone(self, sql: str, params: Sequence[object] = ()) -> int:
        self._reconnect_if_broken()
        return super()._execute_alone(sql, params)

    def _begin(self, *, write: bool, key: str | None) -> None:
        self._reconnect_if_broken()
        self._connection.execute("BEGIN")
        if write and key is not None:
            self._connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                     (key,))

    def _commit(self) -> None:
        self._connection.execute("COMMIT")

    def _rollback(self) -> None:
        if not self._connection.closed and not self._connection.broken:
            self._connection.execute("ROLLBACK")

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        converted = self._sql_cache.get(sql)
        if converted is None:
            # The shared SQL uses "?" placeholders and contains no "%" or "?" otherwise.
            converted = self._sql_cache[sql] = sql.replace("?", "%s")
        return self._connection.execute(converted, tuple(params))

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        return (psycopg.Error,)

    def _translate(self, error: Exception) -> StateError:
        detail = _first_line(error)
        if isinstance(error, (pg_errors.LockNotAvailable, pg_errors.SerializationFailure,
                              pg_errors.DeadlockDetected)):
            return StateBusyError(
                f"state database {self.location} is busy: another process kept an "
                f"environment locked for more than {self._lock_timeout:g} s; try again"
            )
        if isinstance(error, psycopg.OperationalError):
            return StateConnectionError(
                f"cannot use state database {self.location}: {detail}: check the URL, that "
                f"the server runs and accepts this user, and the PG* variables"
            )
        return StateError(f"state database {self.location} failed: {detail}")

    def _encode_time(self, moment: datetime) -> datetime:
        return moment

    def _decode_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise StateError(f"state database {self.location} returned {value!r} for a time")
        return value.astimezone(timezone.utc)

    def _version_table_exists(self) -> bool:
        # A catalog query and not to_regclass(): to_regclass() can miss a table that
        # another session created while this one waited for the schema lock, because
        # it looks in this session's catalog cache without taking a lock.
        row = self._connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'shipline_schema')"
        ).fetchone()
        return row is not None and bool(row[0])


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
