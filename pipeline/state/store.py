"""The interface every state backend implements, and what each method promises.

A state store keeps, per environment, the history of deployments with the journal of
the changes each one made, the rollbacks, and one lock. Two backends implement it:
:mod:`pipeline.state.sqlite` (a file, the default) and :mod:`pipeline.state.postgresql`
(a server shared by many runners). :func:`pipeline.state.url.open_store` picks one.

Each method is one transaction: when it returns, its change is committed, and when it
raises, nothing was written. Times come from the clock the store was opened with, in
UTC. Methods raise :class:`~pipeline.state.errors.StateError` subclasses for a database
that cannot be used, never a driver exception.

A store object is not thread-safe: a thread that renews a lock in the background (see
:class:`pipeline.state.locks.Heartbeat`) opens its own store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol

from pipeline.state.records import (
    Deployment,
    DeploymentOutcome,
    DetailValue,
    ForcedRelease,
    JournalAppend,
    JournalEntry,
    Lock,
    Rollback,
    RollbackOutcome,
)


class StateStore(Protocol):
    """History, journal, rollbacks and locks of every environment of a pipeline."""

    #: The location of the state, for messages: a file path, or a URL without its password.
    location: str

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        ...

    def __enter__(self) -> StateStore: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    # -- deployments ---------------------------------------------------------------

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
        """Record a new unfinished deployment with a fresh random id and return it."""
        ...

    def finish_deployment(self, deployment_id: str, outcome: DeploymentOutcome) -> Deployment:
        """Record the end time and ``outcome`` of a deployment and return the record.

        Raises RecordNotFound for an unknown id. Finishing a deployment again replaces
        its outcome, so a recovery can mark an interrupted deployment ``recovered``.
        """
        ...

    def deployment(self, deployment_id: str) -> Deployment:
        """Return one deployment; raise RecordNotFound for an unknown id."""
        ...

    def unfinished_deployments(self, environment: str) -> list[Deployment]:
        """Return the deployments of ``environment`` without an outcome, oldest first."""
        ...

    def last_successful_version(self, environment: str) -> str | None:
        """Return the version of the newest ``succeeded`` deployment, or None if none."""
        ...

    def history(self, environment: str | None = None, limit: int = 20) -> list[Deployment]:
        """Return at most ``limit`` deployments, newest first, of one environment or all.

        Deployments that started in the same microsecond are ordered by insertion.
        """
        ...

    def environments(self) -> list[str]:
        """Return the names of environments with a deployment or a lock, sorted."""
        ...

    # -- journal -------------------------------------------------------------------

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
        """Record a change before it is made, not done yet, and return the entry.

        The entry gets the next ``seq`` of the deployment (1 for the first). Raises
        RecordNotFound for an unknown deployment.
        """
        ...

    def complete_journal(self, deployment_id: str, seq: int) -> JournalEntry:
        """Mark a journal entry done and return it. Raises RecordNotFound if it is unknown."""
        ...

    def append_journal_many(
        self, appends: Sequence[JournalAppend], done: Sequence[tuple[str, int]] = ()
    ) -> list[JournalEntry]:
        """Append several entries in one transaction, in order, and return them.

        Equal to calling :meth:`append_journal` for each, with one commit: a rollout
        that changes 50 instances at once waits for one disk flush, not 50. Either every
        entry is written or, on an error, none. The entries ``done`` names, as
        ``(deployment_id, seq)``, are marked done in the same transaction, which saves
        a caller with marks waiting a commit of their own. A mark of an unknown entry
        is logged and skipped rather than raised, so that it cannot fail the appends.
        """
        ...

    def complete_journal_many(self, keys: Sequence[tuple[str, int]]) -> None:
        """Mark the entries ``(deployment_id, seq)`` done in one transaction.

        Raises RecordNotFound, and marks none, if one of them is unknown.
        """
        ...

    def journal(self, deployment_id: str) -> list[JournalEntry]:
        """Return the journal entries of a deployment in ``seq`` order."""
        ...

    # -- rollbacks -----------------------------------------------------------------

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
        """Record a rollback that is starting and return it with a fresh random id."""
        ...

    def finish_rollback(self, rollback_id: str, outcome: RollbackOutcome) -> Rollback:
        """Record the end time and ``outcome`` of a rollback and return it. Raises
        RecordNotFound for an unknown id."""
        ...

    def rollbacks(self, environment: str, limit: int = 20) -> list[Rollback]:
        """Return at most ``limit`` rollbacks of ``environment``, newest first."""
        ...

    # -- locks ---------------------------------------------------------------------

    def acquire_lock(self, environment: str, owner: str, lease: float) -> Lock:
        """Take the lock of ``environment`` for ``lease`` seconds and return it.

        Atomic across processes and hosts: of two runs that try at once, exactly one
        gets the lock. A lock whose lease has expired is taken over (and logged). Raises
        LockHeld, naming the owner and since when, if another unexpired lock exists,
        even one with the same ``owner`` text.
        """
        ...

    def renew_lock(self, lock: Lock, lease: float) -> Lock:
        """Extend a held lock to ``lease`` seconds from now and return the new record.

        Raises LockLost if the lock was taken over or released since (the token no
        longer matches). An expired lock that no other run took over is renewed.
        """
        ...

    def release_lock(self, lock: Lock) -> bool:
        """Release a held lock. Return False, changing nothing, if its token no longer
        matches (someone took the lock over or forced a release)."""
        ...

    def force_release_lock(self, environment: str, released_by: str, reason: str) -> Lock | None:
        """Remove whatever lock ``environment`` has, record who did it and why, and
        return the removed lock, or None (recording nothing) when there was none."""
        ...

    def lock_status(self, environment: str) -> Lock | None:
        """Return the lock record of ``environment``, expired or not, or None."""
        ...

    def forced_releases(self, environment: str, limit: int = 20) -> list[ForcedRelease]:
        """Return at most ``limit`` forced releases of ``environment``, newest first."""
        ...
