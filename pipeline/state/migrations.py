"""The versioned schema of the state database, as a list of migrations per dialect.

The table ``shipline_schema`` has one row with the schema version. A store applies the
migrations above that version on first use, in one transaction, so a crash part-way
leaves the old version intact. A database whose version is higher than
:data:`SCHEMA_VERSION` was written by a newer shipline and is rejected: rewriting it
could lose records that this version does not know.

To change the schema, append a :class:`Migration`. Never edit one that was released.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Migration:
    """The statements that take the schema from ``version - 1`` to ``version``."""

    version: int
    description: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


# Times are ISO 8601 text in UTC with microseconds (``2027-01-15T08:00:00.000000Z``) in
# SQLite, where text of that fixed width sorts in time order, and timestamptz in
# PostgreSQL. ``n`` orders rows that started in the same microsecond.
_SQLITE_V1 = (
    """CREATE TABLE deployments (
        n INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        pipeline TEXT NOT NULL,
        environment TEXT NOT NULL,
        version TEXT NOT NULL,
        previous_version TEXT,
        strategy TEXT NOT NULL,
        actor TEXT,
        job_url TEXT,
        commit_sha TEXT,
        started TEXT NOT NULL,
        finished TEXT,
        outcome TEXT
    )""",
    "CREATE INDEX deployments_by_environment ON deployments (environment, started, n)",
    "CREATE INDEX deployments_by_outcome ON deployments (environment, outcome, started, n)",
    "CREATE INDEX deployments_by_time ON deployments (started, n)",
    """CREATE TABLE journal (
        deployment_id TEXT NOT NULL REFERENCES deployments (id),
        seq INTEGER NOT NULL,
        stage TEXT NOT NULL,
        step TEXT NOT NULL,
        operation TEXT NOT NULL,
        instances TEXT NOT NULL,
        version TEXT,
        details TEXT NOT NULL,
        time TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (deployment_id, seq)
    )""",
    """CREATE TABLE rollbacks (
        n INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        environment TEXT NOT NULL,
        deployment_id TEXT REFERENCES deployments (id),
        from_version TEXT,
        to_version TEXT NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT,
        job_url TEXT,
        fast INTEGER NOT NULL,
        started TEXT NOT NULL,
        finished TEXT,
        outcome TEXT
    )""",
    "CREATE INDEX rollbacks_by_environment ON rollbacks (environment, started, n)",
    """CREATE TABLE locks (
        environment TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token TEXT NOT NULL,
        acquired TEXT NOT NULL,
        expires TEXT NOT NULL,
        heartbeat TEXT NOT NULL
    )""",
    """CREATE TABLE forced_releases (
        n INTEGER PRIMARY KEY,
        environment TEXT NOT NULL,
        owner TEXT NOT NULL,
        acquired TEXT NOT NULL,
        released TEXT NOT NULL,
        released_by TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    "CREATE INDEX forced_releases_by_environment ON forced_releases (environment, released, n)",
)

_POSTGRESQL_V1 = (
    """CREATE TABLE deployments (
        n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        pipeline TEXT NOT NULL,
        environment TEXT NOT NULL,
        version TEXT NOT NULL,
        previous_version TEXT,
        strategy TEXT NOT NULL,
        actor TEXT,
        job_url TEXT,
        commit_sha TEXT,
        started TIMESTAMPTZ NOT NULL,
        finished TIMESTAMPTZ,
        outcome TEXT
    )""",
    "CREATE INDEX deployments_by_environment ON deployments (environment, started, n)",
    "CREATE INDEX deployments_by_outcome ON deployments (environment, outcome, started, n)",
    "CREATE INDEX deployments_by_time ON deployments (started, n)",
    """CREATE TABLE journal (
        deployment_id TEXT NOT NULL REFERENCES deployments (id),
        seq INTEGER NOT NULL,
        stage TEXT NOT NULL,
        step TEXT NOT NULL,
        operation TEXT NOT NULL,
        instances TEXT NOT NULL,
        version TEXT,
        details TEXT NOT NULL,
        time TIMESTAMPTZ NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (deployment_id, seq)
    )""",
    """CREATE TABLE rollbacks (
        n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        environment TEXT NOT NULL,
        deployment_id TEXT REFERENCES deployments (id),
        from_version TEXT,
        to_version TEXT NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT,
        job_url TEXT,
        fast INTEGER NOT NULL,
        started TIMESTAMPTZ NOT NULL,
        finished TIMESTAMPTZ,
        outcome TEXT
    )""",
    "CREATE INDEX rollbacks_by_environment ON rollbacks (environment, started, n)",
    """CREATE TABLE locks (
        environment TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token TEXT NOT NULL,
        acquired TIMESTAMPTZ NOT NULL,
        expires TIMESTAMPTZ NOT NULL,
        heartbeat TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE forced_releases (
        n BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        environment TEXT NOT NULL,
        owner TEXT NOT NULL,
        acquired TIMESTAMPTZ NOT NULL,
        released TIMESTAMPTZ NOT NULL,
        released_by TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    "CREATE INDEX forced_releases_by_environment ON forced_releases (environment, released, n)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "deployments, journal, rollbacks, locks and forced releases",
              _SQLITE_V1, _POSTGRESQL_V1),
)

#: The schema version this shipline writes and understands.
SCHEMA_VERSION = MIGRATIONS[-1].version

#: The statement that creates the version table, valid in both dialects.
CREATE_VERSION_TABLE = "CREATE TABLE shipline_schema (version INTEGER NOT NULL)"


def pending(current: int) -> tuple[Migration, ...]:
    """Return the migrations to apply to a database at schema version ``current``."""
    return tuple(migration for migration in MIGRATIONS if migration.version > current)
