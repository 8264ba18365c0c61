"""Environment locks as rows with a lease, in SQL that SQLite and PostgreSQL share.

Acquiring and forcing a release read the lock row and write it in one write
transaction keyed on the environment, which excludes every other writer of that
environment (the whole database in SQLite, an advisory lock in PostgreSQL). So two
processes never both see the lock free and both take it. Renewing and releasing are
single statements conditioned on the lock's token, atomic without such a transaction.
"""

# S608 flags every f-string that builds SQL. Here only the constant column lists below
# are put into statements, and every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pipeline.state.errors import LockHeld, LockLost, format_time
from pipeline.state.records import ForcedRelease, Lock
from pipeline.state.sqlbase import SqlBase

logger = logging.getLogger("shipline")

_LOCK_COLUMNS = "environment, owner, token, acquired, expires, heartbeat"
_RELEASE_COLUMNS = "environment, owner, acquired, released, released_by, reason"


class SqlLocks(SqlBase):
    """The lock methods of the StateStore protocol."""

    # -- locks --------------------------------------------------------------------------------

    def acquire_lock(self, environment: str, owner: str, lease: float) -> Lock:
        now = self._now()
        lock = Lock(environment, owner, uuid.uuid4().hex, now, now + lease_delta(lease), now)
        with self._transaction(write=True, key=environment):
            current = self._select_lock(environment)
            if current is not None and not current.expired(now):
                raise LockHeld(current)
            if current is not None:
                self._delete_expired(current, now)
            self._execute(
                f"INSERT INTO locks ({_LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (environment, owner, lock.token, self._encode_time(now),
                 self._encode_time(lock.expires), self._encode_time(now)),
            )
        self._log_acquired(lock, current)
        return lock

    def _log_acquired(self, lock: Lock, previous: Lock | None) -> None:
        """Log a lock taken, and the expired lock it replaced, if any."""
        if previous is not None:
            logger.warning("took over the lock of %s from %s, whose lease expired at %s",
                           lock.environment, previous.owner, format_time(previous.expires))
        logger.info("lock of %s acquired by %s until %s",
                    lock.environment, lock.owner, format_time(lock.expires))

    def renew_lock(self, lock: Lock, lease: float) -> Lock:
        now = self._now()
        renewed = Lock(lock.environment, lock.owner, lock.token, lock.acquired,
                       now + lease_delta(lease), now)
        # One statement, atomic by itself, so no transaction around it: a heartbeat
        # costs one round trip to a PostgreSQL server.
        updated = self._execute_alone(
            "UPDATE locks SET expires = ?, heartbeat = ? WHERE environment = ? AND token = ?",
            (self._encode_time(renewed.expires), self._encode_time(now),
             lock.environment, lock.token),
        )
        if updated == 0:
            raise LockLost(lock, self.lock_status(lock.environment))
        logger.debug("lock of %s renewed until %s", lock.environment, format_time(renewed.expires))
        return renewed

    def release_lock(self, lock: Lock) -> bool:
        released = self._execute_alone(
            "DELETE FROM locks WHERE environment = ? AND token = ?",
            (lock.environment, lock.token),
        ) > 0
        if released:
            logger.info("lock of %s released by %s", lock.environment, lock.owner)
        else:
            logger.warning("lock of %s was no longer held by %s when it released it",
                           lock.environment, lock.owner)
        return released

    def force_release_lock(self, environment: str, released_by: str, reason: str) -> Lock | None:
        now = self._now()
        with self._transaction(write=True, key=environment):
            # RETURNING names the lock actually deleted, even if it changed hands
            # since a person looked at `shipline lock status`.
            row = self._execute(
                f"DELETE FROM locks WHERE environment = ? RETURNING {_LOCK_COLUMNS}",
                (environment,),
            ).fetchone()
            if row is None:
                return None
            current = self._lock_from_row(row)
            self._execute(
                f"INSERT INTO forced_releases ({_RELEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (environment, current.owner, self._encode_time(current.acquired),
                 self._encode_time(now), released_by, reason),
            )
        # Also the path of `lock release` for an expired lock, so the text names no force;
        # the reason tells a forced release apart.
        logger.warning("lock of %s held by %s was released by %s: %s",
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

    def _delete_expired(self, current: Lock, now: datetime) -> None:
        """Delete the expired lock ``current``, or raise LockHeld if it was renewed since.

        Renewals run without the environment's transaction key. SQLite still
        serializes them with this transaction, but a backend whose key does not cover
        single statements could renew between the read and this delete. The token and
        time conditions then make the delete miss the renewed lock.
        """
        deleted = self._execute(
            "DELETE FROM locks WHERE environment = ? AND token = ? AND expires <= ?",
            (current.environment, current.token, self._encode_time(now)),
        ).rowcount
        if deleted == 0:
            renewed = self._select_lock(current.environment)
            raise LockHeld(renewed if renewed is not None else current)

    def _select_lock(self, environment: str) -> Lock | None:
        row = self._execute(
            f"SELECT {_LOCK_COLUMNS} FROM locks WHERE environment = ?", (environment,)
        ).fetchone()
        return None if row is None else self._lock_from_row(row)

    def _lock_from_row(self, row: Sequence[Any]) -> Lock:
        return Lock(row[0], row[1], row[2], self._decode_time(row[3]),
                    self._decode_time(row[4]), self._decode_time(row[5]))


def lease_delta(lease: float) -> timedelta:
    """Convert a lease in seconds to a timedelta. Raises ValueError unless it is positive."""
    if lease <= 0:
        raise ValueError(f"a lock lease must be positive, not {lease} s")
    return timedelta(seconds=lease)
