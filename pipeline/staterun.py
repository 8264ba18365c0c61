"""A run's link to the state store: its locks, its deployments and their journal.

:class:`RunState` is opened by ``shipline run`` before the first stage. It takes the
lock of every environment that a deploy step of the plan deploys to, and a heartbeat
thread keeps each lease alive. Each deploy step is recorded as a deployment, whose
journal lists every change before it is made. The built-in ``state`` plugin
(:mod:`pipeline.builtin.statehistory`) calls it from the run hooks.

A store object must stay on the thread that opened it (SQLite connections refuse other
threads), while strategies change instances from worker threads. So every store call
of a run goes through :class:`StateWorker`, one thread that owns the store and runs
the calls in order.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pipeline.cienv import CiJob, detect
from pipeline.clock import Clock, SystemClock
from pipeline.orphans import ProcessJournal
from pipeline.state import (
    Deployment,
    DeploymentOutcome,
    Heartbeat,
    JournalAppend,
    JournalEntry,
    Lock,
    LockLost,
    RollbackOutcome,
    StateError,
    StateLocation,
    StateStore,
    default_owner,
    open_store,
    resolve_location,
    wait_for_lock,
)
from pipeline.state.locks import lease_of
from pipeline.state.records import DetailValue
from pipeline.state.urlsecrets import find_passwords

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.plan import Plan, Step

logger = logging.getLogger("shipline")

T = TypeVar("T")

#: Shown in history as the version a rollback restored when it was not known.
UNKNOWN_VERSION = "unknown"

#: CI variables that contain the commit being deployed: GitHub Actions, then GitLab CI.
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA")


def log_store_error(message: str, *args: object, error: StateError) -> None:
    """Log a store error that the run survives as one line: ``message``, then the error.

    The traceback is added only with ``--debug``, because a store that went away during
    a run fails several such calls in a row, and each traceback is about 35 lines.
    """
    logger.error(f"{message}: %s", *args, error,
                 exc_info=error if logger.isEnabledFor(logging.DEBUG) else None)


def commit_from(environ: Mapping[str, str]) -> str | None:
    """Return the commit SHA of the CI job from ``GITHUB_SHA`` or ``CI_COMMIT_SHA``."""
    for name in COMMIT_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def locate(plan_dir: Path, settings: Mapping[str, object] | None, config: Config) -> StateLocation:
    """Pick the store from ``--state``, ``SHIPLINE_STATE``, the ``state:`` section or the
    default file beside the pipeline file; raise StateError for an invalid value.

    The password of a PostgreSQL URL is added to the run's masker, so that no message
    or log shows it, whichever of the sources the URL came from.
    """
    location = resolve_location(option=config.option("state"), environ=os.environ,
                                settings=settings, pipeline_dir=plan_dir,
                                cwd=config.invocation_dir)
    if location.url is not None:
        config.masker.update(find_passwords(location.url))
    return location


def deploy_environments(plan: Plan) -> list[str]:
    """Return the environments that a deploy step of ``plan`` deploys to, sorted.

    Sorted, so that two runs that need the same environments take their locks in the
    same order and cannot each hold one that the other waits for.
    """
    names = {stage.environment for stage in plan.stages
             if stage.environment and any(step.kind == "deploy" for step in stage.steps)}
    return sorted(name for name in names if name is not None)


class StateWorker:
    """One thread that opens the store and runs every call on it, in submission order."""

    def __init__(self, location: StateLocation, clock: Clock) -> None:
        self.location = location
        self._clock = clock
        self._store: StateStore | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipline-state")
        self._lock = threading.Lock()
        self._appends: list[tuple[JournalAppend, Future[JournalEntry]]] = []
        self._completes: list[tuple[str, int]] = []
        self._flush_scheduled = False
        self.call(lambda store: None)

    def _open(self) -> StateStore:
        if self._store is None:
            self._store = open_store(self.location, self._clock)
        return self._store

    def call(self, function: Callable[[StateStore], T]) -> T:
        """Run ``function(store)`` on the worker thread and return its result.

        Exceptions, StateError among them, are raised in the calling thread. Journal
        entries marked done before run first.
        """
        self._schedule_flush()
        return self._executor.submit(lambda: function(self._open())).result()

    def append_journal(self, append: JournalAppend) -> JournalEntry:
        """Append one journal entry and return it once it is committed; as
        :meth:`append_journal_many`."""
        return self.append_journal_many([append])[0]

    def append_journal_many(self, appends: Sequence[JournalAppend]) -> list[JournalEntry]:
        """Append journal entries and return them once they are committed.

        Entries that other threads append meanwhile go into the same transaction, so
        that changes started at the same time, by stages that run in parallel, cost one
        disk flush instead of one each. Raises StateError when the entries cannot be
        written.
        """
        futures: list[Future[JournalEntry]] = [Future() for _ in appends]
        with self._lock:
            self._appends.extend(zip(appends, futures, strict=True))
        self._schedule_flush()
        return [future.result() for future in futures]

    def complete_journal(self, deployment_id: str, seq: int) -> None:
        """Mark a journal entry done, without waiting for the commit.

        The mark is written with the next journal append, in its transaction, or
        before the next call or the end, whichever comes first. So a rolling batch
        commits its entry and the previous batch's mark once, and nothing is left to
        write while its commands start. Neither waiting nor the delay costs safety,
        because recovery treats an entry that is not done as a change that may have
        been made. A failure is logged, not raised.
        """
        with self._lock:
            self._completes.append((deployment_id, seq))

    def _schedule_flush(self) -> None:
        """Schedule a flush of the pending journal writes unless one is scheduled.

        The flush runs on the worker thread after every call submitted before it, and
        before every call submitted after it, so the order of calls is kept.
        """
        with self._lock:
            if self._flush_scheduled or not (self._appends or self._completes):
                return
            self._flush_scheduled = True
        self._executor.submit(self._flush)

    def _flush(self) -> None:
        with self._lock:
            appends, self._appends = self._appends, []
            completes, self._completes = self._completes, []
            self._flush_scheduled = False

        if appends:
            self._append(appends, completes)
        elif completes:
            try:
                self._open().complete_journal_many(completes)
            except StateError as exc:
                _log_lost_marks(completes, exc)

    def _append(self, appends: list[tuple[JournalAppend, Future[JournalEntry]]],
                completes: list[tuple[str, int]]) -> None:
        # The marks share the appends' transaction: one commit instead of two, both
        # before the appending thread goes on.
        try:
            entries = self._open().append_journal_many([item for item, _ in appends],
                                                       done=completes)
        except BaseException as exc:
            for _, future in appends:
                future.set_exception(exc)
            if completes and isinstance(exc, StateError):
                _log_lost_marks(completes, exc)
            return
        for (_, future), entry in zip(appends, entries, strict=True):
            future.set_result(entry)

    def close(self) -> None:
        """Close the store and end the thread; errors while closing are logged."""

        def close_store() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        self._schedule_flush()
        try:
            self._executor.submit(close_store).result()
        except StateError as error:
            log_store_error("closing the state store %s failed", self.location.describe(),
                            error=error)
        self._executor.shutdown(wait=True)


def _log_lost_marks(completes: Sequence[tuple[str, int]], error: StateError) -> None:
    count = "1 journal entry" if len(completes) == 1 else f"{len(completes)} journal entries"
    logger.error("marking %s of deployment %s done failed: %s", count, completes[0][0], error)


@dataclass(frozen=True)
class RollbackRequest:
    """The request of one ``shipline rollback``, kept for its rollback record."""

    environment: str
    to_version: str
    from_version: str | None
    reason: str
    fast: bool


@dataclass
class HeldLock:
    """A lock this run holds, and the heartbeat that renews it."""

    environment: str
    heartbeat: Heartbeat


@dataclass
class RunState:
    """The state store as one run uses it. Open with :meth:`open`, end with :meth:`close`."""

    worker: StateWorker
    pipeline: str
    #: Seconds a lock lasts without a heartbeat.
    lease: float
    job: CiJob = field(default_factory=CiJob)
    commit: str | None = None
    #: Called once, from the heartbeat thread, when another run took over a lock of this
    #: run or a person forced its release. ``shipline run`` interrupts the run.
    on_lock_lost: Callable[[str], None] | None = None
    #: Deployment ids by step id, of the deploy steps that started in this run.
    deployments: dict[str, Deployment] = field(default_factory=dict)
    #: Environment -> instance -> the version it ran before an interrupted deployment
    #: that this run resumes.
    resumed_before: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Environment -> the previous version recorded by the deployment this run resumes.
    resumed_previous: dict[str, str | None] = field(default_factory=dict)
    _locks: list[HeldLock] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    #: Journals the commands started while a deployment is unfinished, for recovery.
    _processes: ProcessJournal | None = None

    @classmethod
    def open(cls, plan: Plan, config: Config, environ: Mapping[str, str] | None = None
             ) -> RunState:
        """Open the store of ``plan``; raise StateError when it cannot be used."""
        env = os.environ if environ is None else environ
        settings = dict(plan.state)
        location = locate(plan.file.parent, settings, config)
        lease = lease_of(settings)
        worker = StateWorker(location, config.clock)
        logger.info("state store %s opened", location.describe())
        return cls(worker, plan.name, lease, job=detect(env), commit=commit_from(env))

    @property
    def owner(self) -> str:
        """The owner text of this run's locks: the CI job URL, else ``host/pid``."""
        return default_owner(self.job)

    # -- locks ---------------------------------------------------------------------------

    def lock(self, environments: Iterable[str], *, wait: float,
             cancel: threading.Event | None = None) -> None:
        """Take the lock of each environment, waiting up to ``wait`` seconds for each, and
        start its heartbeat.

        Raises LockHeld (exit 5) when a lock stays held and LockWaitCancelled (exit 130)
        when ``cancel`` is set; the locks taken before are released first.
        """
        try:
            for environment in environments:
                self._lock_one(environment, wait, cancel)
        except BaseException:
            self.release_locks()
            raise

    def _lock_one(self, environment: str, wait: float, cancel: threading.Event | None) -> None:
        clock = SystemClock()
        lock = self.worker.call(lambda store: wait_for_lock(
            store, environment, self.owner, lease=self.lease, wait=wait, clock=clock,
            cancel=cancel))
        logger.info("lock of environment %s taken by %s", environment, lock.owner)
        location = self.worker.location
        heartbeat = Heartbeat(lambda: open_store(location, clock), lock, lease=self.lease,
                              clock=clock, on_lost=self._lost)
        heartbeat.start()
        with self._guard:
            self._locks.append(HeldLock(environment, heartbeat))

    def _lost(self, error: LockLost) -> None:
        if self.on_lock_lost is not None:
            self.on_lock_lost(str(error))

    def release_locks(self) -> None:
        """Stop every heartbeat and release every lock this run holds.

        A lock that someone took over is left to its new holder, with a warning.
        """
        with self._guard:
            held, self._locks = self._locks, []
        for item in reversed(held):
            item.heartbeat.stop()
            self._release(item.heartbeat.lock)

    def _release(self, lock: Lock) -> None:
        try:
            released = self.worker.call(lambda store: store.release_lock(lock))
        except StateError as error:
            log_store_error("releasing the lock of environment %s failed; it expires on its "
                            "own when its lease ends", lock.environment, error=error)
            return
        if released:
            logger.info("lock of environment %s released", lock.environment)
        else:
            logger.warning("the lock of environment %s was taken over or force-released "
                           "before this run released it", lock.environment)

    # -- deployments and journal ---------------------------------------------------------

    def start_deployment(self, step: Step, environment: str,
                         previous_version: str | None) -> Deployment:
        """Record the deploy ``step`` as an unfinished deployment before it changes anything."""
        deployment = self.worker.call(lambda store: store.start_deployment(
            pipeline=self.pipeline, environment=environment,
            version=str(step.options.get("version", "")), previous_version=previous_version,
            strategy=step.type, actor=self.job.actor, job_url=self.job.job_url,
            commit=self.commit))
        logger.info("deployment %s of %s to %s started", deployment.id, deployment.version,
                    environment)
        with self._guard:
            self.deployments[step.id] = deployment
            if self._processes is None:
                self._processes = ProcessJournal(self.worker)
            processes = self._processes
        processes.start(deployment.id, step)
        return deployment

    def deployment_of(self, step: Step) -> Deployment | None:
        with self._guard:
            return self.deployments.get(step.id)

    def unfinished_deployments(self, environment: str) -> list[Deployment]:
        return self.worker.call(lambda store: store.unfinished_deployments(environment))

    def last_successful_version(self, environment: str) -> str | None:
        return self.worker.call(lambda store: store.last_successful_version(environment))

    def record_change(
        self,
        step: Step,
        operation: str,
        instances: Sequence[str],
        version: str | None,
        details: Mapping[str, DetailValue] | None = None,
    ) -> Callable[[], None]:
        """Append a journal entry for a change that ``step`` is about to make.

        Returns the function that marks the entry done once the change has finished.
        A step that has no deployment (not a deploy step) records nothing. Raises
        StateError when the journal cannot be written, so the change is not made.
        """
        return self.record_changes(step, operation, version, [(instances, details or {})])

    def record_changes(
        self,
        step: Step,
        operation: str,
        version: str | None,
        changes: Sequence[tuple[Sequence[str], Mapping[str, DetailValue]]],
    ) -> Callable[[], None]:
        """Append one journal entry per ``(instances, details)`` pair in one transaction;
        otherwise as :meth:`record_change`."""
        deployment = self.deployment_of(step)
        if deployment is None or not changes:
            return _nothing
        entries = self.worker.append_journal_many([
            JournalAppend(deployment.id, step.stage, step.id, operation, tuple(instances),
                          version, dict(details))
            for instances, details in changes
        ])

        def done() -> None:
            for entry in entries:
                self.worker.complete_journal(deployment.id, entry.seq)

        return done

    def resumed_version(self, environment: str, instance: str) -> str | None:
        """Return the version ``instance`` ran before the interrupted deployment of
        ``environment`` that this run resumes, or None."""
        with self._guard:
            return self.resumed_before.get(environment, {}).get(instance)

    def keep_resumed(self, deployment: Deployment, before: Mapping[str, str]) -> None:
        """Remember what ran before ``deployment``, which this run resumes: the version
        of each instance it changed, and its previous version."""
        with self._guard:
            self.resumed_before.setdefault(deployment.environment, {}).update(before)
            self.resumed_previous[deployment.environment] = deployment.previous_version

    def previous_version(self, environment: str) -> str | None:
        """Return the version ``environment`` ran before this run's deployments.

        That is the previous version of a resumed deployment, else the version of the
        newest successful deployment, else None.
        """
        with self._guard:
            if environment in self.resumed_previous:
                return self.resumed_previous[environment]
        return self.last_successful_version(environment)

    def record_rollback(self, step_id: str, passed: bool, message: str) -> None:
        """Record a finished rollback of the deployment of step ``step_id``.

        The runner reports a rollback once it has ended, so the record's start and end
        times are both taken then. Errors are logged, not raised.
        """
        with self._guard:
            deployment = self.deployments.get(step_id)
        if deployment is None:
            return
        outcome = RollbackOutcome.SUCCEEDED if passed else RollbackOutcome.FAILED

        def record(store: StateStore) -> None:
            rollback = store.start_rollback(
                environment=deployment.environment,
                to_version=deployment.previous_version or UNKNOWN_VERSION,
                from_version=deployment.version, reason=message,
                deployment_id=deployment.id, actor=self.job.actor, job_url=self.job.job_url)
            store.finish_rollback(rollback.id, outcome)

        try:
            self.worker.call(record)
        except StateError as error:
            log_store_error("recording the rollback of deployment %s failed", deployment.id,
                            error=error)

    def start_manual_rollback(self, request: RollbackRequest) -> str:
        """Record the start of a ``shipline rollback`` and return the record's id."""
        record = self.worker.call(lambda store: store.start_rollback(
            environment=request.environment, to_version=request.to_version,
            from_version=request.from_version, reason=request.reason,
            actor=self.job.actor, job_url=self.job.job_url, fast=request.fast))
        logger.info("rollback %s of %s to %s started", record.id, request.environment,
                    request.to_version)
        return record.id

    def finish_manual_rollback(self, rollback_id: str, succeeded: bool) -> None:
        """Record the end of a ``shipline rollback``; errors are logged, not raised."""
        outcome = RollbackOutcome.SUCCEEDED if succeeded else RollbackOutcome.FAILED
        try:
            self.worker.call(lambda store: store.finish_rollback(rollback_id, outcome))
        except StateError as error:
            log_store_error("recording the end of rollback %s failed", rollback_id,
                            error=error)
            return
        logger.info("rollback %s finished: %s", rollback_id, outcome.value)

    def finish_deployment(self, step: Step, outcome: DeploymentOutcome) -> None:
        """Record how the deployment of ``step`` ended; errors are logged, not raised,
        because the run's own outcome matters more than its record."""
        deployment = self.deployment_of(step)
        if deployment is None:
            return
        try:
            self.worker.call(lambda store: store.finish_deployment(deployment.id, outcome))
        except StateError as error:
            log_store_error("recording the outcome of deployment %s failed", deployment.id,
                            error=error)
            self._finish_processes(deployment, recorded=False)
            return
        self._finish_processes(deployment, recorded=True)
        logger.info("deployment %s finished: %s", deployment.id, outcome.value)

    def _finish_processes(self, deployment: Deployment, *, recorded: bool) -> None:
        if self._processes is not None:
            self._processes.finish(deployment.id, recorded=recorded)

    def close(self) -> None:
        """Release every lock and close the store."""
        if self._processes is not None:
            self._processes.close()
        self.release_locks()
        self.worker.close()


def _nothing() -> None:
    return None
