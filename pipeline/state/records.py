"""The records a state store keeps: deployments, their journal, rollbacks and locks.

Every record is immutable and every time is an aware :class:`~datetime.datetime` in UTC,
taken from the store's clock (see :mod:`pipeline.clock`), so tests with a FakeClock
control each timestamp.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

#: Value types allowed in :attr:`JournalEntry.details`, which are stored as JSON.
DetailValue = str | int | float | bool | None


class DeploymentOutcome(str, enum.Enum):
    """The end state of a deployment. A deployment without an outcome has not finished."""

    #: The new version runs everywhere the deployment touched.
    SUCCEEDED = "succeeded"
    #: A step failed and every change was rolled back.
    ROLLED_BACK = "rolled_back"
    #: A step failed before it changed anything, so there was nothing to roll back.
    FAILED = "failed"
    #: A step failed and the rollback could not restore the previous version.
    ROLLBACK_FAILED = "rollback_failed"
    #: A later run found the deployment unfinished and rolled it back.
    RECOVERED = "recovered"
    #: A later run found the deployment unfinished and continued it (``--resume``).
    RESUMED = "resumed"
    #: SIGINT or SIGTERM stopped the deployment after its in-flight change was undone.
    INTERRUPTED = "interrupted"
    #: A guard (a freeze window, for example) blocked the step before it changed anything.
    BLOCKED = "blocked"


class RollbackOutcome(str, enum.Enum):
    """The end state of a rollback. A rollback without an outcome has not finished."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


def utc_from_timestamp(seconds: float) -> datetime:
    """Convert Unix time in seconds to an aware UTC datetime, rounded to microseconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass(frozen=True)
class Deployment:
    """One attempt to put ``version`` on ``environment``, as recorded when it started.

    ``previous_version`` is the version the environment ran before, which a recovery
    rolls back to. ``actor``, ``job_url`` and ``commit`` come from CI variables and are
    None outside CI. ``finished`` and ``outcome`` are None while the deployment runs,
    and stay None when its process died before it could record the end.
    """

    id: str
    pipeline: str
    environment: str
    version: str
    previous_version: str | None
    strategy: str
    actor: str | None
    job_url: str | None
    commit: str | None
    started: datetime
    finished: datetime | None = None
    outcome: DeploymentOutcome | None = None

    @property
    def unfinished(self) -> bool:
        """True while no outcome is recorded."""
        return self.outcome is None


@dataclass(frozen=True)
class JournalEntry:
    """One change a deployment makes to its environment, recorded before it is made.

    ``seq`` numbers the entries of one deployment from 1 in the order they were
    appended. ``operation`` names the target or router primitive (``deploy``,
    ``remove``, ``set_weight``, ``switch``), ``instances`` the instances it changes, and
    ``version`` the version it puts there (None for operations without one). ``details``
    contains any other value the operation needs to be undone or repeated, such as a weight.
    ``done`` becomes True once the change finished. An entry left with ``done`` False
    may have been applied in part.
    """

    deployment_id: str
    seq: int
    stage: str
    step: str
    operation: str
    instances: tuple[str, ...]
    version: str | None
    time: datetime
    done: bool = False
    details: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class JournalAppend:
    """A journal entry to append: the arguments of ``StateStore.append_journal``, for
    ``append_journal_many``, which writes several in one transaction."""

    deployment_id: str
    stage: str
    step: str
    operation: str
    instances: tuple[str, ...]
    version: str | None
    details: Mapping[str, DetailValue] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Rollback:
    """One rollback of ``environment`` from ``from_version`` to ``to_version``.

    ``deployment_id`` is the deployment being undone, or None for a rollback that a
    person started with ``shipline rollback``. ``reason`` is a one-line explanation
    shown in history. ``fast`` records that pauses and analysis were skipped.
    """

    id: str
    environment: str
    deployment_id: str | None
    from_version: str | None
    to_version: str
    reason: str
    actor: str | None
    job_url: str | None
    fast: bool
    started: datetime
    finished: datetime | None = None
    outcome: RollbackOutcome | None = None


@dataclass(frozen=True)
class Lock:
    """A lease on an environment, held by ``owner`` until ``expires`` unless renewed.

    ``owner`` is a CI job URL or ``host/pid``, shown to other runs that find the lock
    held. ``token`` is a random value that tells two holders with the same owner text
    apart: renewing or releasing with an old token fails instead of touching the lock
    that replaced it. ``heartbeat`` is the time of the last renewal, or ``acquired``.
    """

    environment: str
    owner: str
    token: str
    acquired: datetime
    expires: datetime
    heartbeat: datetime

    def expired(self, now: datetime) -> bool:
        """True once ``now`` has reached ``expires``, when any run may take the lock."""
        return now >= self.expires


@dataclass(frozen=True)
class ForcedRelease:
    """A lock removed with ``shipline lock release --force``, and by whom and why."""

    environment: str
    owner: str
    acquired: datetime
    released: datetime
    released_by: str
    reason: str
