"""The state store written once in SQL, for every backend that speaks it.

:class:`SqlStore` implements :class:`~pipeline.state.store.StateStore` on top of a few
primitives that each backend provides: begin, commit and roll back a transaction,
execute a statement, convert times, and turn driver errors into StateError. SQL here
uses ``?`` placeholders and only syntax that SQLite 3.35+ and PostgreSQL 12+ share.

A write transaction is exclusive for the whole database in SQLite, and per ``key``
(an environment, or the schema) in PostgreSQL. Lock methods read the lock row and
write it in one such transaction, so two processes never both take a lock.
"""

# S608 flags every f-string that builds SQL. Here only the constant column lists below
# are put into statements; every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import abc
import contextlib
import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

from pipeline.clock import Clock
from pipeline.state.errors import (
    LockHeld,
    LockLost,
    RecordNotFound,
    StateError,
    StateSchemaError,
)
from pipeline.state.migrations import CREATE_VERSION_TABLE, SCHEMA_VERSION, Dialect, pending
from pipeline.state.records import (
    Deployment,
    DeploymentOutcome,
    DetailValue,
    ForcedRelease,
    JournalEntry,
    Lock,
    Rollback,
    RollbackOutcome,
    utc_from_timestamp,
)

logger = logging.getLogger("shipline")

#: The transaction key that serializes schema migrations in PostgreSQL.
SCHEMA_KEY = "shipline_schema"

_DEPLOYMENT_COLUMNS = (
    "id, pipeline, environment, version, previous_version, strategy, actor, job_url, "
    "commit_sha, started, finished, outcome"
)
_JOURNAL_COLUMNS = (
    "deployment_id, seq, stage, step, operation, instances, version, time, done, details"
)
_ROLLBACK_COLUMNS = (
    "id, environment, deployment_id, from_version, to_version, reason, actor, job_url, "
    "fast, started, finished, outcome"
)
_LOCK_COLUMNS = "environment, owner, token, acquired, expires, heartbeat"
_RELEASE_COLUMNS = "environment, owner, acquired, released, released_by, reason"


class Cursor(Protocol):
    """The part of a DB-API cursor that the store uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlStore(abc.ABC):
    """A StateStore over a DB-API connection; subclasses supply the primitives."""

    dialect: Dialect
    location: str

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    # -- primitives of a backend -------------------------------------------------------

    @abc.abstractmethod
    def _begin(self, *, write: bool, key: str | None) -> None:
        """Start a transaction; a write transaction excludes other writers of ``key``."""

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

    def __enter__(self) -> SqlStore:
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

        Driver errors leave as StateError subclasses; other exceptions pass unchanged.
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
        """Return the schema version in a read-only transaction; StateSchemaError if newer."""
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

    def _t(self, moment: datetime | None) -> object:
        return None if moment is None else self._encode_time(moment)

    def _t_or_none(self, value: Any) -> datetime | None:
        return None if value is None else self._decode_time(value)

    # -- deployments ----------------------------------------------------------------------

    def start_deployment(
        self,
        *,
        pipeline: str,
        environment: str,
        version: str,
        previous_version: str | None,
        strategy: str,
        actor: str | None = None,
        job_url: str | None = None,
        commit: str | None = None,
    ) -> Deployment:
        deployment = Deployment(
            id=uuid.uuid4().hex, pipeline=pipeline, environment=environment, version=version,
            previous_version=previous_version, strategy=strategy, actor=actor,
            job_url=job_url, commit=commit, started=self._now(),
        )
        with self._transaction(write=True, key=environment):
            self._execute(
                f"INSERT INTO deployments ({_DEPLOYMENT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (deployment.id, pipeline, environment, version, previous_version, strategy,
                 actor, job_url, commit, self._encode_time(deployment.started)),
            )
        logger.info("deployment %s of %s to %s started", deployment.id, version, environment)
        return deployment

    def finish_deployment(self, deployment_id: str, outcome: DeploymentOutcome) -> Deployment:
        with self._transaction(write=True):
            cursor = self._execute(
                "UPDATE deployments SET finished = ?, outcome = ? WHERE id = ?",
                (self._encode_time(self._now()), outcome.value, deployment_id),
            )
            if cursor.rowcount == 0:
                raise self._deployment_not_found(deployment_id)
            deployment = self._select_deployment(deployment_id)
        logger.info("deployment %s finished: %s", deployment_id, outcome.value)
        return deployment

    def deployment(self, deployment_id: str) -> Deployment:
        with self._transaction():
            return self._select_deployment(deployment_id)

    def _select_deployment(self, deployment_id: str) -> Deployment:
        row = self._execute(
            f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?", (deployment_id,)
        ).fetchone()
        if row is None:
            raise self._deployment_not_found(deployment_id)
        return self._deployment_from_row(row)

    def unfinished_deployments(self, environment: str) -> list[Deployment]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments "
                "WHERE environment = ? AND outcome IS NULL ORDER BY started, n",
                (environment,),
            ).fetchall()
        return [self._deployment_from_row(row) for row in rows]

    def last_successful_version(self, environment: str) -> str | None:
        with self._transaction():
            row = self._execute(
                "SELECT version FROM deployments WHERE environment = ? AND outcome = ? "
                "ORDER BY started DESC, n DESC LIMIT 1",
                (environment, DeploymentOutcome.SUCCEEDED.value),
            ).fetchone()
        return None if row is None else str(row[0])

    def history(self, environment: str | None = None, limit: int = 20) -> list[Deployment]:
        if environment is None:
            sql = (f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments "
                   "ORDER BY started DESC, n DESC LIMIT ?")
            params: tuple[object, ...] = (max(limit, 0),)
        else:
            sql = (f"SELECT {_DEPLOYMENT_COLUMNS} FROM deployments WHERE environment = ? "
                   "ORDER BY started DESC, n DESC LIMIT ?")
            params = (environment, max(limit, 0))
        with self._transaction():
            rows = self._execute(sql, params).fetchall()
        return [self._deployment_from_row(row) for row in rows]

    def environments(self) -> list[str]:
        with self._transaction():
            rows = self._execute(
                "SELECT DISTINCT environment FROM deployments "
                "UNION SELECT environment FROM locks ORDER BY 1"
            ).fetchall()
        return [str(row[0]) for row in rows]

    def _deployment_from_row(self, row: Sequence[Any]) -> Deployment:
        return Deployment(
            id=row[0], pipeline=row[1], environment=row[2], version=row[3],
            previous_version=row[4], strategy=row[5], actor=row[6], job_url=row[7],
            commit=row[8], started=self._decode_time(row[9]),
            finished=self._t_or_none(row[10]),
            outcome=None if row[11] is None else DeploymentOutcome(row[11]),
        )

    # -- journal ----------------------------------------------------------------------------

    def append_journal(
        self,
        deployment_id: str,
        *,
        stage: str,
        step: str,
        operation: str,
        instances: Sequence[str],
        version: str | None,
        details: Mapping[str, DetailValue] | None = None,
    ) -> JournalEntry:
        details = dict(details or {})
        now = self._now()
        with self._transaction(write=True):
            self._select_deployment(deployment_id)
            row = self._execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE deployment_id = ?",
                (deployment_id,),
            ).fetchone()
            seq = int(row[0])
            self._execute(
                f"INSERT INTO journal ({_JOURNAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (deployment_id, seq, stage, step, operation, json.dumps(list(instances)),
                 version, self._encode_time(now), json.dumps(details, sort_keys=True)),
            )
        return JournalEntry(deployment_id, seq, stage, step, operation, tuple(instances),
                            version, now, False, details)

    def complete_journal(self, deployment_id: str, seq: int) -> JournalEntry:
        with self._transaction(write=True):
            cursor = self._execute(
                "UPDATE journal SET done = 1 WHERE deployment_id = ? AND seq = ?",
                (deployment_id, seq),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(
                    f"no journal entry {seq} of deployment {deployment_id} in {self.location}"
                )
            row = self._execute(
                f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE deployment_id = ? AND seq = ?",
                (deployment_id, seq),
            ).fetchone()
        return self._journal_from_row(row)

    def journal(self, deployment_id: str) -> list[JournalEntry]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_JOURNAL_COLUMNS} FROM journal WHERE deployment_id = ? ORDER BY seq",
                (deployment_id,),
            ).fetchall()
        return [self._journal_from_row(row) for row in rows]

    def _journal_from_row(self, row: Sequence[Any]) -> JournalEntry:
        return JournalEntry(
            deployment_id=row[0], seq=int(row[1]), stage=row[2], step=row[3],
            operation=row[4], instances=tuple(json.loads(row[5])), version=row[6],
            time=self._decode_time(row[7]), done=bool(row[8]), details=json.loads(row[9]),
        )

    # -- rollbacks --------------------------------------------------------------------------

    def start_rollback(
        self,
        *,
        environment: str,
        to_version: str,
        from_version: str | None,
        reason: str,
        deployment_id: str | None = None,
        actor: str | None = None,
        job_url: str | None = None,
        fast: bool = False,
    ) -> Rollback:
        rollback = Rollback(
            id=uuid.uuid4().hex, environment=environment, deployment_id=deployment_id,
            from_version=from_version, to_version=to_version, reason=reason, actor=actor,
            job_url=job_url, fast=fast, started=self._now(),
        )
        with self._transaction(write=True, key=environment):
            if deployment_id is not None:
                self._select_deployment(deployment_id)
            self._execute(
                f"INSERT INTO rollbacks ({_ROLLBACK_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (rollback.id, environment, deployment_id, from_version, to_version, reason,
                 actor, job_url, int(fast), self._encode_time(rollback.started)),
            )
        logger.info("rollback %s of %s to %s started: %s",
                    rollback.id, environment, to_version, reason)
        return rollback

    def finish_rollback(self, rollback_id: str, outcome: RollbackOutcome) -> Rollback:
        with self._transaction(write=True):
            cursor = self._execute(
                "UPDATE rollbacks SET finished = ?, outcome = ? WHERE id = ?",
                (self._encode_time(self._now()), outcome.value, rollback_id),
            )
            if cursor.rowcount == 0:
                raise RecordNotFound(f"no rollback with id {rollback_id} in {self.location}")
            row = self._execute(
                f"SELECT {_ROLLBACK_COLUMNS} FROM rollbacks WHERE id = ?", (rollback_id,)
            ).fetchone()
        logger.info("rollback %s finished: %s", rollback_id, outcome.value)
        return self._rollback_from_row(row)

    def rollbacks(self, environment: str, limit: int = 20) -> list[Rollback]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_ROLLBACK_COLUMNS} FROM rollbacks WHERE environment = ? "
                "ORDER BY started DESC, n DESC LIMIT ?",
                (environment, max(limit, 0)),
            ).fetchall()
        return [self._rollback_from_row(row) for row in rows]

    def _rollback_from_row(self, row: Sequence[Any]) -> Rollback:
        return Rollback(
            id=row[0], environment=row[1], deployment_id=row[2], from_version=row[3],
            to_version=row[4], reason=row[5], actor=row[6], job_url=row[7],
            fast=bool(row[8]), started=self._decode_time(row[9]),
            finished=self._t_or_none(row[10]),
            outcome=None if row[11] is None else RollbackOutcome(row[11]),
        )

    # -- locks --------------------------------------------------------------------------------

    def acquire_lock(self, environment: str, owner: str, lease: float) -> Lock:
        now = self._now()
        lock = Lock(environment, owner, uuid.uuid4().hex, now, now + _seconds(lease), now)
        with self._transaction(write=True, key=environment):
            current = self._select_lock(environment)
            if current is not None and not current.expired(now):
                raise LockHeld(current)
            if current is not None:
                self._execute("DELETE FROM locks WHERE environment = ?", (environment,))
            self._execute(
                f"INSERT INTO locks ({_LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (environment, owner, lock.token, self._encode_time(now),
                 self._encode_time(lock.expires), self._encode_time(now)),
            )
        if current is not None:
            logger.warning("took over the lock of %s from %s, whose lease expired at %s",
                           environment, current.owner, current.expires.isoformat())
        logger.info("lock of %s acquired by %s until %s",
                    environment, owner, lock.expires.isoformat())
        return lock

    def renew_lock(self, lock: Lock, lease: float) -> Lock:
        now = self._now()
        renewed = Lock(lock.environment, lock.owner, lock.token, lock.acquired,
                       now + _seconds(lease), now)
        with self._transaction(write=True, key=lock.environment):
            cursor = self._execute(
                "UPDATE locks SET expires = ?, heartbeat = ? WHERE environment = ? AND token = ?",
                (self._encode_time(renewed.expires), self._encode_time(now),
                 lock.environment, lock.token),
            )
            if cursor.rowcount == 0:
                raise LockLost(lock, self._select_lock(lock.environment))
        logger.debug("lock of %s renewed until %s", lock.environment, renewed.expires.isoformat())
        return renewed

    def release_lock(self, lock: Lock) -> bool:
        with self._transaction(write=True, key=lock.environment):
            cursor = self._execute(
                "DELETE FROM locks WHERE environment = ? AND token = ?",
                (lock.environment, lock.token),
            )
        released = cursor.rowcount > 0
        if released:
            logger.info("lock of %s released by %s", lock.environment, lock.owner)
        else:
            logger.warning("lock of %s was no longer held by %s when it released it",
                           lock.environment, lock.owner)
        return released

    def force_release_lock(self, environment: str, released_by: str, reason: str) -> Lock | None:
        now = self._now()
        with self._transaction(write=True, key=environment):
            current = self._select_lock(environment)
            if current is None:
                return None
            self._execute("DELETE FROM locks WHERE environment = ?", (environment,))
            self._execute(
                f"INSERT INTO forced_releases ({_RELEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (environment, current.owner, self._encode_time(current.acquired),
                 self._encode_time(now), released_by, reason),
            )
        logger.warning("lock of %s held by %s was released by force by %s: %s",
                       environment, current.owner, released_by, reason)
        return current

    def lock_status(self, environment: str) -> Lock | None:
        with self._transaction():
            return self._select_lock(environment)

    def forced_releases(self, environment: str, limit: int = 20) -> list[ForcedRelease]:
        with self._transaction():
            rows = self._execute(
                f"SELECT {_RELEASE_COLUMNS} FROM forced_releases WHERE environment = ? "
                "ORDER BY released DESC, n DESC LIMIT ?",
                (environment, max(limit, 0)),
            ).fetchall()
        return [
            ForcedRelease(row[0], row[1], self._decode_time(row[2]), self._decode_time(row[3]),
                          row[4], row[5])
            for row in rows
        ]

    def _deployment_not_found(self, deployment_id: str) -> RecordNotFound:
        return RecordNotFound(f"no deployment with id {deployment_id} in {self.location}")

    def _select_lock(self, environment: str) -> Lock | None:
        row = self._execute(
            f"SELECT {_LOCK_COLUMNS} FROM locks WHERE environment = ?", (environment,)
        ).fetchone()
        if row is None:
            return None
        return Lock(row[0], row[1], row[2], self._decode_time(row[3]),
                    self._decode_time(row[4]), self._decode_time(row[5]))


def _seconds(lease: float) -> timedelta:
    if lease <= 0:
        raise ValueError(f"a lock lease must be positive, not {lease} s")
    return timedelta(seconds=lease)
