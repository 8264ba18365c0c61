"""Environment locks as rows with a lease, in SQL that SQLite and PostgreSQL share.

Each lock method reads the lock row and writes it in one write transaction keyed on
the environment, which excludes every other writer of that environment (the whole
database in SQLite, an advisory lock in PostgreSQL). So two processes never both see
the lock free and both take it.
"""

# S608 flags every f-string that builds SQL. Here only the constant column lists below
# are put into statements; every value goes in as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from pipeline.state.errors import LockHeld, LockLost
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
